"""``ClientProxy``: the original's proxy runtime API, ``ClientProxy(bootstrap,
timeout=60, debug=False, token=None)`` with ``invoke_command(method, *args)``,
over ``concoord.client.Client``, for code written against ConCoord 1.1.

What it deliberately is not: the original's basic proxy with its bugs. It matches
replies to requests, is thread-safe, honours ``timeout`` (seconds without any
replica answering before ``Unavailable``) and blocks correctly on parked calls,
so ``concoord.blockingclientproxy`` is the same class.
"""

from .proxy._base import Proxy

__all__ = ["ClientProxy"]


class ClientProxy(Proxy):
    """Calls any method, by name, on one object instance (``instance=``, default
    the cluster's ``default``)."""

    def invoke_command(self, methodname, *args):
        """Calls ``methodname(*args)`` on the replicated object and returns its
        result, raising its exception."""
        return self._call(methodname, *args)
