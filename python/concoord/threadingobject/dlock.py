"""``DLock``: a replicated mutual-exclusion lock, owned by a client session."""

from ..exception import BlockingReturn
from ..host import wake


class DLock:
    """Not re-entrant: a session that acquires a lock it holds waits (as Python's
    ``threading.Lock``). FIFO hand-over on release."""

    def __init__(self):
        self.owner = None
        self.queue = []

    def acquire(self, _concoord_command, blocking=True):
        """Takes the lock (True), or parks the caller until it is handed over
        (then True); with ``blocking=False`` returns False instead of waiting."""
        if self.owner is None:
            self.owner = _concoord_command.client
            return True
        if not blocking:
            return False
        self.queue.append(_concoord_command)
        raise BlockingReturn()

    def release(self, _concoord_command):
        """Releases the lock the caller's session holds (RuntimeError otherwise),
        handing it to the first waiter."""
        if self.owner is None or self.owner != _concoord_command.client:
            raise RuntimeError("cannot release un-acquired lock")
        self._hand_over()

    def locked(self):
        return self.owner is not None

    def _hand_over(self):
        self.owner = None
        if self.queue:
            nxt = self.queue.pop(0)
            self.owner = nxt.client
            wake(nxt, True)

    def _concoord_session_closed(self, client):
        self.queue = [c for c in self.queue if c.client != client]
        if self.owner == client:
            self._hand_over()

    def _concoord_cancel(self, command):
        if command in self.queue:
            self.queue.remove(command)
            return True
        return False

    def __repr__(self):
        return "<DLock owner=%r>" % (self.owner,)

    def __str__(self):
        return "<DLock object>"
