"""Proxy of the built-in ``Counter`` (the original's ``concoord.proxy.counter``).
Not the object: the counter lives on the replicas."""

from ._base import Proxy


class Counter(Proxy):
    """``Counter(value=0)`` on the replicas; ``create=(value,)`` makes a named one."""

    TYPE_NAME = "Counter"

    def increment(self):
        """Adds one; returns None (OverflowError past the 64-bit range)."""
        return self._call("increment")

    def decrement(self):
        """Subtracts one; returns None."""
        return self._call("decrement")

    def getvalue(self):
        """The value (a linearizable read, no log write)."""
        return self._call("getvalue")

    def __str__(self):
        return self._call("__str__")
