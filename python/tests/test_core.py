"""Unit tests of the client's decisions (concoord._core), driven step by step with
a fake clock and decoded frames, as the Rust client's core tests are."""

import concurrent.futures

import pytest

from concoord import _core, _wire
from concoord.exception import (
    BadAddress,
    BadToken,
    MaybeExecuted,
    ProtocolError,
    RemoteError,
    SessionExpired,
    Timeout,
    Unavailable,
)

NONCE_SEED = 1000
T0 = 100.0


def sent(core):
    """The client frames the core queued (decoded, and taken)."""
    bodies, end = _wire.split_frames(core.out)
    assert end == len(core.out), "only whole frames are queued"
    core.out.clear()
    return [_wire.unpack(b) for b in bodies]


def requests(frames):
    """[(frame id, variant, fields)] of request frames."""
    out = []
    for f in frames:
        if "Request" not in f:
            continue
        ((variant, fields),) = f["Request"]["request"].items()
        out.append((f["Request"]["id"], variant, fields))
    return out


def reply(id, tag, body=None):
    return _wire.Reply(id, 1, 1, (tag, body))


class Fixture:
    def __init__(self, **options):
        self.now = T0
        self.ready = concurrent.futures.Future()
        opts = _core.Options(**options)
        self.core = _core.Core(["a:1", "b:2"], opts, self.now, NONCE_SEED, self.ready)

    def open(self):
        """Connects to the first address and opens session 5."""
        assert self.core.take_effects() == [("connect", "a:1")]
        assert self.core.on_connected(self.now, 0, None)
        raw = sent(self.core)
        (id, variant, fields) = requests(raw)[0]
        assert variant == "OpenSession"
        assert fields == {"nonce": NONCE_SEED + id, "lease_ms": 10000}
        self.core.on_frame(self.now, reply(id, "SessionOpened", (fields["nonce"], 5)))
        assert self.ready.result(0) == 5
        # The member discovery the connection started: answer it.
        (status,) = sent_status(raw)
        self.core.on_frame(self.now, _wire.Status(status, {"members": [{"addr": "c:3"}]}))
        assert self.core.addrs == ["a:1", "b:2", "c:3"]

    def call(self, method="m", timeout=_core.DEFAULT):
        future = concurrent.futures.Future()
        self.core.call(self.now, "o", method, _wire.pack_args([]), future, timeout)
        return future


def sent_status(frames):
    return [f["Status"]["id"] for f in frames if "Status" in f]


def calls(core):
    """[frame id, request number, acked] of each Call queued."""
    return [
        [id, fields["request"], fields["acked"]]
        for id, variant, fields in requests(sent(core))
        if variant == "Call"
    ]


def test_acked_is_the_oldest_call_still_waiting_parked_ones_included():
    f = Fixture()
    f.open()
    f.call(), f.call(), f.call()
    frames = calls(f.core)
    assert [n[1:] for n in frames] == [[1, 1], [2, 1], [3, 1]]
    ids = [n[0] for n in frames]
    f.core.on_frame(f.now, reply(ids[1], "Value", None))
    f.call()
    assert calls(f.core)[0][1:] == [4, 1], "1 and 3 are still waiting"
    f.core.on_frame(f.now, reply(ids[0], "Parked"))
    f.core.on_frame(f.now, reply(ids[2], "Value", None))
    f.call()
    assert calls(f.core)[0][1:] == [5, 1], "1 is parked, so unfinished"
    f.core.on_frame(f.now, reply(ids[0], "Value", True))
    f.call()
    assert calls(f.core)[0][1:] == [6, 4], "4 and 5 are still waiting"


def timed_out_call(f):
    answer = f.call("acquire")
    (id, _, _), = [n for n in [calls(f.core)[0]]]
    f.core.on_frame(f.now, reply(id, "Parked"))
    assert f.core.next_deadline() == f.now + 1.0
    f.core.on_tick(f.now + 1.0)
    assert not answer.done(), "no answer until the cluster says which came first"
    return answer, id


