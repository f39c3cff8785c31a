"""Proxy of the built-in ``BinaryTree``: a replicated set of ints. The original
passed tree nodes over the wire, which could not work; values go in and out here.
The object has no ``__str__``/``__repr__``, so ``str(tree)`` is the proxy's own."""

from ._base import Proxy


class BinaryTree(Proxy):
    TYPE_NAME = "BinaryTree"

    def insert(self, data):
        """Adds the int ``data`` (duplicates ignored)."""
        return self._call("insert", data)

    def add_node(self, data):
        """The original's name for ``insert``."""
        return self._call("add_node", data)

    def find(self, target):
        return self._call("find", target)

    def delete(self, target):
        """Whether ``target`` was there (and is now gone)."""
        return self._call("delete", target)

    def get_min(self):
        """ValueError("tree is empty") on an empty tree."""
        return self._call("get_min")

    def get_max(self):
        return self._call("get_max")

    def get_depth(self):
        return self._call("get_depth")

    def get_size(self):
        return self._call("get_size")

    def in_order(self):
        """Every value, sorted."""
        return self._call("in_order")
