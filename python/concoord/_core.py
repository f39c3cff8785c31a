"""The client's decisions, without IO: which replica to talk to, what to (re)send,
when a request, a connection or the whole cluster counts as lost, and what each
answer means for the caller and for the session. A port of the Rust client's
``core.rs``, with the same rules (``docs/protocol.md`` §7).

``Core`` takes events stamped with ``now`` (``time.monotonic()`` seconds): a call
from a user, a connection made or lost, a decoded frame, a timer. It leaves bytes to
write in ``out`` and effects for the shell in ``take_effects()``: connect somewhere,
drop the connection, exit. Callers wait on *waiters*, objects with ``done()``,
``set_result()`` and ``set_exception()`` (``concurrent.futures.Future`` for the
threaded client, ``asyncio.Future`` for the asyncio one); resolving them is the
core's only side effect.

What it deliberately is not: it never touches a socket, a thread, a lock or the
clock, so both shells share it and the unit tests drive it step by step. It is not
thread-safe: the threaded shell calls it under one lock.
"""

import collections
import logging

from . import _dns, _wire
from .exception import (
    BadAddress,
    BadToken,
    MaybeExecuted,
    ProtocolError,
    SessionExpired,
    Timeout,
    Unavailable,
    remote_exception,
    TlsError,
)

log = logging.getLogger("concoord.client")

# Most requests outstanding at once; more wait, unnumbered, in `queued`. It stays
# below the replicas' limit of unacknowledged replies per session (1024).
PENDING_MAX = 1000
# Most request numbers between the oldest call still waiting in a session and the
# next one (the replicas keep every reply from the oldest unanswered request on, at
# most 1024 per session, and refuse more): later calls wait in the queue, so one
# long-parked call cannot make every call after it fail.
SPAN_MAX = 1000
# A request refused with Busy is resent after this delay, doubling per refusal.
BUSY_DELAY_MIN = 0.010
BUSY_DELAY_MAX = 0.500
# After a full round of addresses without an answer, reconnecting backs off from
# this delay, doubling per failed attempt.
RECONNECT_DELAY_MIN = 0.010
RECONNECT_DELAY_MAX = 1.0
# `close` waits at most this long for the cluster to confirm the session ended.
CLOSE_WAIT_MAX = 1.0
# A call past its timeout is cancelled; a cancel that finds it not parked yet (not
# applied yet) is repeated after this delay.
CANCEL_RETRY = 0.5
# How often the client asks a replica for the cluster's members, so that it can
# fail over to replicas it was not told about.
DISCOVER_EVERY = 30.0
# The most addresses kept (given plus learned).
ADDRS_MAX = 64

_SESSION_EXPIRED = (
    "the session ended (lease expired or closed): the call may or may not have run, and "
    "what the session held was released; later calls use a new session"
)

# Attempt states of a pending request.
UNSENT, SENT, PARKED, BUSY = "unsent", "sent", "parked", "busy"

INF = float("inf")

# Marks "use the client's call_timeout" where None means "no timeout".
DEFAULT = object()


# The ``kind`` a shell passes to ``on_connect_failed`` when TLS itself failed (a
# certificate refused, an alert): not an ErrorKind of the protocol.
TLS_FAILED = "tls"


class Options:
    """How a client talks to the cluster (seconds throughout)."""

    def __init__(
        self,
        token=None,
        lease=10.0,
        attempt_timeout=5.0,
        call_timeout=None,
        connect_timeout=2.0,
        give_up_after=60.0,
        liveness_timeout=0.6,
        ssl_context=None,
    ):
        if give_up_after is None:
            give_up_after = INF  # never give up: calls wait for the cluster to return
        for name, value in [
            ("lease", lease),
            ("attempt_timeout", attempt_timeout),
            ("connect_timeout", connect_timeout),
            ("give_up_after", give_up_after),
            ("liveness_timeout", liveness_timeout),
        ]:
            if not value > 0:
                raise ValueError("%s must be a positive number of seconds, not %r" % (name, value))
        if call_timeout is not None and not call_timeout >= 0:
            raise ValueError("call_timeout must be None or >= 0 seconds, not %r" % call_timeout)
        self.token = token
        self.lease = lease
        self.attempt_timeout = attempt_timeout
        self.call_timeout = call_timeout
        self.connect_timeout = connect_timeout
        self.give_up_after = give_up_after
        # A request unanswered on a connection silent for a quarter of this is
        # followed by a Status probe; no answer to it within this long: fail over.
        self.liveness_timeout = liveness_timeout
        # An ``ssl.SSLContext`` for replicas started with --tls-cert (None: plaintext).
        self.ssl_context = ssl_context


