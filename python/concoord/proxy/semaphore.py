"""Proxy of the built-in ``Semaphore`` (the original's ``concoord.proxy.semaphore``).
Permits are counted per session: a session that ends returns the ones it holds."""

from ._base import LockLike


class Semaphore(LockLike):
    """``Semaphore(value=1)`` on the replicas; ``with sem:`` acquires and releases."""

    TYPE_NAME = "Semaphore"
    FOREVER = None

    def acquire(self, blocking=True, timeout=None):
        """True when a permit is granted; waits while none is free.
        ``blocking=False`` or a ``timeout``: False when not granted."""
        return self._acquire("acquire", blocking, timeout, False)

    def acquire_token(self, blocking=True, timeout=None):
        """Like ``acquire``, returning the grant's slot as a token, or None."""
        return self._acquire("acquire_token", blocking, timeout, None)

    def release(self, n=1):
        """Returns ``n`` permits, waking up to ``n`` waiters. ValueError if n < 1."""
        return self._call("release", n)

    def value(self):
        """Free permits now."""
        return self._call("value")

    def __repr__(self):
        return self._call("__repr__")
