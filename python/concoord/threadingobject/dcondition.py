"""``DCondition``: a replicated condition variable over a ``DRLock``."""

from ..exception import BlockingReturn
from .drlock import DRLock


class DCondition:
    """``wait`` releases the lock fully and parks; ``notify`` moves waiters to the
    lock's queue, and a waiter returns (True) only once it owns the lock again with
    its count restored, as Python's ``threading.Condition``. (The original released
    only one level, and a waiter whose release handed the lock over returned at
    once without waiting.)"""

    def __init__(self, lock=None):
        self.lock = lock if isinstance(lock, DRLock) else DRLock()
        self.waiters = []  # [command, count]

    def acquire(self, _concoord_command, blocking=True):
        return self.lock.acquire(_concoord_command, blocking)

    def release(self, _concoord_command):
        self.lock.release(_concoord_command)

    def wait(self, _concoord_command):
        if not self.lock._is_owned(_concoord_command.client):
            raise RuntimeError("cannot wait on un-acquired lock")
        count = self.lock._release_all()
        self.waiters.append([_concoord_command, count])
        raise BlockingReturn()

    def notify(self, _concoord_command, n=1):
        if not self.lock._is_owned(_concoord_command.client):
            raise RuntimeError("cannot notify on un-acquired lock")
        moving, self.waiters = self.waiters[:n], self.waiters[n:]
        for command, count in moving:
            self.lock._enqueue(command, count)

    def notify_all(self, _concoord_command):
        self.notify(_concoord_command, len(self.waiters))

    notifyAll = notify_all

    def _concoord_session_closed(self, client):
        self.waiters = [w for w in self.waiters if w[0].client != client]

    def _concoord_cancel(self, command):
        # A waiter that gave up would have released the lock without taking it
        # back: it cannot be cancelled (as the built-in Condition's wait).
        return False

    def __repr__(self):
        return "<Condition(%r, %d)>" % (self.lock, len(self.waiters))
