"""Blocking primitives for hosted Python objects: ``dlock.DLock``, ``drlock.DRLock``,
``dsemaphore.DSemaphore``, ``dboundedsemaphore.DBoundedSemaphore`` and
``dcondition.DCondition`` at the original's import paths, and ``dbarrier.DBarrier``
(the original had no barrier primitive).

Each keeps its waiters (the callers' ``_concoord_command``s) in its own state, so
they are replicated and snapshotted with the object; a caller that must wait is
parked with ``BlockingReturn`` and answered later with ``concoord.host.wake``.
Ownership is per client *session*: when a session ends (closed, or its lease ran
out) every primitive reachable from the hosted object releases what it held and
forgets its waiters (``_concoord_session_closed``), and a caller that gave up
waiting is taken out of the queue (``_concoord_cancel``).

What it deliberately is not: thread synchronisation. The methods run one at a time
in the object host; they keep no ``threading`` lock (one would make the object
unpicklable).
"""
