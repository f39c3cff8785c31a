"""Proxy of the built-in ``Condition`` (the original's ``concoord.proxy.condition``):
a condition variable with its own re-entrant lock, owned per session.

``wait`` takes no timeout: a cancelled wait would have given up the lock on the
way in without taking it back, which no caller of ``Condition.wait`` expects."""

from ._base import LockLike


class Condition(LockLike):
    """A replicated ``threading.Condition``; ``with cond:`` acquires and releases."""

    TYPE_NAME = "Condition"

    def acquire(self, blocking=True, timeout=-1):
        """True when the lock is granted (re-entrant per session).
        ``blocking=False`` or a ``timeout``: False when not granted."""
        return self._acquire("acquire", blocking, timeout, False)

    def release(self):
        return self._call("release")

    def wait(self):
        """Releases the lock fully and waits until notified and owning it again;
        returns True. RuntimeError when this session does not own the lock."""
        return self._call("wait")

    def notify(self, n=1):
        """Wakes up to ``n`` waiters (they return once they own the lock again)."""
        return self._call("notify", n)

    def notify_all(self):
        return self._call("notify_all")

    def notifyAll(self):
        """The original's (and Python 2's) name for ``notify_all``."""
        return self._call("notifyAll")

    def __repr__(self):
        return self._call("__repr__")
