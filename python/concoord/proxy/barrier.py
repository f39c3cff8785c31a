"""Proxy of the built-in ``Barrier`` (the original's ``concoord.proxy.barrier``),
fixed: every waiter of a round is released, whatever the number of parties."""

from ._base import Proxy, or_default


class Barrier(Proxy):
    """``Barrier(parties=1)`` on the replicas."""

    TYPE_NAME = "Barrier"

    def wait(self, timeout=None):
        """Waits until ``parties`` calls wait; returns this call's arrival index
        (0 .. parties-1). With ``timeout`` seconds, raises
        ``concoord.exception.Timeout`` once the cluster took the call back (this
        call then never counted as an arrival)."""
        return self._call("wait", timeout=or_default(timeout))

    def parties(self):
        return self._call("parties")

    def n_waiting(self):
        return self._call("n_waiting")

    def __repr__(self):
        return self._call("__repr__")

    def __str__(self):
        return self._call("__str__")
