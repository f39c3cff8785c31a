"""``DBarrier``: a replicated barrier for hosted objects, with the result of
Python's ``threading.Barrier``: ``wait`` parks its caller until ``parties`` callers
wait, then all of them proceed, each with its own arrival index ``0..parties-1``
(the last arrival returns at once, the others are woken). The barrier then starts
over for the next round.

The original had only ``concoord.object.barrier.Barrier``, built on a condition,
which woke one waiter through a lock hand-off (correct only for two parties) and
returned None. What it deliberately is not: there is no ``timeout``, ``abort()``,
``reset()`` or broken state (a method cannot read a clock; a caller that gives up
is taken back, and a session that ends leaves the barrier), and no ``action``."""

from ..exception import BlockingReturn
from ..host import wake


class DBarrier:
    """``DBarrier(parties=1)``; fewer than one party is a ``ValueError``."""

    def __init__(self, parties=1):
        if int(parties) < 1:
            raise ValueError("parties must be >= 1")
        self.parties = int(parties)
        self.waiting = []

    def wait(self, _concoord_command):
        """The caller's arrival index in this round; parks until the last party
        arrives, which wakes every waiter with its own index."""
        index = len(self.waiting)
        if index + 1 < self.parties:
            self.waiting.append(_concoord_command)
            raise BlockingReturn()
        waiting, self.waiting = self.waiting, []
        for i, command in enumerate(waiting):
            wake(command, i)
        return index

    @property
    def n_waiting(self):
        return len(self.waiting)

    def _concoord_session_closed(self, client):
        # Its waiters leave the barrier; nobody is woken, fewer callers wait.
        self.waiting = [c for c in self.waiting if c.client != client]

    def _concoord_cancel(self, command):
        if command in self.waiting:
            self.waiting.remove(command)
            return True
        return False

    def __repr__(self):
        return "<DBarrier parties=%d waiting=%d>" % (self.parties, len(self.waiting))

    def __str__(self):
        return "<DBarrier object>"
