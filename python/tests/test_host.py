"""Unit tests of the object host's decisions, driven message by message without a
replica: parking and waking (BlockingReturn, UnblockingReturn, wake), the
``concoord.threadingobject`` primitives, session ends and cancels, re-initialising,
snapshots, and what makes the host stop (``Fatal``)."""

import pytest

from concoord.exception import BlockingReturn, UnblockingReturn
from concoord.host import Command, Fatal, Host, _runtime, wake
from concoord.object.barrier import Barrier
from concoord.object.condition import Condition
from concoord.object.counter import Counter
from concoord.object.rlock import RLock
from concoord.threadingobject.dboundedsemaphore import DBoundedSemaphore
from concoord.threadingobject.dlock import DLock


class Original:
    """Blocking written the original's way: keep the command, raise."""

    def __init__(self):
        self.waiting = []

    def wait(self, _concoord_command):
        self.waiting.append(_concoord_command)
        raise BlockingReturn()

    def release_all(self, _concoord_command):
        woken = {c: "go" for c in self.waiting}
        self.waiting = []
        raise UnblockingReturn(len(woken), woken)

    def wake_first(self):
        # Without a `_concoord_command`: a plain method may wake too.
        wake(self.waiting.pop(0), 7)
        return "done"


class Session:
    """Drives one host: numbered calls per session, as the machine would."""

    def __init__(self, cls):
        _runtime.parked = {}
        self.host = Host(cls)
        assert self.host.handle(["construct"]) == ["ok"]
        self.next = {}
        self.position = 0

    def call(self, session, method, *args):
        self.next[session] = self.next.get(session, 0) + 1
        self.position += 1
        return self.host.handle(
            ["call", session, self.next[session], self.position, 0, method, list(args)]
        )

    def last(self, session):
        return [session, self.next[session]]


def test_the_originals_blocking_maps_onto_park_and_wake():
    t = Session(Original)
    assert t.call(1, "wait") == ["park", []]
    assert t.call(2, "wait") == ["park", []]
    assert t.call(3, "wake_first") == ["return", "done", [[1, 1, True, 7]]]
    assert t.call(3, "release_all") == ["return", 1, [[2, 1, True, "go"]]]
    # A call is woken once: the second wake of the same command is dropped.
    assert t.call(3, "release_all") == ["return", 0, []]


def test_a_lock_parks_hands_over_fifo_and_releases_an_ended_session():
    t = Session(type("L", (), {"__init__": lambda s: setattr(s, "lock", DLock()),
                               "acquire": lambda s, _concoord_command: s.lock.acquire(_concoord_command),
                               "release": lambda s, _concoord_command: s.lock.release(_concoord_command)}))
    assert t.call(1, "acquire") == ["return", True, []]
    assert t.call(2, "acquire") == ["park", []]
    two = t.last(2)
    assert t.call(3, "acquire") == ["park", []]
    three = t.last(3)
    assert t.call(2, "release")[:3] == ["raise", "RuntimeError", "cannot release un-acquired lock"]
    # Session 1 ends: the lock passes to session 2's parked acquire.
    assert t.host.handle(["closed", 1, 10, 0]) == ["done", [two + [True, True]]]
    # Session 3 gives up: its acquire is forgotten and never granted.
    assert t.host.handle(["cancel", 3, three[1], 11, 0]) == ["cancelled", True, []]
    assert t.host.handle(["cancel", 3, three[1], 12, 0]) == ["cancelled", False, []]
    assert t.call(2, "release") == ["return", None, []]
    assert t.host.obj.lock.owner is None


def test_an_rlock_re_enters_and_a_condition_restores_the_count():
    t = Session(RLock)
    assert t.call(1, "acquire") == ["return", True, []]
    assert t.call(1, "acquire") == ["return", True, []]
    assert t.call(2, "acquire") == ["park", []]
    assert t.call(1, "release") == ["return", None, []]
    assert t.call(1, "release") == ["return", None, [t.last(2) + [True, True]]]

    c = Session(Condition)
    assert c.call(1, "acquire") == ["return", True, []]
    assert c.call(1, "acquire") == ["return", True, []]
    assert c.call(1, "wait") == ["park", []]
    waiter = c.last(1)
    assert c.call(2, "notify")[:2] == ["raise", "RuntimeError"]
    assert c.call(2, "acquire") == ["return", True, []]
    # Notified, the waiter still needs the lock: nothing is woken yet.
    assert c.call(2, "notify") == ["return", None, []]
    assert c.call(2, "release") == ["return", None, [waiter + [True, True]]]
    lock = c.host.obj.condition.lock
    assert (lock.owner, lock.count) == (1, 2)


def test_a_bounded_semaphore_raises_on_over_release():
    t = Session(type("B", (), {"__init__": lambda s: setattr(s, "s", DBoundedSemaphore(1)),
                               "acquire": lambda s, _concoord_command: s.s.acquire(_concoord_command),
                               "release": lambda s, _concoord_command: s.s.release(_concoord_command)}))
    assert t.call(1, "release")[:3] == ["raise", "ValueError", "Semaphore released too many times"]
    assert t.call(1, "acquire") == ["return", True, []]
    assert t.call(2, "acquire") == ["park", []]
    assert t.call(1, "release") == ["return", None, [t.last(2) + [True, True]]]


