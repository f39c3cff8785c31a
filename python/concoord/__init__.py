"""ConCoord for Python: a client for ConCoord clusters (``concoord.client``, and
``concoord.aio`` for asyncio), proxies for every built-in object
(``concoord.proxy.counter.Counter``, ...), and the object host that runs a user's
class on the replicas (``concoord.host``; ``concoord.readonly`` marks its read-only
methods). See docs/python.md in the repository.

What it deliberately is not: the server. Replicas are the Rust ``concoord``
binary (``concoord replica``); this package installs no ``concoord`` command.
"""

__version__ = "0.1.0"


def readonly(method):
    """Marks a hosted object's method as read-only: a query, answered by one replica
    after a read barrier instead of being ordered through the log. It must not
    change the object (the change would exist on that replica only), park or wake
    calls."""
    method._concoord_readonly = True
    return method