def cancel_of(core):
    (only,) = [(id, fields) for id, variant, fields in requests(sent(core)) if variant == "Cancel"]
    return only[0], only[1]["request"], only[1]["target"]


def test_a_timed_out_call_is_cancelled_and_fails_with_timeout_once_taken_back():
    f = Fixture(call_timeout=1.0)
    f.open()
    answer, id = timed_out_call(f)
    cancel_id, number, target = cancel_of(f.core)
    assert (number, target) == (2, 1), "the cancel is numbered after the call it names"
    f.core.on_frame(f.now, reply(cancel_id, "Value", True))
    f.core.on_frame(f.now, reply(id, "Error", ("CancelledError", "gone")))
    with pytest.raises(Timeout):
        answer.result(0)


def test_a_timed_out_call_that_completed_first_returns_its_result():
    f = Fixture(call_timeout=1.0)
    f.open()
    answer, id = timed_out_call(f)
    cancel_id, _, _ = cancel_of(f.core)
    # The release that woke it was ordered before the cancel: the grant stands.
    f.core.on_frame(f.now, reply(id, "Value", True))
    assert answer.result(0) is True
    f.core.on_frame(f.now, reply(cancel_id, "Value", False))
    assert sent(f.core) == []


def test_a_cancel_that_finds_nothing_parked_yet_is_repeated():
    f = Fixture(call_timeout=1.0)
    f.open()
    timed_out_call(f)
    cancel_id, _, _ = cancel_of(f.core)
    f.core.on_frame(f.now, reply(cancel_id, "Value", False))
    retry = f.now + _core.CANCEL_RETRY
    assert f.core.next_deadline() == retry
    f.core.on_tick(retry)
    _, number, target = cancel_of(f.core)
    assert (number, target) == (3, 1)


def test_a_per_call_timeout_overrides_the_clients():
    f = Fixture()
    f.open()
    f.call("acquire", timeout=0.25)
    f.call("other")
    ids = [n[0] for n in calls(f.core)]
    f.core.on_frame(f.now, reply(ids[0], "Parked"))
    f.core.on_frame(f.now, reply(ids[1], "Parked"))
    f.core.on_tick(f.now + 0.25)
    _, _, target = cancel_of(f.core)
    assert target == 1, "only the call with a timeout is cancelled"


def test_a_redirect_moves_every_unfinished_request_to_the_leader_byte_for_byte():
    f = Fixture()
    f.open()
    answer = f.call("a")
    f.call("b")
    before = bytes(f.core.out)
    id = calls(f.core)[0][0]
    f.core.on_frame(f.now, _wire.Redirect(id, "d:4"))
    assert f.core.take_effects() == [("disconnect",), ("connect", "d:4")], "to the leader named"
    assert "d:4" in f.core.addrs, "a leader it learns is a failover target from now on"
    assert f.core.out == b""
    f.core.on_connected(f.now, 2, None)
    assert bytes(f.core.out) == before, "resent unchanged, in order"
    assert not answer.done()


def test_a_bad_token_is_final_and_never_retried():
    f = Fixture()
    assert f.core.take_effects() == [("connect", "a:1")]
    f.core.on_connect_failed(f.now, "BadToken", "no")
    with pytest.raises(BadToken):
        f.ready.result(0)
    assert f.core.take_effects() == [("disconnect",)]
    answer = f.call()
    with pytest.raises(BadToken):
        answer.result(0)
    assert f.core.take_effects() == [], "no new connection"
    assert f.core.next_deadline() is None, "no timer to retry with"


def test_busy_requests_are_resent_after_a_doubling_backoff():
    f = Fixture()
    f.open()
    f.call()
    first = bytes(f.core.out)
    id = calls(f.core)[0][0]
    now = f.now
    for delay_ms in [10, 20, 40, 80, 160, 320, 500, 500]:
        f.core.on_frame(now, _wire.Error(id, "Busy", ""))
        resend_at = now + delay_ms / 1000
        assert f.core.next_deadline() == pytest.approx(resend_at)
        f.core.on_tick(resend_at - 0.001)
        assert f.core.out == b"", "not before the backoff"
        f.core.on_tick(resend_at)
        assert bytes(f.core.out) == first, "the same bytes again"
        f.core.out.clear()
        now = resend_at
    assert f.core.take_effects() == [], "busy never costs the connection"