def parse_bootstrap(bootstrap):
    """The replica addresses in ``bootstrap``: the original's string
    ``"127.0.0.1:14000, 127.0.0.1:14001"`` or a list of ``host:port`` strings (or
    ``(host, port)`` pairs). Whitespace trimmed, empty entries skipped, duplicates
    dropped (first kept); IPv6 hosts in brackets."""
    if isinstance(bootstrap, str):
        entries = bootstrap.split(",")
    elif isinstance(bootstrap, (list, tuple)):
        entries = []
        for entry in bootstrap:
            if isinstance(entry, (list, tuple)) and len(entry) == 2:
                host, port = entry
                entry = "[%s]:%s" % (host, port) if ":" in str(host) else "%s:%s" % (host, port)
            if not isinstance(entry, str):
                raise BadAddress("%r is not a host:port string" % (entry,))
            entries.append(entry)
    else:
        raise BadAddress(
            "the bootstrap is a string \"host:port, host:port\" or a list, not %s"
            % type(bootstrap).__name__
        )
    addrs = []
    for entry in entries:
        entry = entry.strip()
        if entry:
            addr = _parse_addr(entry)
            if addr not in addrs:
                addrs.append(addr)
    if not addrs:
        raise BadAddress("no replica address in %r: give host:port[, host:port...]" % (bootstrap,))
    return addrs


def _parse_addr(entry):
    if _dns.is_dns(entry):
        # Looked up on every connection attempt (see _dns.pick).
        _dns.parse_url(entry)
        return entry
    host, sep, port = entry.rpartition(":")
    if not sep:
        raise BadAddress(
            "%r: no port: write host:port, or dns://DOMAIN[@server[:port]] to find the "
            "replicas through the domain's DNS SRV records" % entry
        )
    if not host:
        raise BadAddress("%r: no host: write host:port" % entry)
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise BadAddress("%r: an IPv6 host goes in brackets: [::1]:14000" % entry)
    if any(c.isspace() for c in host):
        raise BadAddress("%r: whitespace inside the address" % entry)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BadAddress("%r: the port must be a number from 1 to 65535" % entry)
    return entry


def split_addr(addr, timeout=1.5):
    """``(host, port)`` of a ``host:port`` (brackets of an IPv6 host removed), or of
    one replica of a ``dns://`` entry, looked up now (raises ``OSError``)."""
    if _dns.is_dns(addr):
        addr = _dns.pick(addr, timeout)
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def reconnect_delay(failures, addr_count):
    """No delay while there are untried addresses; then a doubling backoff."""
    if failures <= addr_count:
        return 0.0
    doublings = min(failures - addr_count - 1, 16)
    return min(RECONNECT_DELAY_MIN * (2**doublings), RECONNECT_DELAY_MAX)


def _resolve(waiter, value):
    if waiter is not None and not waiter.done():
        waiter.set_result(value)


def _fail(waiter, error):
    if waiter is not None and not waiter.done():
        waiter.set_exception(error)


class _Queued:
    """A call or creation waiting to be numbered (for a session, or for room)."""

    __slots__ = ("op", "waiter", "deadline")

    def __init__(self, op, waiter, deadline):
        self.op = op
        self.waiter = waiter
        self.deadline = deadline


class _Pending:
    """A request with an id and no final answer yet."""

    __slots__ = (
        "kind",
        "frame",
        "waiter",
        "attempt",
        "sent_at",
        "busy_until",
        "busy_delay",
        "deadline",
        "cancelling",
        "ever_sent",
    )

    def __init__(self, kind, frame, waiter, deadline):
        # ("open", nonce) | ("keepalive", session) | ("close",) | ("status",) |
        # ("discover",) | ("probe",) | ("call", session, request) | ("cancel", session, request, target)
        self.kind = kind
        # The whole frame: a resend is these bytes, unchanged.
        self.frame = frame
        self.waiter = waiter
        self.attempt = UNSENT
        self.sent_at = 0.0
        self.busy_until = 0.0
        self.busy_delay = BUSY_DELAY_MIN
        # The call's timeout (then, once cancelling, when to cancel again).
        self.deadline = deadline
        # The caller's timeout passed and a Cancel is under way: the call ends with
        # Timeout if the cancel takes it back, or with its own result.
        self.cancelling = False
        # Whether it ever left on a connection (so it may have run).
        self.ever_sent = False


