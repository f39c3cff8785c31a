"""``Client``: the threaded ConCoord client, safe to call from any number of threads
at once, and ``status_of``, a one-shot status request to one replica.

A client owns one session and one connection, to the leader. Calling threads encode
their arguments and number the call under one lock; then one of them at a time (the
flusher) writes, outside the lock, every frame queued so far, so that under load one
send carries the calls of many threads and frames never interleave. While it waits, one calling thread at a time reads the
connection itself, for everyone, so that a reply wakes its caller without a hand-off
between threads; when no caller reads, the background I/O thread does. The I/O
thread also runs the timers (keep-alive, attempt timeouts, call timeouts) and makes
connections. Every read happens under the lock, whoever reads. All the decisions
are ``concoord._core``'s: this module only moves bytes and time into it.

What it deliberately is not: it does not resolve DNS SRV names, and it is not an
asyncio client (``concoord.aio`` is).
"""

import concurrent.futures
import contextlib
import logging
import math
import random
import select
import selectors
import socket
import ssl
import threading
import time
import weakref

from . import _wire, tls
from ._core import DEFAULT, TLS_FAILED, Core, Options, parse_bootstrap, split_addr
from .exception import BadToken, ProtocolError, TlsError, Unavailable

__all__ = ["Client", "status_of", "DEFAULT"]

log = logging.getLogger("concoord.client")

# Bytes asked for per read.
READ_CHUNK = 256 * 1024
# A reading caller looks at the client's state at least this often (ms).
READER_POLL_MS = 500


def connect_socket(target, token, timeout, cluster=None, ssl_context=None):
    """Connects to ``target`` (through TLS with ``ssl_context``), says Hello (naming
    ``cluster`` once known) and reads the answer, all within ``timeout`` seconds.
    Returns ``(socket, Welcome, leftover bytes)``; raises ``OSError`` (no
    connection, no answer), ``_Refused`` (an Error answer) or ``_TlsFailed``."""
    deadline = time.monotonic() + timeout
    host, port = split_addr(target)
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLError as e:
        sock.close()
        if tls.is_failure(e):
            raise _TlsFailed(tls.explain(target, e)) from None
        raise
    except BaseException:
        sock.close()
        raise
    try:
        sock.sendall(_wire.hello(token, cluster))
        buf = bytearray()
        while True:
            bodies, end = _wire.split_frames(buf)
            if bodies:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("%s did not welcome us within %gs" % (target, timeout))
            sock.settimeout(left)
            data = sock.recv(READ_CHUNK)
            if not data:
                raise ConnectionError("%s closed the connection before Welcome" % target)
            buf += data
        frame = _wire.decode_server_frame(bodies[0])
        leftover = b"".join(_wire.frame(b) for b in bodies[1:]) + bytes(buf[end:])
        if isinstance(frame, _wire.Error):
            raise _Refused(frame.kind, frame.message)
        if not isinstance(frame, _wire.Welcome):
            raise ConnectionError("%s answered Hello with %r instead of Welcome" % (target, frame))
        if frame.version != _wire.PROTOCOL_VERSION:
            raise ConnectionError(
                "%s welcomed protocol version %d, not %d"
                % (target, frame.version, _wire.PROTOCOL_VERSION)
            )
        return sock, frame, leftover
    except ssl.SSLError as e:
        # With TLS 1.3 the replica judges the client's certificate after the
        # handshake: its refusal arrives here.
        sock.close()
        if tls.is_failure(e):
            raise _TlsFailed(tls.explain(target, e)) from None
        raise
    except BaseException:
        sock.close()
        raise


class _TlsFailed(Exception):
    """TLS itself failed (a certificate refused, an alert): not worth retrying."""


class _Refused(Exception):
    def __init__(self, kind, message):
        super().__init__("%s: %s" % (kind, message))
        self.kind = kind
        self.message = message


# Per thread: while a thread reads replies under the shell's lock, the locks of the
# waiters it resolves, released only once it has let go of the shell's lock
# (``_Shell.deferring_wakes``). A woken caller usually calls again at once: woken
# while the reader still held the shell's lock, it would block on it and be woken
# a second time.
_deferred = threading.local()