def test_an_unanswered_request_fails_over_after_the_attempt_timeout_but_a_parked_one_does_not():
    f = Fixture(attempt_timeout=1.0, liveness_timeout=60.0)
    f.open()
    f.call()
    id = calls(f.core)[0][0]
    f.core.on_frame(f.now, reply(id, "Parked"))
    later = f.now + 3
    f.core.on_tick(later)
    assert f.core.take_effects() == [], "a parked call waits as long as it takes"
    f.now = later
    f.call()
    sent(f.core)
    f.core.on_tick(later + 0.999)
    assert f.core.take_effects() == []
    f.core.on_tick(later + 1.0)
    assert f.core.take_effects() == [("disconnect",), ("connect", "b:2")]


def test_a_quiet_replica_is_probed_and_left_when_the_probe_brings_nothing():
    f = Fixture(liveness_timeout=0.6)
    f.open()
    start = f.now
    f.call()
    assert sent_status(sent(f.core)) == []
    f.core.on_tick(start + 0.149)
    assert sent_status(sent(f.core)) == [], "not before a quarter of the liveness timeout"
    assert f.core.next_deadline() == pytest.approx(start + 0.15)
    f.core.on_tick(start + 0.15)
    assert len(sent_status(sent(f.core))) == 1, "a silent connection is probed"
    f.core.on_tick(start + 0.7)
    assert sent_status(sent(f.core)) == [], "one probe at a time"
    assert f.core.take_effects() == []
    f.core.on_tick(start + 0.75)
    assert f.core.take_effects() == [("disconnect",), ("connect", "b:2")]
    assert "probe" in f.core.last_error


def test_a_replica_that_answers_the_probe_keeps_the_call_until_the_attempt_timeout():
    f = Fixture(liveness_timeout=0.6, attempt_timeout=2.0)
    f.open()
    start = f.now
    f.call()
    sent(f.core)
    t = start
    while t + 0.05 < start + 2.0:
        t += 0.05
        f.core.on_tick(t)
        for id in sent_status(sent(f.core)):
            f.core.on_frame(t, _wire.Status(id, {"members": []}))
        assert f.core.take_effects() == [], "left a live replica at %.2f" % (t - start)
    f.core.on_tick(start + 2.0)
    assert f.core.take_effects() == [("disconnect",), ("connect", "b:2")]


def test_a_sleeping_timer_hears_of_every_deadline_that_moved_earlier():
    """The shells wake their timer when ``wake_deadline()`` is earlier than what it
    sleeps until; after a call it does not walk every pending request, yet it is
    never later than a deadline the call added."""
    f = Fixture(liveness_timeout=0.6, attempt_timeout=5.0)
    f.open()
    sleeping_until = f.core.next_deadline()
    assert sleeping_until == pytest.approx(T0 + 10.0 / 3), "only the keep-alive is due"
    first = f.call()
    # The call starts the liveness check, the earliest deadline now.
    assert f.core.wake_deadline() == pytest.approx(T0 + 0.15) == f.core.next_deadline()
    sleeping_until = f.core.next_deadline()
    f.now += 0.01
    f.call()
    assert f.core.wake_deadline() >= sleeping_until, "nothing earlier: no wake-up"
    assert f.core.wake_deadline() is None, "taken once"
    f.call(timeout=0.05)
    assert f.core.wake_deadline() == pytest.approx(f.now + 0.05)
    # Anything rarer than a call and its answer (here a Busy refusal) is computed
    # exactly.
    f.core.next_deadline()
    (busy, _, _) = calls(f.core)[0]
    f.core.on_frame(f.now, _wire.Error(busy, "Busy", "the leader is full"))
    assert f.core.wake_deadline() == pytest.approx(f.now + _core.BUSY_DELAY_MIN)
    assert f.core.next_deadline() == pytest.approx(f.now + _core.BUSY_DELAY_MIN)
    assert not first.done()