class Core:
    """The client state machine. ``ready`` (a waiter) learns the first session."""

    def __init__(self, addrs, options, now, nonce_seed, ready=None):
        assert addrs, "parse_bootstrap never returns an empty list"
        self.addrs = list(addrs)
        self.options = options
        self.lease_ms = max(1, int(options.lease * 1000))
        self.keepalive_every = max(options.lease / 3.0, 0.001)
        self.close_wait = min(options.attempt_timeout, CLOSE_WAIT_MAX)
        # ("idle",) | ("waiting", target, at) | ("connecting", target) | ("up", target)
        self.link = ("idle",)
        self.next_addr = 0
        self.failures = 0
        self.outage_since = None
        self.last_error = "no attempt yet"
        # None | "opening" | (session, next request number)
        self.session_state = None
        self.ready = ready
        self.nonce_seed = nonce_seed
        self.pending = {}
        self.queued = collections.deque()
        self.next_id = 1
        self.keepalive_at = None
        self.discover_at = now
        # When the current connection last brought anything (for the liveness probe).
        self.heard_at = None
        # The cluster this client talks to: pinned from the first Status that names
        # one; every Hello names it from then on.
        self.cluster = None
        self.fatal = None
        self.closing = None
        self.exited = False
        self.out = bytearray()
        self.effects = []
        # What a sleeping timer may not know yet, without recomputing
        # `next_deadline` (a walk over every pending request) after every call:
        # `deadline_dirty` says any deadline may have moved earlier; otherwise
        # `new_deadline` is the earliest one the hot path (a call sent on an open
        # connection, its answer) added since the timer last looked.
        self.deadline_dirty = True
        self.new_deadline = INF
        self.start_session(now)

    # --- What the shell reads ----------------------------------------------------

    @property
    def session(self):
        """The open session's number, or None."""
        state = self.session_state
        return state[0] if isinstance(state, tuple) else None

    def take_effects(self):
        effects, self.effects = self.effects, []
        return effects

    def has_effects(self):
        return bool(self.effects)

    def wake_deadline(self):
        """What a timer sleeping until the last ``next_deadline`` needs to hear
        about: the earliest deadline added since, or None. Cheap on the hot path;
        after anything rarer it is ``next_deadline`` itself."""
        if self.deadline_dirty:
            return self.next_deadline()
        earliest, self.new_deadline = self.new_deadline, INF
        return None if earliest == INF else earliest

    def next_deadline(self):
        """The earliest time ``on_tick`` has something to do, or None."""
        self.deadline_dirty = False
        self.new_deadline = INF
        if self.exited:
            return None
        # A running minimum, not a list: this runs after every call, over every
        # pending request.
        earliest = INF
        if self.closing is not None:
            earliest = self.closing
        if self.outage_since is not None and self.has_work() and self.options.give_up_after != INF:
            earliest = min(earliest, self.outage_since + self.options.give_up_after)
        up = self.link[0] == "up"
        attempt_timeout = self.options.attempt_timeout
        for p in self.pending.values():
            if p.deadline is not None and p.deadline < earliest:
                earliest = p.deadline
            if p.attempt == BUSY:
                if p.busy_until < earliest:
                    earliest = p.busy_until
            elif p.attempt == SENT and up and p.sent_at + attempt_timeout < earliest:
                earliest = p.sent_at + attempt_timeout
        for q in self.queued:
            if q.deadline is not None and q.deadline < earliest:
                earliest = q.deadline
        if self.link[0] == "waiting":
            earliest = min(earliest, self.link[2])
        if self.keepalive_at is not None and self.session is not None:
            earliest = min(earliest, self.keepalive_at)
        check = self._liveness_check_at()
        if check is not None:
            earliest = min(earliest, check)
        return None if earliest == INF else earliest

    def _liveness_check_at(self):
        """When ``_check_liveness`` next has something to do: the probe's deadline
        while one is out, else when a request unanswered on a silent connection
        calls for a probe."""
        if self.link[0] != "up" or self.heard_at is None:
            return None
        oldest = None
        for p in self.pending.values():
            if p.attempt != SENT:
                continue
            if p.kind[0] == "probe":
                return max(p.sent_at, self.heard_at) + self.options.liveness_timeout
            if oldest is None or p.sent_at < oldest:
                oldest = p.sent_at
        if oldest is None:
            return None
        return max(oldest, self.heard_at) + self.options.liveness_timeout / 4.0

    def _check_liveness(self, now):
        """Leaves a replica that has gone quiet (paused, cut off) well before the
        attempt timeout: a live replica answers a Status probe at once."""
        at = self._liveness_check_at()
        if at is None or now < at:
            return
        if any(p.kind[0] == "probe" for p in self.pending.values()):
            self._fail_over(
                now,
                None,
                "%s answered neither a request nor a probe for %gs"
                % (self.link[1], self.options.liveness_timeout),
            )
        else:
            id = self._take_id()
            self._add_pending(now, id, ("probe",), _wire.status(id), None, None)

    # --- Commands from users -------------------------------------------------------

    def _refusal(self):
        if self.fatal is not None:
            return self.fatal
        if self.closing is not None or self.exited:
            return Unavailable("the client is closed: create a new one")
        return None

    def _deadline(self, now, timeout):
        if timeout is DEFAULT:
            timeout = self.options.call_timeout
        return None if timeout is None else now + timeout

    def call(self, now, object, method, packed_args, waiter, timeout=DEFAULT):
        """Calls ``method`` of instance ``object``; ``packed_args`` from
        ``_wire.pack_args``. ``timeout``: seconds, None for none, or DEFAULT."""
        self._command(now, ("call", object, method, packed_args), waiter, timeout)

    def create(self, now, name, type_name, packed_args, waiter, timeout=DEFAULT):
        self._command(now, ("create", name, type_name, packed_args), waiter, timeout)

    def _command(self, now, op, waiter, timeout):
        refusal = self._refusal()
        if refusal is not None:
            return _fail(waiter, refusal)
        queued = _Queued(op, waiter, self._deadline(now, timeout))
        if (
            self.session is not None
            and not self.queued
            and len(self.pending) < PENDING_MAX
            and not self._span_full()
        ):
            self._issue(now, queued)
        else:
            self.deadline_dirty = True
            self.queued.append(queued)
            self.start_session(now)

    def abandon(self, now, waiter):
        """The caller of the call ``waiter`` waits for stopped waiting (a cancelled
        asyncio task, an interrupt): a call not sent yet is dropped; a sent one is
        taken back through the cluster, as on a timeout, so that a parked acquire
        is not granted later to a caller who left. If it completed first, its
        result goes nowhere."""
        self.deadline_dirty = True
        for q in self.queued:
            if q.waiter is waiter:
                self.queued.remove(q)
                return
        for id, p in self.pending.items():
            if p.waiter is waiter and p.kind[0] == "call":
                if not p.cancelling:
                    self._on_call_timeout(now, id)
                return

    def status(self, now, waiter):
        """Asks the connected replica to describe itself (a dict)."""
        self.deadline_dirty = True
        refusal = self._refusal()
        if refusal is not None:
            return _fail(waiter, refusal)
        id = self._take_id()
        self._add_pending(now, id, ("status",), _wire.status(id), waiter, None)

    def close(self, now, waiter):
        """Ends the session (releasing what it holds), waiting briefly for the
        cluster to confirm, then exits. ``waiter`` gets None when done."""
        self.deadline_dirty = True
        if self.exited or self.closing is not None:
            return _resolve(waiter, None)
        self.closing = now + self.close_wait
        session = self.session
        if session is None:
            _resolve(waiter, None)
            return self._finish_close()
        id = self._take_id()
        self._add_pending(now, id, ("close",), _wire.close_session(id, session), waiter, None)

    def close_now(self, now):
        """The user's handle is gone: end the session without waiting (its lease
        would end it anyway) and exit."""
        self.deadline_dirty = True
        if self.exited:
            return
        session = self.session
        if session is not None and self.link[0] == "up":
            self.out += _wire.close_session(self._take_id(), session)
        self._fail_all(Unavailable("the client was closed"))
        self.exited = True
        self.effects.append(("exit",))

    # --- Events from the shell -----------------------------------------------------

    def on_connected(self, now, replica, leader):
        """The shell connected to the target it was told; returns False if the core
        no longer wants that connection (the shell then closes it)."""
        self.deadline_dirty = True
        if self.link[0] != "connecting":
            return False
        target = self.link[1]
        self.link = ("up", target)
        self.heard_at = now
        log.debug("connected to %s (leader: %s); resending %d requests", target, leader, len(self.pending))
        if leader:
            self._learn(leader)
        # Unfinished requests go again, unchanged and in order: the replicas answer
        # a retried call from their session table instead of running it twice.
        for p in self.pending.values():
            self.out += p.frame
            p.attempt = SENT
            p.sent_at = now
            p.ever_sent = True
        if now >= self.discover_at:
            self.discover_at = now + DISCOVER_EVERY
            id = self._take_id()
            self._add_pending(now, id, ("discover",), _wire.status(id), None, None)
        return True

    def on_connect_failed(self, now, kind, message):
        """Connecting failed: ``kind`` is the ErrorKind the replica refused Hello
        with, or None when there was no answer (``message`` says why)."""
        self.deadline_dirty = True
        if self.link[0] != "connecting":
            return
        target = self.link[1]
        if kind == "BadToken":
            self._fatal_error(BadToken("%s refused the token: %s" % (target, message)))
        elif kind == "TlsRequired":
            self._fatal_error(TlsError("%s: %s" % (target, message)))
        elif kind == TLS_FAILED:
            self._fatal_error(TlsError(message))
        elif kind == "BadVersion":
            self._fatal_error(
                ProtocolError(
                    "%s speaks another protocol version (%s): use a client of the "
                    "replicas' version" % (target, message)
                )
            )
        elif kind is not None:
            self._fail_over(now, None, "%s refused the connection: %s: %s" % (target, kind, message))
        else:
            self._fail_over(now, None, message)

    def on_disconnected(self, now, why):
        """The connection broke (closed, reset, a failed write, or bytes that are
        not a frame of ours)."""
        self.deadline_dirty = True
        if self.link[0] == "up":
            self._fail_over(now, None, why)

    def on_frame(self, now, frame):
        if self.link[0] != "up":
            return
        target = self.link[1]
        self.heard_at = now
        if isinstance(frame, _wire.Reply):
            self._progress()
            p = self.pending.get(frame.id)
            if (
                p is None
                or p.kind[0] != "call"
                or p.cancelling
                or frame.reply[0] not in ("Value", "Error", "Parked")
            ):
                # Anything but a call's plain answer may move a deadline earlier.
                self.deadline_dirty = True
            self._on_reply(now, frame.id, frame.reply)
            return
        self.deadline_dirty = True
        if isinstance(frame, _wire.Status):
            self._progress()
            p = self.pending.get(frame.id)
            if p is not None and p.kind[0] == "probe":
                del self.pending[frame.id]
            elif p is not None and p.kind[0] in ("status", "discover"):
                del self.pending[frame.id]
                if p.kind[0] == "discover":
                    why = self._check_cluster(target, frame.status)
                    if why is not None:
                        return self._fail_over(now, None, why)
                self._learn_members(frame.status)
                _resolve(p.waiter, frame.status)
                self._drain_queued(now)
        elif isinstance(frame, _wire.Redirect):
            # The first redirect moves the whole pipeline; the rest of this
            # connection's frames are not read (the shell stops at has_effects).
            leader = frame.leader
            why = "%s does not lead (leader: %s)" % (target, leader or "unknown")
            if leader:
                self._learn(leader)
            self._fail_over(now, leader if leader and leader != target else None, why)
        elif isinstance(frame, _wire.Error):
            self._on_error(now, target, frame.id, frame.kind, frame.message)
        # A second Welcome means nothing.

    def on_tick(self, now):
        self.deadline_dirty = True
        if self.exited:
            return
        if self.closing is not None and now >= self.closing:
            return self._finish_close()
        if (
            self.outage_since is not None
            and now >= self.outage_since + self.options.give_up_after
            and self.has_work()
        ):
            self._give_up()
        for id in [id for id, p in self.pending.items() if p.deadline is not None and now >= p.deadline]:
            self._on_call_timeout(now, id)
        if any(q.deadline is not None and now >= q.deadline for q in self.queued):
            kept = collections.deque()
            for q in self.queued:
                if q.deadline is not None and now >= q.deadline:
                    _fail(q.waiter, Timeout("the call timed out before it was sent: it had no effect"))
                else:
                    kept.append(q)
            self.queued = kept
        up = self.link[0] == "up"
        for p in self.pending.values():
            if p.attempt == BUSY and now >= p.busy_until:
                p.attempt = UNSENT
                if up:
                    self.out += p.frame
                    p.attempt = SENT
                    p.sent_at = now
                    p.ever_sent = True
        if up:
            limit = self.options.attempt_timeout
            if any(p.attempt == SENT and now >= p.sent_at + limit for p in self.pending.values()):
                self._fail_over(now, None, "%s did not answer within %gs" % (self.link[1], limit))
        if self.link[0] == "waiting" and now >= self.link[2]:
            target = self.link[1]
            if self.pending:
                self._connect(target)
            else:
                self.link = ("idle",)
        self._check_liveness(now)
        if self.queued:
            self._drain_queued(now)
        session = self.session
        if session is not None and self.keepalive_at is not None and now >= self.keepalive_at:
            self.keepalive_at = now + self.keepalive_every
            self._on_keepalive(now, session)

    # --- Answers -------------------------------------------------------------------

    def _on_error(self, now, target, id, kind, message):
        outstanding = id is not None and id in self.pending
        if kind == "BadToken":
            self._fatal_error(BadToken("%s refused the token: %s" % (target, message)))
        elif kind == "TlsRequired":
            self._fatal_error(TlsError("%s: %s" % (target, message)))
        elif kind == "BadVersion":
            self._fatal_error(
                ProtocolError("%s speaks another protocol version (%s)" % (target, message))
            )
        elif kind == "Busy" and outstanding:
            p = self.pending[id]
            p.attempt = BUSY
            p.busy_until = now + p.busy_delay
            p.busy_delay = min(p.busy_delay * 2, BUSY_DELAY_MAX)
        elif kind in ("RequestTooLarge", "BadFrame") and outstanding:
            self._drop_pending(
                id, ProtocolError("%s refused a request: %s: %s" % (target, kind, message))
            )
        elif kind in ("Busy", "RequestTooLarge", "BadFrame") and id is not None:
            pass  # about a request that is finished already
        else:
            # Not ready, or the connection is unusable: try another replica.
            self._fail_over(now, None, "%s: %s: %s" % (target, kind, message))

    def _on_reply(self, now, id, reply):
        p = self.pending.get(id)
        if p is None:
            return  # a call that timed out, or a duplicate answer
        tag, body = reply
        kind = p.kind
        if kind[0] == "call" and tag == "Parked":
            p.attempt = PARKED
            return
        del self.pending[id]
        try:
            self._on_final_reply(now, p, tag, body)
        finally:
            self._drain_queued(now)

    def _on_final_reply(self, now, p, tag, body):
        kind = p.kind
        what = kind[0]
        if tag == "Error" and p.cancelling and body[0] == "CancelledError":
            # The cancel took the call back: to its caller, that is its timeout.
            return _fail(p.waiter, Timeout("the call timed out and was cancelled: it had no effect"))
        if what == "open" and tag == "SessionOpened" and body[0] == kind[1]:
            return self._on_session_opened(now, body[1], p.waiter)
        if what == "keepalive" and (tag == "SessionUnknown" or (tag == "Value" and body is False)):
            return self._on_session_lost(now, kind[1])
        if what == "keepalive" and tag == "Value":
            return
        if what == "close":
            _resolve(p.waiter, None)
            return self._finish_close()
        if what == "call" and tag == "Value":
            return _resolve(p.waiter, body)
        if what == "call" and tag == "Error" and body[0] == "AcknowledgedError":
            # The cluster says this request was acknowledged already: a bug of the
            # client's numbering, not the method's error.
            return _fail(p.waiter, ProtocolError(body[1]))
        if what == "call" and tag == "Error":
            return _fail(p.waiter, remote_exception(body[0], body[1]))
        if what in ("call", "cancel") and tag == "SessionUnknown":
            _fail(p.waiter, SessionExpired(_SESSION_EXPIRED))
            return self._on_session_lost(now, kind[1])
        if what == "cancel" and tag == "Value" and isinstance(body, bool):
            if not body:
                # Not parked (yet): if the call still waits, cancel it again soon.
                target = ("call", kind[1], kind[3])
                for other in self.pending.values():
                    if other.cancelling and other.kind == target:
                        other.deadline = now + CANCEL_RETRY
            return
        _fail(p.waiter, ProtocolError("unexpected answer %r to %r" % ((tag, body), kind)))
        if what == "open":
            self.session_state = None
            if self.queued:
                self.start_session(now)

    def _on_session_opened(self, now, session, waiter):
        assert self.session_state == "opening", "one OpenSession at a time"
        log.debug("session %d opened", session)
        self.session_state = (session, 1)
        self.keepalive_at = now + self.keepalive_every
        _resolve(waiter, session)
        self._drain_queued(now)

    def _on_session_lost(self, now, session):
        """The cluster no longer knows ``session``: every call outstanding in it is
        lost (a parked one would never be woken); later calls need a new session."""
        if self.session != session:
            return
        log.warning("session %d ended (lease expired or closed); opening a new one", session)
        self.session_state = None
        self.keepalive_at = None
        lost = [
            id
            for id, p in self.pending.items()
            if p.kind[0] in ("call", "cancel", "keepalive") and p.kind[1] == session
        ]
        for id in lost:
            self._drop_pending(id, SessionExpired(_SESSION_EXPIRED))
        if self.closing is not None:
            return self._finish_close()
        self.start_session(now)

    # --- Sending -------------------------------------------------------------------

    def _on_keepalive(self, now, session):
        # Callers that stopped waiting (a cancelled asyncio task) would hold `acked`
        # back forever: forget them, unless their call is being taken back (it
        # needs its pending entry to cancel again). Their requests may still run.
        for id in [
            id
            for id, p in self.pending.items()
            if p.waiter is not None and p.waiter.cancelled() and not p.cancelling
        ]:
            del self.pending[id]
        if any(p.kind[0] == "keepalive" for p in self.pending.values()):
            return
        id = self._take_id()
        self._add_pending(now, id, ("keepalive", session), _wire.keep_alive(id, session), None, None)

    def _oldest_waiting(self, session, next_number):
        """The number of the oldest call (or cancel) of ``session`` still waiting,
        or ``next_number``. Requests of a session are numbered in the order their ids
        are taken, and ``pending`` keeps insertion order, so the first one found is
        the oldest."""
        for p in self.pending.values():
            if p.kind[0] in ("call", "cancel") and p.kind[1] == session:
                return min(next_number, p.kind[2])
        return next_number

    def _span_full(self):
        state = self.session_state
        if not isinstance(state, tuple):
            return False
        session, next_number = state
        return next_number - self._oldest_waiting(session, next_number) >= SPAN_MAX

    def _drain_queued(self, now):
        while (
            self.queued
            and self.session is not None
            and len(self.pending) < PENDING_MAX
            and not self._span_full()
        ):
            queued = self.queued.popleft()
            if not queued.waiter.done():
                self._issue(now, queued)

    def _issue(self, now, queued):
        """Numbers a call in the open session and sends it."""
        session, next_number = self.session_state
        if queued.deadline is not None and now >= queued.deadline:
            return _fail(queued.waiter, Timeout("the call timed out before it was sent: it had no effect"))
        # The replicas may forget every reply below the oldest request still waiting.
        acked = self._oldest_waiting(session, next_number)
        id = self._take_id()
        op = queued.op
        try:
            if op[0] == "call":
                frame = _wire.call(id, session, next_number, acked, op[1], op[2], op[3])
            else:
                frame = _wire.create(id, session, next_number, op[1], op[2], op[3])
        except (ValueError, TypeError) as e:
            return _fail(queued.waiter, e)
        self.session_state = (session, next_number + 1)
        kind = ("call", session, next_number)
        self._add_pending(now, id, kind, frame, queued.waiter, queued.deadline)

    def start_session(self, now):
        if self.session_state is not None or self.exited or self.fatal is not None:
            return
        id = self._take_id()
        nonce = (self.nonce_seed + id) & ((1 << 64) - 1)
        waiter, self.ready = self.ready, None
        self.session_state = "opening"
        frame = _wire.open_session(id, nonce, self.lease_ms)
        self._add_pending(now, id, ("open", nonce), frame, waiter, None)

    def _add_pending(self, now, id, kind, frame, waiter, deadline):
        p = _Pending(kind, frame, waiter, deadline)
        if self.link[0] == "up":
            self.out += frame
            p.attempt = SENT
            p.sent_at = now
            p.ever_sent = True
            # Its attempt timeout, its own deadline, and the liveness check it may
            # start (exact when it is the only request out, else later than the
            # oldest one's, which the timer knows).
            earliest = now + self.options.attempt_timeout
            if deadline is not None and deadline < earliest:
                earliest = deadline
            if self.heard_at is not None:
                check = max(now, self.heard_at) + self.options.liveness_timeout / 4.0
                if check < earliest:
                    earliest = check
            if earliest < self.new_deadline:
                self.new_deadline = earliest
        else:
            self.deadline_dirty = True
        assert id not in self.pending, "request ids are never reused"
        self.pending[id] = p
        self._ensure_link(now)

    def _on_call_timeout(self, now, id):
        """A call's timeout passed: ask the cluster to take it back (through the
        log, so it is ordered against whatever would wake it), and answer the
        caller when the cluster says which came first."""
        p = self.pending.get(id)
        if p is None:
            return
        if p.kind[0] != "call" or self.session != p.kind[1]:
            # Nobody can be asked any more (the session is gone).
            return self._drop_pending(id, self._lost(p, "its timeout passed"))
        session, next_number = self.session_state
        p.cancelling = True
        p.deadline = None
        cancel_id = self._take_id()
        self.session_state = (session, next_number + 1)
        frame = _wire.cancel(cancel_id, session, next_number, p.kind[2])
        self._add_pending(now, cancel_id, ("cancel", session, next_number, p.kind[2]), frame, None, None)

    def _lost(self, p, why):
        """The error for a request abandoned because ``why``: a call that left may
        have run; one that never left did not."""
        if p.kind[0] == "call" and p.ever_sent:
            return MaybeExecuted(
                "the call was sent but %s before it was answered: it may or may not have "
                "taken effect" % why
            )
        if p.kind[0] == "call" and why == "its timeout passed":
            return Timeout("the call timed out before it was sent: it had no effect")
        return Unavailable("the request was not sent: %s" % why)

    def _drop_pending(self, id, error):
        p = self.pending.pop(id, None)
        if p is None:
            return
        if p.kind[0] == "open" and self.session_state == "opening":
            self.session_state = None
        if p.kind[0] == "close":
            # Closing succeeds whatever happens: the lease ends the session anyway.
            return _resolve(p.waiter, None)
        _fail(p.waiter, error)

    # --- Connections ---------------------------------------------------------------

    def _ensure_link(self, now):
        if self.link[0] == "idle" and self.pending and self.fatal is None:
            if self.outage_since is None:
                self.outage_since = now
            self._connect(self._next_target())

    def _connect(self, target):
        self.link = ("connecting", target)
        self.effects.append(("connect", target))

    def _next_target(self):
        target = self.addrs[self.next_addr % len(self.addrs)]
        self.next_addr += 1
        return target

    def _learn(self, addr):
        try:
            addr = _parse_addr(addr)
        except BadAddress:
            return
        if addr not in self.addrs and len(self.addrs) < ADDRS_MAX:
            self.addrs.append(addr)

    def _check_cluster(self, target, status):
        """Pins the cluster the first replica that reports one belongs to; from then
        on every Hello names it (a replica of another cluster refuses the
        connection with OtherCluster), and a replica that reports another cluster
        is left for the next. A process founded on an old member's address must
        never answer this client's calls. Returns why to leave, or None."""
        theirs = status.get("cluster") if isinstance(status, dict) else None
        if not isinstance(theirs, str):
            return None
        if self.cluster is None:
            self.cluster = theirs
            log.debug("talking to cluster %s", theirs)
            return None
        if theirs != self.cluster:
            return "%s belongs to cluster %s, not %s" % (target, theirs, self.cluster)
        return None

    def _learn_members(self, status):
        members = status.get("members") if isinstance(status, dict) else None
        for member in members or []:
            if isinstance(member, dict) and isinstance(member.get("addr"), str):
                self._learn(member["addr"])

    def _fail_over(self, now, redirect, why):
        """Leaves the current replica (broken, silent, not the leader, not ready)
        for ``redirect`` or the next address; everything unfinished is resent."""
        log.info("failing over (redirect: %s): %s", redirect, why)
        self.last_error = why
        self.out.clear()
        self.effects.append(("disconnect",))
        # The next connection is probed afresh.
        for id in [id for id, p in self.pending.items() if p.kind[0] == "probe"]:
            del self.pending[id]
        for p in self.pending.values():
            if p.attempt == SENT:
                p.attempt = UNSENT
        self.failures += 1
        if not self.pending:
            # Nobody waits: reconnect when someone does, and measure an outage from then.
            self.link = ("idle",)
            self.outage_since = None
            return
        if self.outage_since is None:
            self.outage_since = now
        if now >= self.outage_since + self.options.give_up_after:
            return self._give_up()
        target = redirect if redirect is not None else self._next_target()
        delay = reconnect_delay(self.failures, len(self.addrs))
        if delay == 0:
            self._connect(target)
        else:
            self.link = ("waiting", target, now + delay)

    def _progress(self):
        """A replica answered a request: the cluster is reachable again."""
        self.failures = 0
        self.outage_since = None

    def _give_up(self):
        why = "no replica answered for %gs (tried %s); last error: %s" % (
            self.options.give_up_after,
            ", ".join(self.addrs),
            self.last_error,
        )
        log.warning("giving up on outstanding requests: %s", why)
        for id in list(self.pending):
            p = self.pending[id]
            self._drop_pending(id, self._lost(p, why))
        for q in self.queued:
            _fail(q.waiter, Unavailable("the call was not sent: " + why))
        self.queued.clear()
        self.link = ("idle",)
        self.effects.append(("disconnect",))
        self.out.clear()
        self.failures = 0
        self.outage_since = None
        if self.closing is not None:
            self._finish_close()

    def _fatal_error(self, error):
        log.error("the cluster refuses this client: %s", error)
        self.fatal = error
        self._fail_all(error)
        self.link = ("idle",)
        self.effects.append(("disconnect",))
        self.out.clear()
        if self.closing is not None:
            self._finish_close()

    def _finish_close(self):
        if self.exited:
            return
        self._fail_all(Unavailable("the client was closed"))
        self.exited = True
        self.link = ("idle",)
        self.effects.append(("exit",))

    def _fail_all(self, error):
        for id in list(self.pending):
            p = self.pending[id]
            if isinstance(error, Unavailable) and not isinstance(error, MaybeExecuted):
                self._drop_pending(id, self._lost(p, str(error)))
            else:
                self._drop_pending(id, error)
        for q in self.queued:
            _fail(q.waiter, error)
        self.queued.clear()

    def has_work(self):
        return bool(self.pending) or bool(self.queued)

    def _take_id(self):
        id = self.next_id
        self.next_id += 1
        return id