class _Waiter:
    """What a thread in ``Client.call`` waits on: the part of a
    ``concurrent.futures.Future`` the core and the shell use, on one lock held until
    the answer is in (a Future builds a condition variable per call, which cost
    more than the rest of the call's bookkeeping)."""

    __slots__ = ("_lock", "_done", "_value", "_error")

    def __init__(self):
        self._lock = threading.Lock()
        self._lock.acquire()
        self._done = False
        self._value = None
        self._error = None

    def done(self):
        return self._done

    def cancelled(self):
        return False

    def set_result(self, value):
        assert not self._done, "the core resolves a waiter once"
        self._value = value
        self._done = True
        self._wake()

    def set_exception(self, error):
        assert not self._done, "the core resolves a waiter once"
        self._error = error
        self._done = True
        self._wake()

    def _wake(self):
        locks = getattr(_deferred, "locks", None)
        if locks is None:
            self._lock.release()
        else:
            locks.append(self._lock)

    def result(self):
        if not self._done:
            self._lock.acquire()
            self._lock.release()  # a second result() must not block
        if self._error is not None:
            raise self._error
        return self._value


class _Shell:
    """The I/O side of one client: the socket, the I/O thread and the lock around
    the core. Kept apart from ``Client`` so that the thread does not keep the
    user's handle alive (dropping the handle closes the client)."""

    def __init__(self, core, options):
        self.core = core
        self.options = options
        self.lock = threading.Lock()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.sock = None
        self.sock_events = 0
        # A calling thread that reads the connection itself while it waits (saving
        # the hand-off from the I/O thread): its thread, the future it waits for,
        # and the socket it reads. The I/O thread does not watch the socket for
        # reading meanwhile. Every read happens under the lock, whoever reads.
        self.reader = None
        self.reader_future = None
        self.reader_sock = None
        self.reader_wake_r, self.reader_wake_w = socket.socketpair()
        self.reader_wake_r.setblocking(False)
        self.reader_wake_w.setblocking(False)
        self.buf = bytearray()
        # A calling thread that writes what the core queued outside the lock (see
        # `flush`): while it does, nobody else writes, and frames other threads
        # queue meanwhile go out in its next write, many calls in one send.
        self.flushing = False
        # Sockets closed while a flush was under way: shut down at once, closed
        # when the flush ends (so their descriptor cannot be reused under it).
        self.retired = []
        self.connect_to = None
        self.exiting = False
        # When the I/O thread will wake by itself; -inf while it is awake (it looks
        # at the core again before sleeping, so nobody needs to wake it).
        self.sleeping_until = float("-inf")
        # A deadline earlier than that, met while a calling thread reads: the reader
        # polls until then and runs the timers itself (sparing a wake-up of the I/O
        # thread per call), and hands it on to the I/O thread when it stops reading.
        self.reader_deadline = float("inf")
        self.thread = threading.Thread(target=self.run, name="concoord-client", daemon=True)

    # --- Called with the lock held, from any thread --------------------------------

    def after(self, defer=False):
        """Carries out the core's effects, writes what it queued, and wakes the I/O
        thread if it has something new to do. With ``defer``, instead of writing it
        returns True when the caller must ``flush`` once it has let go of the lock."""
        wake = False
        flush = False
        while True:
            for effect in self.core.take_effects():
                if effect[0] == "disconnect":
                    self.close_sock()
                    self.connect_to = None
                elif effect[0] == "connect":
                    self.close_sock()
                    self.connect_to = effect[1]
                    wake = True
                else:
                    self.exiting = True
                    wake = True
            if self.sock is None or not self.core.out or self.flushing:
                break  # (a flushing thread takes these bytes too, in order)
            if defer:
                self.flushing = flush = True
                break
            try:
                sent = self.sock.send(self.core.out)
                del self.core.out[:sent]
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except OSError as e:
                target = self.core.link[1] if len(self.core.link) > 1 else "the replica"
                self.close_sock()
                self.core.on_disconnected(time.monotonic(), "writing to %s: %s" % (target, e))
                continue
            break
        if self.sock is not None and self.core.out and not self.flushing:
            wake = True  # the I/O thread waits for the socket to take the rest
        deadline = self.core.wake_deadline()
        poke = False
        if deadline is not None and deadline < self.sleeping_until:
            if self.reader is None or self.exiting:
                wake = True
            elif deadline < self.reader_deadline:
                self.reader_deadline = deadline
                poke = True  # to shorten its poll
        if wake:
            self.wake()
        if self.reader is None:
            # Requests may wait for answers now that nobody reads: the I/O thread
            # watches for them from here on.
            self.watch_socket(bool(self.core.out))
        if (
            self.reader is not None
            and self.reader is not threading.current_thread()
            and (
                poke
                or self.reader_future.done()
                or self.sock is not self.reader_sock
                or self.exiting
            )
        ):
            # Another thread resolved the reader's call or replaced its socket.
            try:
                self.reader_wake_w.send(b"\0")
            except OSError:
                pass
        return flush

    def flush(self):
        """Writes what the core queued, outside the lock, for as long as there is
        something: called by the thread that ``after(defer=True)`` made the
        flusher. Calls queued by other threads while it writes go out in its next
        write, so under load one send carries many calls."""
        try:
            self.flush_queued()
        except BaseException:
            with self.lock:
                if self.flushing:
                    self.end_flush()
            raise

    def flush_queued(self):
        while True:
            with self.lock:
                sock = self.sock
                if sock is None or not self.core.out or self.exiting:
                    return self.end_flush()
                data = bytes(self.core.out)
                self.core.out.clear()
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as e:
                with self.lock:
                    if self.sock is sock:
                        target = self.core.link[1] if len(self.core.link) > 1 else "the replica"
                        self.close_sock()
                        self.core.on_disconnected(time.monotonic(), "writing to %s: %s" % (target, e))
                    return self.end_flush()
            if sent < len(data):
                with self.lock:
                    if self.sock is sock:
                        # The socket is full: the I/O thread writes the rest when it
                        # drains, ahead of anything queued since.
                        self.core.out[:0] = data[sent:]
                    return self.end_flush()

    def end_flush(self):
        """With the lock held: this thread stops being the flusher."""
        self.flushing = False
        for sock in self.retired:
            sock.close()
        self.retired = []
        self.after()

    def close_sock(self):
        if self.sock is not None:
            try:
                self.selector.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            if self.flushing:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self.retired.append(self.sock)
            else:
                self.sock.close()
            self.sock = None
            self.sock_events = 0
            self.buf = bytearray()

    def wake(self):
        try:
            self.wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already has a byte waiting (or closed): it wakes anyway

    # --- The I/O thread ------------------------------------------------------------

    def run(self):
        try:
            self.loop()
        except BaseException:
            log.exception("the concoord client's I/O thread failed")
            with self.lock:
                self.core._fatal_error(ProtocolError("the client's I/O thread failed; see the log"))
                self.core.take_effects()
                self.close_sock()
        finally:
            self.selector.close()
            self.wake_r.close()
            self.wake_w.close()
            # The reader pipe stays open: a reader may still be polling it, and
            # it is closed with the shell.

    def loop(self):
        while True:
            with self.lock:
                self.after()
                if self.exiting:
                    self.close_sock()
                    return
                target, self.connect_to = self.connect_to, None
                if target is None:
                    deadline = self.core.next_deadline()
                    self.watch_socket(bool(self.core.out))
                    self.sleeping_until = deadline if deadline is not None else float("inf")
            if target is not None:
                self.dial(target)
                continue
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = self.selector.select(timeout)
            with self.deferring_wakes(), self.lock:
                self.sleeping_until = float("-inf")
                for key, mask in events:
                    if key.fileobj is self.wake_r:
                        try:
                            while self.wake_r.recv(4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                    elif key.fileobj is self.sock and mask & selectors.EVENT_READ:
                        self.read()
                now = time.monotonic()
                deadline = self.core.next_deadline()
                if deadline is not None and now >= deadline:
                    self.core.on_tick(now)

    @contextlib.contextmanager
    def deferring_wakes(self):
        """Entered before the shell's lock and left after it: the callers whose
        calls are resolved inside are woken once the lock is free (``_deferred``)."""
        locks = _deferred.locks = []
        try:
            yield
        finally:
            _deferred.locks = None
            for lock in locks:
                lock.release()

    def watch_socket(self, want_write):
        if self.sock is None:
            return
        # The I/O thread reads while requests wait for answers and no caller reads
        # (an idle client's socket stays out of its selector: a sequential caller
        # then changes nothing there per call); while a calling thread flushes,
        # the socket is its to write.
        read = self.reader is None and bool(self.core.pending)
        events = (selectors.EVENT_READ if read else 0) | (
            selectors.EVENT_WRITE if want_write and not self.flushing else 0
        )
        if events != self.sock_events:
            if not events:
                self.selector.unregister(self.sock)
            elif self.sock_events:
                self.selector.modify(self.sock, events)
            else:
                self.selector.register(self.sock, events)
            self.sock_events = events

    def read(self):
        sock = self.sock
        target = self.core.link[1] if len(self.core.link) > 1 else "the replica"
        try:
            data = sock.recv(READ_CHUNK)
            # A TLS socket hands out one record per recv; the rest of a record
            # already decrypted would not wake the selector.
            pending = getattr(sock, "pending", None)
            while data and pending is not None and pending():
                data += sock.recv(READ_CHUNK)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError as e:
            self.close_sock()
            return self.core.on_disconnected(time.monotonic(), "reading from %s: %s" % (target, e))
        if not data:
            self.close_sock()
            return self.core.on_disconnected(time.monotonic(), "%s closed the connection" % target)
        self.buf += data
        self.take_frames(target)

    def take_frames(self, target):
        now = time.monotonic()
        try:
            bodies, end = _wire.split_frames(self.buf)
            del self.buf[:end]
            for body in bodies:
                self.core.on_frame(now, _wire.decode_server_frame(body))
                if self.core.has_effects():
                    # The core left this connection: the rest is stale.
                    break
        except _wire.FrameError as e:
            self.close_sock()
            self.core.on_disconnected(now, "%s sent a bad frame: %s" % (target, e))

    def claim_reader(self, future, writes_next=False):
        """With the lock held: makes this thread the reader, waiting for
        ``future``, if nobody reads; True if it did. A caller claims it before its
        request leaves, so that the I/O thread cannot take the answer first (and
        hand it over through a wake-up). ``writes_next``: the caller's
        ``after(defer=True)`` follows, so the queued bytes are a flusher's to write,
        not the I/O thread's."""
        if self.reader is not None or self.sock is None or self.exiting or future.done():
            return False
        self.reader, self.reader_future, self.reader_sock = (
            threading.current_thread(),
            future,
            self.sock,
        )
        self.watch_socket(bool(self.core.out) and not writes_next)
        return True

    def wait(self, future, reading=False):
        """Waits for ``future``, reading the connection in this thread meanwhile
        if no one else does (the I/O thread then stops watching it), so a reply
        wakes its caller directly instead of through the I/O thread. ``reading``:
        this thread claimed the reader's part already."""
        while not future.done():
            if not reading:
                with self.lock:
                    if future.done() or not self.claim_reader(future):
                        break
            reading = False
            try:
                self.read_until(future, self.reader_sock)
            finally:
                with self.lock:
                    self.stop_reading()
        if reading:
            with self.lock:
                self.stop_reading()
        return future.result()

    def stop_reading(self):
        """With the lock held: this thread stops reading; the timers are the I/O
        thread's again, woken only if something is due before it wakes anyway
        (the deadline the reader kept is often gone: its call was answered)."""
        self.reader = self.reader_future = self.reader_sock = None
        if self.reader_deadline != float("inf"):
            self.reader_deadline = float("inf")
            deadline = self.core.next_deadline()
            if deadline is not None and deadline < self.sleeping_until:
                self.wake()
        if not self.exiting:
            self.watch_socket(bool(self.core.out))

    def read_until(self, future, sock):
        poller = select.poll()
        with self.lock:
            # Under the lock: another thread may close the socket (a failover).
            if future.done() or self.sock is not sock or self.exiting:
                return
            poller.register(sock, select.POLLIN)
            poller.register(self.reader_wake_r, select.POLLIN)
        while True:
            with self.lock:
                if future.done() or self.sock is not sock or self.exiting:
                    return
                # Bounded, so that a missed poke costs a moment, never a hang.
                timeout_ms = READER_POLL_MS
                if self.reader_deadline != float("inf"):
                    left = math.ceil((self.reader_deadline - time.monotonic()) * 1000)
                    timeout_ms = max(0, min(READER_POLL_MS, left))
            events = poller.poll(timeout_ms)
            with self.deferring_wakes(), self.lock:
                if future.done() or self.sock is not sock or self.exiting:
                    return
                now = time.monotonic()
                if now >= self.reader_deadline:
                    self.reader_deadline = float("inf")
                    self.core.on_tick(now)
                for fd, _ in events:
                    if fd == self.reader_wake_r.fileno():
                        try:
                            while self.reader_wake_r.recv(4096):
                                pass
                        except OSError:
                            pass
                    else:
                        self.read()
                self.after()

    def dial(self, target):
        """Connects outside the lock (callers keep queueing meanwhile), then tells
        the core."""
        with self.lock:
            cluster = self.core.cluster
        try:
            sock, welcome, leftover = connect_socket(
                target,
                self.options.token,
                self.options.connect_timeout,
                cluster,
                self.options.ssl_context,
            )
        except _TlsFailed as e:
            with self.lock:
                self.core.on_connect_failed(time.monotonic(), TLS_FAILED, str(e))
            return
        except _Refused as e:
            with self.lock:
                self.core.on_connect_failed(time.monotonic(), e.kind, e.message)
            return
        except (OSError, _wire.FrameError) as e:
            with self.lock:
                self.core.on_connect_failed(time.monotonic(), None, "cannot connect to %s: %s" % (target, e))
            return
        sock.setblocking(False)
        with self.lock:
            if self.exiting or self.connect_to is not None or not self.core.on_connected(
                time.monotonic(), welcome.replica, welcome.leader
            ):
                sock.close()
                return
            self.sock = sock
            self.buf = bytearray(leftover)
            if self.buf:
                self.take_frames(target)


class Client:
    """A connection to a ConCoord cluster with one session, shared by every thread
    that calls it. Calls are pipelined: many threads may wait at once.

    ``bootstrap``: ``"host:port, host:port"`` or a list. Options, in seconds:
    ``lease`` (the cluster ends a silent client's session, releasing its locks,
    after this long; kept alive every lease/3), ``attempt_timeout`` (no answer at
    all for this long: fail over and resend), ``call_timeout`` (a call's total time,
    parked time included; None: wait until woken), ``connect_timeout``,
    ``give_up_after`` (no replica answered for this long: outstanding calls fail;
    None: never), ``liveness_timeout`` (a quiet replica that does not answer a
    Status probe within this long is left: a paused or cut-off leader costs about
    a second, not the attempt timeout). ``ssl_context``: an ``ssl.SSLContext``
    (``concoord.tls.client_context(ca, cert, key)``) for replicas started with
    ``--tls-cert``.

    The constructor returns once the session is open; it raises ``Unavailable``
    when no replica answered within ``give_up_after``, ``BadToken`` when the token
    was refused, ``TlsError`` when TLS failed (a certificate refused, or one side
    without TLS).
    """

    def __init__(
        self,
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
        ready = concurrent.futures.Future()
        nonce_seed = random.SystemRandom().getrandbits(63)
        core = Core(addrs, options, time.monotonic(), nonce_seed, ready)
        self._shell = shell = _Shell(core, options)
        self._finalizer = weakref.finalize(self, _drop, shell)
        shell.thread.start()
        with shell.lock:
            shell.after()
        try:
            ready.result()
        except BaseException:
            self.close()
            raise

    def call(self, object, method, args=(), timeout=DEFAULT):
        """Calls ``method`` of the object instance ``object`` with ``args`` and
        returns its result; raises the method's exception, or a
        ``concoord.exception`` error. A parked call (a held lock's ``acquire``)
        returns when woken; ``timeout`` (seconds; default: the client's
        ``call_timeout``) cancels it through the cluster, raising ``Timeout`` only
        once the cluster confirms it had no effect."""
        packed = _wire.pack_args(args)
        future = _Waiter()
        shell = self._shell
        with shell.lock:
            shell.core.call(time.monotonic(), object, method, packed, future, timeout)
            reading = shell.claim_reader(future, writes_next=True)
            flush = shell.after(defer=True)
        if flush:
            shell.flush()
        try:
            return shell.wait(future, reading)
        except BaseException:
            if not future.done():
                # Interrupted while waiting: take the call back (a parked acquire
                # must not be granted later to a caller who left).
                with shell.lock:
                    shell.core.abandon(time.monotonic(), future)
                    shell.after()
            raise

    def call_batch(self, calls):
        """Sends the calls ``[(object, method, args), ...]`` together, in this order
        (one write to the connection, so the leader can order them in one log
        slot), and returns a ``concurrent.futures.Future`` per call without
        waiting. Arguments are checked before anything is sent."""
        futures = [concurrent.futures.Future() for _ in calls]
        self._send_packed([(o, m, _wire.pack_args(a), f) for (o, m, a), f in zip(calls, futures)])
        return futures

    def _send_packed(self, calls):
        """Numbers and writes ``[(object, method, packed_args, future), ...]`` under
        one lock hold; their results go to the futures."""
        shell = self._shell
        with shell.lock:
            now = time.monotonic()
            for object, method, packed, future in calls:
                shell.core.call(now, object, method, packed, future, DEFAULT)
            flush = shell.after(defer=True)
        if flush:
            shell.flush()

    def create(self, name, type_name, args=(), timeout=DEFAULT):
        """Creates the instance ``name`` of ``type_name`` (``"Counter"`` or the
        original's ``"concoord.object.counter.Counter"``) with constructor ``args``;
        a no-op if it exists with that type, ``ValueError`` if with another."""
        packed = _wire.pack_args(args)
        future = concurrent.futures.Future()
        shell = self._shell
        with shell.lock:
            shell.core.create(time.monotonic(), name, type_name, packed, future, timeout)
            shell.after()
        shell.wait(future)

    def status(self):
        """The connected replica's description of itself and the cluster (a dict:
        ``role``, ``leader``, ``members``, ... as in docs/protocol.md §5)."""
        future = concurrent.futures.Future()
        shell = self._shell
        with shell.lock:
            shell.core.status(time.monotonic(), future)
            shell.after()
        return shell.wait(future)

    @property
    def session(self):
        """The session calls run in now (None before it opens); it changes when the
        cluster ended the previous one (a call then raised ``SessionExpired``)."""
        with self._shell.lock:
            return self._shell.core.session

    @property
    def cluster(self):
        """The identity of the cluster this client talks to (16 hex digits), pinned
        from the first replica status that names one (None until then): a replica
        of another cluster is never used."""
        with self._shell.lock:
            return self._shell.core.cluster

    def close(self):
        """Ends the session, releasing what it holds (locks, permits), and stops
        the client; later calls raise ``Unavailable``."""
        shell = self._shell
        future = concurrent.futures.Future()
        with shell.lock:
            shell.core.close(time.monotonic(), future)
            shell.after()
        future.result()
        if threading.current_thread() is not shell.thread:
            shell.thread.join()
            with shell.lock:
                if shell.reader is None:
                    shell.reader_wake_r.close()
                    shell.reader_wake_w.close()
        self._finalizer.detach()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<concoord.client.Client %s session=%s>" % (
            ", ".join(self._shell.core.addrs[:3]),
            self._shell.core.session,
        )


def _drop(shell):
    # The user's handle is gone: end the session without waiting and stop.
    with shell.lock:
        shell.core.close_now(time.monotonic())
        shell.after()


def status_of(addr, token=None, timeout=2.0, ssl_context=None):
    """Asks the replica at ``addr`` (one ``host:port``) to describe itself, without
    a session: connect, Hello, Status. Any replica answers, leader or not."""
    addrs = parse_bootstrap(addr)
    if len(addrs) != 1:
        raise ValueError("%r: give one replica's host:port" % (addr,))
    deadline = time.monotonic() + timeout
    try:
        sock, _, leftover = connect_socket(addrs[0], token, timeout, None, ssl_context)
    except _TlsFailed as e:
        raise TlsError(str(e)) from None
    except _Refused as e:
        if e.kind == "BadToken":
            raise BadToken("%s refused the token: %s" % (addrs[0], e.message)) from None
        if e.kind == "TlsRequired":
            raise TlsError("%s: %s" % (addrs[0], e.message)) from None
        raise Unavailable("%s refused the connection: %s" % (addrs[0], e)) from None
    except (OSError, _wire.FrameError) as e:
        raise Unavailable("cannot get the status of %s: %s" % (addrs[0], e)) from None
    with sock:
        try:
            sock.sendall(_wire.status(1))
            buf = bytearray(leftover)
            while True:
                bodies, end = _wire.split_frames(buf)
                del buf[:end]
                for body in bodies:
                    frame = _wire.decode_server_frame(body)
                    if isinstance(frame, _wire.Status) and frame.id == 1:
                        return frame.status
                    if isinstance(frame, _wire.Error):
                        raise Unavailable("%s: %s: %s" % (addrs[0], frame.kind, frame.message))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable("%s did not answer Status within %gs" % (addrs[0], timeout))
                sock.settimeout(left)
                data = sock.recv(READ_CHUNK)
                if not data:
                    raise Unavailable("%s closed the connection" % addrs[0])
                buf += data
        except (OSError, _wire.FrameError) as e:
            raise Unavailable("cannot get the status of %s: %s" % (addrs[0], e)) from None