def test_calls_wait_while_the_oldest_one_would_stand_too_far_behind():
    f = Fixture()
    f.open()
    f.call("acquire")
    first = calls(f.core)[0][0]
    f.core.on_frame(f.now, reply(first, "Parked"))
    answers = []
    for _ in range(1, _core.SPAN_MAX + 5):
        answers.append(f.call())
        for id, _, _ in calls(f.core):
            f.core.on_frame(f.now, reply(id, "Value", None))
    issued = _core.SPAN_MAX - 1
    assert sum(1 for a in answers if a.done()) == issued
    assert len(f.core.queued) == len(answers) - issued, "the rest wait"
    f.core.on_frame(f.now, reply(first, "Value", True))
    later = calls(f.core)
    assert len(later) == len(answers) - issued
    assert later[0][1] == _core.SPAN_MAX + 1
    assert [c[1] for c in later] == list(range(later[0][1], later[0][1] + len(later)))
    assert not f.core.queued


def test_reconnecting_backs_off_only_after_a_full_round_of_addresses():
    delays = [round(_core.reconnect_delay(n, 3) * 1000) for n in range(1, 13)]
    assert delays == [0, 0, 0, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]


def test_an_ended_session_fails_its_calls_and_a_new_one_is_opened():
    f = Fixture()
    f.open()
    parked = f.call("acquire")
    id = calls(f.core)[0][0]
    f.core.on_frame(f.now, reply(id, "Parked"))
    later = f.call("increment")
    later_id = calls(f.core)[0][0]
    f.core.on_frame(f.now, reply(later_id, "SessionUnknown"))
    for answer in (parked, later):
        with pytest.raises(SessionExpired):
            answer.result(0)
    (open_id, variant, fields), = requests(sent(f.core))
    assert variant == "OpenSession"
    waiting = f.call("increment")
    assert sent(f.core) == [], "calls wait for the new session"
    f.core.on_frame(f.now, reply(open_id, "SessionOpened", (fields["nonce"], 6)))
    (call_id, variant, fields), = requests(sent(f.core))
    assert (fields["session"], fields["request"], fields["acked"]) == (6, 1, 1)
    f.core.on_frame(f.now, reply(call_id, "Value", 3))
    assert waiting.result(0) == 3


def test_giving_up_says_whether_a_call_may_have_run():
    f = Fixture(give_up_after=10.0)
    f.open()
    sent_call = f.call("increment")
    sent(f.core)
    f.core.on_disconnected(f.now, "reset")
    assert f.core.take_effects() == [("disconnect",), ("connect", "b:2")]
    f.core.on_connect_failed(f.now, None, "refused")
    f.core.take_effects()
    f.core.on_connect_failed(f.now + 10, None, "refused")
    with pytest.raises(MaybeExecuted, match="may or may not"):
        sent_call.result(0)
    # A call issued while nothing answers never leaves: plainly unavailable.
    unsent = f.call("increment")
    f.core.take_effects()
    f.core.on_connect_failed(f.now + 20, None, "refused")
    f.core.take_effects()
    f.core.on_tick(f.now + 30)
    with pytest.raises(Unavailable) as raised:
        unsent.result(0)
    assert not isinstance(raised.value, MaybeExecuted)


def test_method_errors_become_python_exceptions_by_name():
    f = Fixture()
    f.open()
    answers = [f.call() for _ in range(5)]
    ids = [n[0] for n in calls(f.core)]
    errors = [
        ("RuntimeError", "cannot release un-acquired lock"),
        ("KeyError", "'x'"),
        ("Full", "queue is full"),
        ("SystemExit", "never built from a replica's word"),
        ("CancelledError", "not ours"),
    ]
    for id, error in zip(ids, errors):
        f.core.on_frame(f.now, reply(id, "Error", error))
    import queue

    kinds = [type(a.exception(0)) for a in answers]
    assert kinds == [RuntimeError, KeyError, queue.Full, RemoteError, RemoteError]
    assert str(answers[0].exception(0)) == "cannot release un-acquired lock"
    assert answers[3].exception(0).kind == "SystemExit"


