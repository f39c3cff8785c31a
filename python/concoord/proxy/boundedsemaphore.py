"""Proxy of the built-in ``BoundedSemaphore`` (the original's
``concoord.proxy.boundedsemaphore``): a semaphore whose value never exceeds its
initial value."""

from ._base import LockLike


class BoundedSemaphore(LockLike):
    """``BoundedSemaphore(value=1)`` on the replicas."""

    TYPE_NAME = "BoundedSemaphore"
    FOREVER = None

    def acquire(self, blocking=True, timeout=None):
        """True when a permit is granted; waits while none is free.
        ``blocking=False`` or a ``timeout``: False when not granted."""
        return self._acquire("acquire", blocking, timeout, False)

    def acquire_token(self, blocking=True, timeout=None):
        return self._acquire("acquire_token", blocking, timeout, None)

    def release(self, n=1):
        """Returns ``n`` permits. ValueError("Semaphore released too many times")
        when the value would exceed the initial value (nothing changes)."""
        return self._call("release", n)

    def value(self):
        return self._call("value")

    def __repr__(self):
        return self._call("__repr__")
