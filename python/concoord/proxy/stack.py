"""Proxy of the built-in ``Stack`` (the original's ``concoord.proxy.stack``)."""

from ._base import Proxy


class Stack(Proxy):
    TYPE_NAME = "Stack"

    def append(self, x):
        return self._call("append", x)

    def pop(self):
        """Removes and returns the top item (the original returned None);
        IndexError when empty."""
        return self._call("pop")

    def get_size(self):
        return self._call("get_size")

    def get_stack(self):
        """The items, bottom first."""
        return self._call("get_stack")

    def __str__(self):
        return self._call("__str__")