def test_the_answers_a_replica_gives_by_id_fail_that_call_alone():
    """A request below ``acked`` gets ``AcknowledgedError`` and one the replica
    cannot read (an integer beyond i64) a ``BadFrame`` error with its id: each
    fails its own call with ``ProtocolError``, not a method's exception, and the
    other calls wait on."""
    f = Fixture()
    f.open()
    below, unreadable, other = f.call(), f.call(), f.call()
    ids = [n[0] for n in calls(f.core)]
    f.core.on_frame(f.now, reply(ids[0], "Error", ("AcknowledgedError", "request 1 is below acked 3")))
    f.core.on_frame(f.now, _wire.Error(ids[1], "BadFrame", "request %d: integer exceeds i64" % ids[1]))
    with pytest.raises(ProtocolError, match="below acked 3"):
        below.result(0)
    with pytest.raises(ProtocolError, match="exceeds i64"):
        unreadable.result(0)
    assert not other.done()
    assert f.core.link[0] == "up", "the connection is kept"


def test_a_close_ends_the_session_then_exits():
    f = Fixture()
    f.open()
    done = concurrent.futures.Future()
    f.core.close(f.now, done)
    (id, variant, fields), = requests(sent(f.core))
    assert (variant, fields) == ("CloseSession", {"session": 5})
    f.core.on_frame(f.now, reply(id, "Value", False))
    assert done.result(0) is None
    assert f.core.take_effects() == [("exit",)]
    with pytest.raises(Unavailable, match="closed"):
        f.call().result(0)


def test_bootstrap_strings_and_lists_parse_like_the_originals():
    assert _core.parse_bootstrap(" 127.0.0.1:14001,127.0.0.1:14000 , 127.0.0.1:14001,, ") == [
        "127.0.0.1:14001",
        "127.0.0.1:14000",
    ]
    assert _core.parse_bootstrap(["a:1", ("b", 2), ("::1", 3)]) == ["a:1", "b:2", "[::1]:3"]
    for bad, why in [
        ("127.0.0.1", "no port"),
        ("ns.example.com", "DNS SRV"),
        (":14000", "no host"),
        ("a:0", "1 to 65535"),
        ("a:x", "1 to 65535"),
        ("::1:14000", "brackets"),
        (" , ", "no replica address"),
        (14000, "a string"),
    ]:
        with pytest.raises(BadAddress, match=why):
            _core.parse_bootstrap(bad)


def test_a_client_that_never_gives_up_keeps_trying_without_an_infinite_timer():
    f = Fixture(give_up_after=None)
    f.open()
    answer = f.call()
    sent(f.core)
    f.core.on_disconnected(f.now, "reset")
    now = f.now
    for _ in range(50):
        assert f.core.take_effects()[-1][0] == "connect"
        now += 1000.0  # far beyond the default give_up_after
        f.core.on_connect_failed(now, None, "refused")
        # Timers (keep-alive, reconnect backoff) fire; none is infinite.
        while f.core.link[0] != "connecting":
            deadline = f.core.next_deadline()
            assert deadline is not None and deadline < float("inf")
            now = max(now, deadline)
            f.core.on_tick(now)
    assert not answer.done(), "the call still waits for the cluster"


def test_a_call_that_cannot_be_encoded_fails_alone():
    f = Fixture()
    f.open()
    bad = concurrent.futures.Future()
    f.core.call(f.now, "o", 7, _wire.pack_args([]), bad)
    with pytest.raises(TypeError, match="method"):
        bad.result(0)
    good = f.call()
    assert [n[1:] for n in calls(f.core)] == [[1, 1]], "the bad call used no request number"
    assert not good.done()


