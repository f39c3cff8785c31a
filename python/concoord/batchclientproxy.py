"""``ClientProxy`` for batches (``concoord object -p 2``): calls are queued on the
client side and sent together, and each gives a future for its result.

``invoke_command_async(method, *args)`` checks the arguments and queues the call;
the queue is sent, in call order and in one write to the connection, when it holds
``batch_size`` calls, on ``flush()`` (the original's ``finalize_batch()``), when a
future's ``result()`` or ``exception()`` is asked, on a synchronous
``invoke_command``, and on ``disconnect()``. The calls run in the proxy's session,
each exactly once, like any other calls (parked calls included: a future of a
blocking call completes when the call is woken). Commands run in the order they
were queued; a read-only method (a query) is answered by the replicas without the
log, so, like any pipelined call, it may not see commands still in flight: wait
for their futures first.

What it deliberately is not: a timer. Nothing sends a batch by itself after a
while (the original's 0.1 s rule was only checked when a new call arrived);
ask for a result or flush. And it is not the original's batch runtime, whose
futures were shared by a whole batch and whose generated proxies never worked.
"""

import concurrent.futures
import threading

from . import _wire
from .proxy._base import Proxy

__all__ = ["ClientProxy", "BatchFuture"]


class BatchFuture(concurrent.futures.Future):
    """The result of one queued call. Asking for it sends the batch it is in."""

    def __init__(self, proxy):
        super().__init__()
        self._proxy = proxy

    def result(self, timeout=None):
        self._proxy.flush()
        return super().result(timeout)

    def exception(self, timeout=None):
        self._proxy.flush()
        return super().exception(timeout)


class ClientProxy(Proxy):
    """``ClientProxy(bootstrap, timeout=60, debug=False, token=None, *,
    batch_size=100, ...)``, with the keywords of every proxy (``instance``,
    ``create``, ``client``, ...). Thread-safe: calls queued from several threads
    go out in the order they were queued."""

    def __init__(self, *args, batch_size=100, **kwargs):
        if batch_size < 1:
            raise ValueError("batch_size must be 1 or more")
        super().__init__(*args, **kwargs)
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._queue = []

    def invoke_command_async(self, methodname, *args):
        """Queues ``methodname(*args)``; returns its ``BatchFuture``. Arguments the
        protocol cannot carry raise here (``TypeError``, ``OverflowError``), before
        anything is sent."""
        packed = _wire.pack_args(args)
        future = BatchFuture(self)
        with self._lock:
            self._queue.append((self._instance, methodname, packed, future))
            full = len(self._queue) >= self.batch_size
        if full:
            self.flush()
        return future

    def flush(self):
        """Sends the queued calls together; returns how many were sent."""
        with self._lock:
            batch, self._queue = self._queue, []
            # Sent under the queue's lock, so batches leave in the order they filled.
            if batch:
                self._client._send_packed(batch)
        return len(batch)

    # The original's name.
    finalize_batch = flush

    def wait_until_command_done(self, future):
        """The original's way to wait: ``future.result()``."""
        return future.result()

    def invoke_command(self, methodname, *args):
        """Sends what is queued, then calls ``methodname(*args)`` and waits for it."""
        self.flush()
        return self._call(methodname, *args)

    def disconnect(self):
        """Sends what is queued, then ends the session (a future of a call still
        unanswered then fails)."""
        self.flush()
        super().disconnect()
