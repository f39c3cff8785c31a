"""Proxy of the built-in ``NameserverCoord``: the old openreplica.org registry of
subdomains and their nodes."""

from ._base import Proxy


class NameserverCoord(Proxy):
    TYPE_NAME = "NameserverCoord"

    def addnodetosubdomain(self, subdomain, nodetype, node):
        return self._call("addnodetosubdomain", subdomain, nodetype, node)

    def delsubdomain(self, subdomain):
        return self._call("delsubdomain", subdomain)

    def delnodefromsubdomain(self, subdomain, nodetype, node):
        return self._call("delnodefromsubdomain", subdomain, nodetype, node)

    def updatesubdomain(self, subdomain, nodes):
        """Replaces the subdomain's nodes with ``nodes``, a dict node type -> list."""
        return self._call("updatesubdomain", subdomain, nodes)

    def getnodes(self, subdomain):
        """A dict node type -> sorted list of nodes; KeyError when unknown."""
        return self._call("getnodes", subdomain)

    def getsubdomains(self):
        return self._call("getsubdomains")

    def getdomains(self):
        return self._call("getdomains")

    def _reinstantiate(self, state):
        """Replaces the registry with one parsed from ``str()``'s format."""
        return self._call("_reinstantiate", state)

    def __str__(self):
        return self._call("__str__")