def test_an_abandoned_call_is_taken_back_and_an_unsent_one_dropped():
    f = Fixture()
    f.open()
    parked = f.call("acquire")
    (id, number, _), = calls(f.core)
    f.core.on_frame(f.now, reply(id, "Parked"))
    parked.cancel()  # what asyncio does to a cancelled task's future
    f.core.abandon(f.now, parked)
    _, cancel_number, target = cancel_of(f.core)
    assert (cancel_number, target) == (2, number)
    f.core.on_frame(f.now, reply(id, "Value", True))  # granted first: goes nowhere
    assert parked.cancelled()

    g = Fixture()  # no session yet: calls wait, unnumbered
    queued = g.call()
    assert len(g.core.queued) == 1
    g.core.abandon(g.now, queued)
    assert len(g.core.queued) == 0, "never numbered, never sent"


def test_an_abandoned_call_is_cancelled_again_even_across_keep_alives():
    f = Fixture()
    f.open()
    waiter = f.call("acquire")
    (id, number, _), = calls(f.core)
    waiter.cancel()
    f.core.abandon(f.now, waiter)
    cancel_id, _, _ = cancel_of(f.core)
    # Not applied yet when the cancel was: it must be cancelled again later,
    # keep-alives in between notwithstanding.
    f.core.on_frame(f.now, reply(cancel_id, "Value", False))
    # The keep-alive and the retry are due together.
    f.core.on_tick(max(f.core.keepalive_at, f.now + _core.CANCEL_RETRY))
    assert id in f.core.pending, "still being taken back"
    assert cancel_of(f.core)[2] == number


def test_the_client_pins_its_cluster_and_leaves_a_replica_of_another():
    f = Fixture()
    assert f.core.take_effects() == [("connect", "a:1")]
    assert f.core.cluster is None
    assert f.core.on_connected(f.now, 0, None)
    (status,) = sent_status(sent(f.core))
    f.core.on_frame(f.now, _wire.Status(status, {"cluster": "00000000000000c1", "members": [{"addr": "a:1"}]}))
    assert f.core.cluster == "00000000000000c1", "pinned"
    # The next connection asks again (discovery is due); a replica of another
    # cluster is left, and what it lists is not learned.
    f.now += _core.DISCOVER_EVERY
    f.core.on_disconnected(f.now, "a:1 died")
    assert f.core.take_effects() == [("disconnect",), ("connect", "b:2")]
    assert f.core.on_connected(f.now, 1, None)
    (status,) = sent_status(sent(f.core))
    stranger = {"cluster": "00000000000000ff", "members": [{"addr": "x:9"}]}
    f.core.on_frame(f.now, _wire.Status(status, stranger))
    assert f.core.take_effects() == [("disconnect",), ("connect", "a:1")]
    assert "belongs to cluster 00000000000000ff, not 00000000000000c1" in f.core.last_error
    assert "x:9" not in f.core.addrs
    assert f.core.cluster == "00000000000000c1", "still pinned"
    # A replica that refuses the Hello naming our cluster is left too.
    f.core.on_connect_failed(f.now, "OtherCluster", "this replica belongs to another cluster")
    assert f.core.take_effects() == [("disconnect",), ("connect", "b:2")]
    assert f.ready.done() is False, "still trying: the session is not open yet"


def test_an_exception_prints_what_it_printed_on_the_replica():
    from concoord.exception import remote_exception

    # str(KeyError('x')) is "'x'" on the replica; the caller's KeyError prints the
    # same, not "\"'x'\"", and carries the key itself.
    for message, key in [("'x'", "x"), ("7", 7), ("('a', 1)", ("a", 1))]:
        e = remote_exception("KeyError", message)
        assert type(e) is KeyError and e.args == (key,) and str(e) == message
    # A message that is not a key's repr (a Rust object's plain name) stays text.
    assert remote_exception("KeyError", "no group g").args == ("no group g",)
    assert remote_exception("KeyError", "").args == ()
    assert str(remote_exception("ValueError", "'quoted' on purpose")) == "'quoted' on purpose"
