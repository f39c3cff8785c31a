"""``Client``: the asyncio ConCoord client. Same protocol, same decisions and same
exceptions as the threaded ``concoord.client.Client`` (both drive
``concoord._core.Core`` and encode with ``concoord._wire``); only the shell
differs: a task reads the connection, a task runs the core's timers, and calls
write their frames directly. Many coroutines may call one client at once; their
calls are pipelined on one connection.

    client = await concoord.aio.Client.connect("127.0.0.1:14000, 127.0.0.1:14001")
    await client.call("default", "increment")
    await client.close()

What it deliberately is not: thread-safe (use it from its event loop only), or
self-closing: a client dropped without ``close()`` keeps its session until the
lease runs out.
"""

import asyncio
import logging
import random
import socket
import ssl
import time

from . import _wire
from . import tls
from ._core import DEFAULT, TLS_FAILED, Core, Options, parse_bootstrap, split_addr
from .exception import ProtocolError

log = logging.getLogger("concoord.client")

__all__ = ["Client", "DEFAULT"]

READ_CHUNK = 256 * 1024


class Client:
    """Create with ``await Client.connect(bootstrap, ...)``; the options are those
    of ``concoord.client.Client``."""

    def __init__(self, core, options):
        # Use `connect`: the client needs a running loop and an open session.
        self._core = core
        self._options = options
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._sleeping_until = float("-inf")
        self._generation = 0
        self._writer = None
        self._reader_task = None
        self._dial_task = None
        self._exited = False
        # Frames queued during one turn of the event loop go out in one write at its
        # end (a write per call cost more than the rest of the call at C = 64).
        self._flush_pending = False
        self._timer_task = self._loop.create_task(self._timer())

    @classmethod
    async def connect(
        cls,
        bootstrap,
        token=None,
        lease=10.0,
        attempt_timeout=5.0,
        call_timeout=None,
        connect_timeout=2.0,
        give_up_after=60.0,
        liveness_timeout=0.6,
        ssl_context=None,
    ):
        """Connects, follows the cluster to its leader and opens a session."""
        addrs = parse_bootstrap(bootstrap)
        options = Options(
            token,
            lease,
            attempt_timeout,
            call_timeout,
            connect_timeout,
            give_up_after,
            liveness_timeout,
            ssl_context,
        )
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        nonce_seed = random.SystemRandom().getrandbits(63)
        client = cls(Core(addrs, options, time.monotonic(), nonce_seed, ready), options)
        client._after()
        try:
            await ready
        except BaseException:
            await client.close()
            raise
        return client

    async def call(self, object, method, args=(), timeout=DEFAULT):
        """As ``concoord.client.Client.call``."""
        packed = _wire.pack_args(args)
        future = self._loop.create_future()
        self._core.call(time.monotonic(), object, method, packed, future, timeout)
        self._after()
        try:
            return await future
        except asyncio.CancelledError:
            # The task was cancelled (asyncio.wait_for, ...): take the call back
            # too, so a parked acquire is not granted later to a caller who left.
            self._core.abandon(time.monotonic(), future)
            self._after()
            raise

    async def create(self, name, type_name, args=(), timeout=DEFAULT):
        """As ``concoord.client.Client.create``."""
        packed = _wire.pack_args(args)
        future = self._loop.create_future()
        self._core.create(time.monotonic(), name, type_name, packed, future, timeout)
        self._after()
        await future

    async def status(self):
        """The connected replica's status (a dict)."""
        future = self._loop.create_future()
        self._core.status(time.monotonic(), future)
        self._after()
        return await future

    @property
    def session(self):
        return self._core.session

    @property
    def cluster(self):
        """The cluster this client talks to, once a replica reported it."""
        return self._core.cluster

    async def close(self):
        """Ends the session (releasing what it holds) and stops the client."""
        future = self._loop.create_future()
        self._core.close(time.monotonic(), future)
        self._after()
        await future
        await self._timer_task

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # --- The shell -------------------------------------------------------------------

    def _after(self):
        """Carries out the core's effects, writes what it queued, and wakes the
        timer task if the next deadline moved earlier."""
        core = self._core
        for effect in core.take_effects():
            if effect[0] == "disconnect":
                self._drop_connection()
            elif effect[0] == "connect":
                self._drop_connection()
                self._dial_task = self._loop.create_task(self._dial(effect[1], self._generation))
            else:
                self._exited = True
        if self._writer is not None and core.out and not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)
        if self._exited:
            self._drop_connection()
            self._wake.set()
            return
        deadline = core.wake_deadline()
        if deadline is not None and deadline < self._sleeping_until:
            self._wake.set()

    def _flush(self):
        """Writes everything the core queued since the last flush."""
        self._flush_pending = False
        core = self._core
        if self._writer is not None and core.out and core.link[0] == "up":
            self._writer.write(bytes(core.out))
        core.out.clear()

    def _drop_connection(self):
        self._generation += 1
        for task in (self._reader_task, self._dial_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        self._reader_task = self._dial_task = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _timer(self):
        try:
            await self._timer_loop()
        except asyncio.CancelledError:
            raise
        except BaseException:
            log.exception("the concoord client's timer task failed")
            self._core._fatal_error(ProtocolError("the client's timer task failed; see the log"))
            self._exited = True
            self._drop_connection()

    async def _timer_loop(self):
        core = self._core
        while not self._exited:
            deadline = core.next_deadline()
            now = time.monotonic()
            if deadline is None or deadline > now:
                self._wake.clear()
                self._sleeping_until = float("inf") if deadline is None else deadline
                timeout = None if deadline is None else deadline - now
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
                self._sleeping_until = float("-inf")
            now = time.monotonic()
            deadline = core.next_deadline()
            if deadline is not None and now >= deadline:
                core.on_tick(now)
                self._after()

    async def _dial(self, target, generation):
        core = self._core
        timeout = self._options.connect_timeout
        writer = None
        try:
            # A dns:// target is looked up here: off the event loop.
            host, port = await asyncio.get_running_loop().run_in_executor(None, split_addr, target)
            context = self._options.ssl_context
            opening = asyncio.open_connection(
                host, port, ssl=context, server_hostname=host if context is not None else None
            )
            reader, writer = await asyncio.wait_for(opening, timeout)
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            writer.write(_wire.hello(self._options.token, self._core.cluster))
            buf = bytearray()
            deadline = time.monotonic() + timeout
            while True:
                bodies, end = _wire.split_frames(buf)
                if bodies:
                    break
                data = await asyncio.wait_for(reader.read(READ_CHUNK), max(0.0, deadline - time.monotonic()))
                if not data:
                    raise ConnectionError("%s closed the connection before Welcome" % target)
                buf += data
            frame = _wire.decode_server_frame(bodies[0])
            leftover = b"".join(_wire.frame(b) for b in bodies[1:]) + bytes(buf[end:])
            if isinstance(frame, _wire.Error):
                writer.close()
                if generation == self._generation:
                    core.on_connect_failed(time.monotonic(), frame.kind, frame.message)
                    self._after()
                return
            if not isinstance(frame, _wire.Welcome) or frame.version != _wire.PROTOCOL_VERSION:
                raise ConnectionError("%s answered Hello with %r, not Welcome version 1" % (target, frame))
        except asyncio.CancelledError:
            if writer is not None:
                writer.close()
            raise
        except (OSError, asyncio.TimeoutError, _wire.FrameError) as e:
            if writer is not None:
                writer.close()
            if generation == self._generation:
                if isinstance(e, ssl.SSLError) and tls.is_failure(e):
                    core.on_connect_failed(time.monotonic(), TLS_FAILED, tls.explain(target, e))
                else:
                    why = "cannot connect to %s: %s" % (target, e or type(e).__name__)
                    core.on_connect_failed(time.monotonic(), None, why)
                self._after()
            return
        if generation != self._generation or not core.on_connected(time.monotonic(), frame.replica, frame.leader):
            writer.close()
            return
        self._dial_task = None
        self._writer = writer
        self._reader_task = self._loop.create_task(self._read(reader, target, generation, leftover))
        self._after()

    async def _read(self, reader, target, generation, leftover):
        core = self._core
        buf = bytearray(leftover)
        try:
            while generation == self._generation:
                bodies, end = _wire.split_frames(buf)
                del buf[:end]
                now = time.monotonic()
                for body in bodies:
                    core.on_frame(now, _wire.decode_server_frame(body))
                    if core.has_effects():
                        break  # the core left this connection: the rest is stale
                if bodies:
                    self._after()
                    continue
                data = await reader.read(READ_CHUNK)
                if generation != self._generation:
                    return
                if not data:
                    core.on_disconnected(time.monotonic(), "%s closed the connection" % target)
                    self._after()
                    return
                buf += data
        except (OSError, _wire.FrameError) as e:
            if generation == self._generation:
                core.on_disconnected(time.monotonic(), "%s: %s" % (target, e))
                self._after()
