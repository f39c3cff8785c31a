"""Proxy of the built-in ``Lock`` (the original's ``concoord.proxy.lock``). Not
re-entrant; owned by the proxy's *session*, so every thread calling one proxy
shares the ownership, and a session that ends releases it."""

from ._base import LockLike


class Lock(LockLike):
    """A replicated ``threading.Lock``; ``with lock:`` acquires and releases."""

    TYPE_NAME = "Lock"

    def acquire(self, blocking=True, timeout=-1):
        """True when granted; waits (parked on the replicas) while another session
        holds it. ``blocking=False``: False instead of waiting. ``timeout``
        seconds: False once the cluster took the waiting call back."""
        return self._acquire("acquire", blocking, timeout, False)

    def acquire_token(self, blocking=True, timeout=-1):
        """Like ``acquire``, but returns the grant's fencing token (strictly
        increasing from grant to grant), or None when not granted."""
        return self._acquire("acquire_token", blocking, timeout, None)

    def release(self):
        """Hands the lock to the next waiter, or frees it. RuntimeError when this
        session does not hold it."""
        return self._call("release")

    def locked(self):
        return self._call("locked")

    def token(self):
        """The holder's fencing token, or None when free."""
        return self._call("token")

    def __repr__(self):
        return self._call("__repr__")

    def __str__(self):
        return self._call("__str__")