def test_reinit_snapshot_and_restore():
    t = Session(Original)
    assert t.call(1, "wait") == ["park", []]
    state = t.host.handle(["snapshot"])[1]
    assert t.call(2, "__concoordinit__") == [
        "return", None, [[1, 1, False, "RuntimeError", "the object was re-initialised"]]
    ]
    assert t.host.obj.waiting == []
    # The snapshot brings back the parked call, which can still be woken.
    assert t.host.handle(["restore", state]) == ["ok"]
    assert t.call(2, "wake_first") == ["return", "done", [[1, 1, True, 7]]]

    c = Session(Counter)
    c.call(1, "increment")
    assert c.call(1, "__str__") == ["return", "The counter value is 1", []]
    assert c.host.handle(["query", "getvalue", []])[:2] == ["raise", "TypeError"]


def test_what_cannot_be_sent_or_pickled_is_an_error():
    class Bad:
        def getset(self):
            return {1}

        def huge(self):
            return 1 << 70

        def keep_generator(self):
            self.g = (i for i in range(3))

    t = Session(Bad)
    # What cannot be sent is the caller's TypeError (decided alike on every replica).
    reply = t.call(1, "getset")
    assert reply[:2] == ["raise", "TypeError"] and "getset() cannot be sent" in reply[2]
    reply = t.call(1, "huge")
    assert reply[:2] == ["raise", "TypeError"] and "64-bit" in reply[2], reply
    t.call(1, "keep_generator")
    # State that cannot be pickled fails the snapshot, naming the attribute and its
    # type; the host keeps serving.
    reply = t.host.handle(["snapshot"])
    assert reply[0] == "raise", reply
    assert "self.g (a generator) cannot be pickled" in reply[2], reply
    assert t.call(1, "getset")[0] == "raise"
    with pytest.raises(Fatal, match="unknown message"):
        t.host.handle(["nonsense"])


def test_the_hello_lists_methods_with_the_readonly_flag():
    import concoord

    class K:
        def put(self, key, value, _concoord_command=None):
            pass

        @concoord.readonly
        def get(self, key):
            pass

        def _private(self):
            pass

        def __str__(self):
            return ""

    hello = Host(K).hello()
    assert hello[0] == "hello" and hello[2].endswith("K") and len(hello[3]) == 16
    assert hello[4] == [["__str__", False, []], ["get", True, ["key"]], ["put", False, ["key", "value"]]]
    assert Command(1, 2) == Command(1, 2, 5, 6) and Command(1, 2) != Command(2, 1)


class Rendezvous:
    """The original's Barrier object kept in an attribute (snapshots pickle it)."""

    def __init__(self):
        self.b = Barrier(3)

    def wait(self, _concoord_command):
        return self.b.wait(_concoord_command)

    def __repr__(self):
        return repr(self.b)


def test_a_barrier_wakes_every_waiter_with_its_index_and_starts_over():
    t = Session(Rendezvous)
    assert t.call(1, "wait") == ["park", []]
    first = t.last(1)
    assert t.call(2, "wait") == ["park", []]
    second = t.last(2)
    assert t.call(1, "__repr__") == ["return", "<DBarrier parties=3 waiting=2>", []]
    assert t.call(3, "wait") == ["return", 2, [first + [True, 0], second + [True, 1]]]
    # The next round: a session that ends leaves it, a caller that gives up too.
    assert t.call(1, "wait") == ["park", []]
    assert t.call(2, "wait") == ["park", []]
    gave_up = t.last(2)
    assert t.host.handle(["closed", 1, 20, 0]) == ["done", []]
    assert t.host.handle(["cancel", 2, gave_up[1], 21, 0]) == ["cancelled", True, []]
    assert t.host.obj.b.barrier.waiting == []
    state = t.host.handle(["snapshot"])[1]
    assert t.call(2, "wait") == ["park", []]
    assert t.call(3, "wait") == ["park", []]
    assert t.call(4, "wait")[:2] == ["return", 2]
    assert t.host.handle(["restore", state]) == ["ok"]
    assert t.host.obj.b.barrier.waiting == []
    with pytest.raises(ValueError):
        Barrier(0)


def test_a_batch_answers_as_the_same_calls_one_at_a_time():
    """The replica sends the calls of a log slot in one ``batch`` message: the
    answers, in order, are those of the same ``call`` messages one by one, parking,
    waking, exceptions and unsendable results included."""

    class Mixed(Original):
        def bad(self):
            return {1, 2}

        def boom(self):
            raise KeyError("k")

    script = [(1, "wait"), (2, "wait"), (3, "boom"), (3, "wake_first"), (3, "bad"),
              (3, "release_all"), (1, "nosuch"), (3, "release_all")]
    one = Session(Mixed)
    singles = [one.call(session, method) for session, method in script]
    snapshot = one.host.handle(["snapshot"])

    many = Session(Mixed)
    items, next_request = [], {}
    for position, (session, method) in enumerate(script, 1):
        next_request[session] = next_request.get(session, 0) + 1
        items.append([session, next_request[session], position, 0, method, []])
    answer = many.host.handle(["batch", items])
    assert answer == ["batch", singles]
    assert singles[3] == ["return", "done", [[1, 1, True, 7]]]
    assert singles[4][:2] == ["raise", "TypeError"]
    assert many.host.handle(["snapshot"]) == snapshot
    assert many.host.handle(["batch", []]) == ["batch", []]
