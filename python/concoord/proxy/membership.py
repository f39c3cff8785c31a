"""Proxy of the built-in ``Membership`` (the original's ``concoord.proxy.membership``)."""

from ._base import Proxy


class Membership(Proxy):
    TYPE_NAME = "Membership"

    def add(self, m):
        """Adds ``m`` unless it is a member already."""
        return self._call("add", m)

    def remove(self, m):
        """Removes ``m``; KeyError when it is not a member."""
        return self._call("remove", m)

    def members(self):
        """The members, in the order they were added (new: the original had none)."""
        return self._call("members")

    def __str__(self):
        return self._call("__str__")
