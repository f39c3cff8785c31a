"""Proxy of the built-in ``Map`` (not in the original): a replicated dict from
string keys to any value. The object has no ``__str__``/``__repr__``."""

from ._base import Proxy


class Map(Proxy):
    TYPE_NAME = "Map"

    def put(self, key, value):
        """Sets ``key``; returns the previous value or None."""
        return self._call("put", key, value)

    def get(self, key):
        """The value, or None."""
        return self._call("get", key)

    def delete(self, key):
        """Whether ``key`` was there."""
        return self._call("delete", key)

    def contains(self, key):
        return self._call("contains", key)

    def size(self):
        return self._call("size")

    def keys(self):
        """Every key, sorted."""
        return self._call("keys")
