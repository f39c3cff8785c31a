"""ConCoord for Python: a client for ConCoord clusters (``concoord.client``, and
``concoord.aio`` for asyncio) and proxies for every built-in object
(``concoord.proxy.counter.Counter``, ...). See docs/python.md in the repository.

What it deliberately is not: the server. Replicas are the Rust ``concoord``
binary (``concoord replica``); this package installs no ``concoord`` command.
"""

__version__ = "0.1.0"
