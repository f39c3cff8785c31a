"""Proxy of the built-in ``Log`` (the original's ``concoord.proxy.log``)."""

from ._base import Proxy


class Log(Proxy):
    TYPE_NAME = "Log"

    def write(self, e):
        """Replaces the whole log with ``[e]`` (as the original did)."""
        return self._call("write", e)

    def append(self, e):
        return self._call("append", e)

    def read(self):
        """The entries' ``str()``, space-joined."""
        return self._call("read")

    def __str__(self):
        return self._call("__str__")
