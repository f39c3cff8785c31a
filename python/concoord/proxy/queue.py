"""Proxy of the built-in ``Queue`` (the original's ``concoord.proxy.queue``, whose
method names did not match its object; these are ``queue.Queue``'s). Raises the
standard library's ``queue.Full`` and ``queue.Empty``."""

import queue as _queue

from ._base import Proxy, or_default
from ..exception import Timeout


class Queue(Proxy):
    """``Queue(maxsize=0)`` on the replicas (0: unbounded)."""

    TYPE_NAME = "Queue"

    def put(self, item, block=True, timeout=None):
        """Appends ``item``; on a full queue waits for room, or raises
        ``queue.Full`` (``block=False``, or ``timeout`` seconds passed and the
        cluster took the call back: the item was not put)."""
        if not block or timeout is None:
            return self._call("put", item, block)
        try:
            return self._call("put", item, True, timeout=_check(timeout))
        except Timeout:
            raise _queue.Full from None

    def get(self, block=True, timeout=None):
        """Removes and returns the oldest item; on an empty queue waits for one, or
        raises ``queue.Empty`` (``block=False``, or after ``timeout`` seconds, once
        the cluster took the call back: nothing was taken)."""
        if not block or timeout is None:
            return self._call("get", block)
        try:
            return self._call("get", True, timeout=_check(timeout))
        except Timeout:
            raise _queue.Empty from None

    def put_nowait(self, item):
        return self._call("put_nowait", item)

    def get_nowait(self):
        return self._call("get_nowait")

    def qsize(self):
        return self._call("qsize")

    def empty(self):
        return self._call("empty")

    def full(self):
        return self._call("full")

    def __str__(self):
        return self._call("__str__")


def _check(timeout):
    if timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    return or_default(timeout)
