"""Proxy of the built-in ``MeshMembership``: named groups of members with epochs,
joined by approval and left by failure reports. The object has no
``__str__``/``__repr__``, so ``str(mesh)`` is the proxy's own."""

from ._base import Proxy, or_default


class MeshMembership(Proxy):
    TYPE_NAME = "MeshMembership"

    def add_group(self, gname, minsize):
        return self._call("add_group", gname, minsize)

    def remove_group(self, gname):
        """Its waiters get KeyError(gname)."""
        return self._call("remove_group", gname)

    def get_group_members(self, gname):
        return self._call("get_group_members", gname)

    def get_group_epoch(self, gname):
        return self._call("get_group_epoch", gname)

    def get_group_state(self, gname):
        """``[members, epoch]``."""
        return self._call("get_group_state", gname)

    def approve_join(self, gname, node, epochno):
        """``[True, new epoch]`` if ``epochno`` is current (``node`` joins), else
        ``[False, epoch]``."""
        return self._call("approve_join", gname, node, epochno)

    def wait(self, gname, timeout=None):
        """Waits until the group's membership changes; returns the new epoch.
        ``timeout`` seconds: ``concoord.exception.Timeout`` once taken back."""
        return self._call("wait", gname, timeout=or_default(timeout))

    def check_member(self, gname, node):
        """``[is a member, epoch]``."""
        return self._call("check_member", gname, node)

    def notify_failure(self, gname, epoch, node):
        """A stale ``epoch``: ``[members, epoch]``; else a strike against ``node``,
        ``[True, new epoch]`` once a majority reported it (removed), else
        ``[False, epoch]``."""
        return self._call("notify_failure", gname, epoch, node)
