"""The original's ready-made objects as Python classes (``concoord.object.counter``,
``.semaphore``, ``.lock``, ``.rlock``, ``.boundedsemaphore``, ``.condition``,
``.barrier``):
examples of hosted objects, and what ``concoord object`` generates proxies from.

What it deliberately is not: what ``concoord replica -o
concoord.object.counter.Counter`` runs. Those names select the Rust built-ins,
which are faster; copy one of these modules under another name to host it in
Python.
"""
