"""Proxy of the built-in ``RLock`` (the original's ``concoord.proxy.rlock``):
re-entrant per session, so every thread calling one proxy is the same owner."""

from ._base import LockLike


class RLock(LockLike):
    """A replicated ``threading.RLock``; ``with rlock:`` acquires and releases."""

    TYPE_NAME = "RLock"

    def acquire(self, blocking=True, timeout=-1):
        """True when granted or re-entered (count + 1); waits while another session
        owns it. ``blocking=False`` or a ``timeout``: False when not granted."""
        return self._acquire("acquire", blocking, timeout, False)

    def acquire_token(self, blocking=True, timeout=-1):
        """Like ``acquire``, returning the grant's fencing token, or None."""
        return self._acquire("acquire_token", blocking, timeout, None)

    def release(self):
        """Count - 1; at 0 the next waiter gets it. RuntimeError for a non-owner."""
        return self._call("release")

    def locked(self):
        return self._call("locked")

    def token(self):
        return self._call("token")

    def __repr__(self):
        return self._call("__repr__")

    def __str__(self):
        return self._call("__str__")
