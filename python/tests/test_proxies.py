"""Every method of every built-in object's proxy, end to end, on one shared
three-replica cluster. Each test creates its own named instances (``create=``), so
tests do not see each other's state. Two clients give two sessions, because
ownership (locks, permits) is per session."""

import queue
import threading
import time

import pytest

from concoord.client import Client
from concoord.clientproxy import ClientProxy
from concoord.exception import Timeout
from concoord.proxy.bank import Bank
from concoord.proxy.barrier import Barrier
from concoord.proxy.binarytree import BinaryTree
from concoord.proxy.boundedsemaphore import BoundedSemaphore
from concoord.proxy.condition import Condition
from concoord.proxy.counter import Counter
from concoord.proxy.jobmanager import JobManager
from concoord.proxy.lock import Lock
from concoord.proxy.log import Log
from concoord.proxy.map import Map
from concoord.proxy.membership import Membership
from concoord.proxy.meshmembership import MeshMembership
from concoord.proxy.nameservercoord import NameserverCoord
from concoord.proxy.queue import Queue
from concoord.proxy.rlock import RLock
from concoord.proxy.semaphore import Semaphore
from concoord.proxy.stack import Stack


@pytest.fixture(scope="module")
def other_client(shared_cluster):
    client = shared_cluster.client()
    yield client
    client.close()


def in_thread(fn, *args):
    """Runs ``fn(*args)`` in a thread; returns a function that joins it and gives
    its result (or raises its exception)."""
    box = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as e:
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result():
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    return result


def wait_parked(client, count=1):
    """Waits until ``count`` of ``client``'s calls are parked on the replicas (the
    client was answered Parked), so that what the test does next is ordered after
    them. A test that never gets there fails with a lost call, not a hang."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with client._shell.lock:
            parked = sum(p.attempt == "parked" for p in client._shell.core.pending.values())
        if parked >= count:
            return
        time.sleep(0.005)
    raise AssertionError("%d calls never parked" % count)


def test_default_instance_and_the_original_constructor(shared_cluster):
    # The cluster's `default` instance is a Counter (-o Counter), reached with the
    # original's signature: Counter(bootstrap, timeout=60, debug=False, token=None).
    counter = Counter(shared_cluster.boot, 60, False, None)
    try:
        before = counter.getvalue()
        assert counter.increment() is None
        assert counter.getvalue() == before + 1
        assert str(counter) == "The counter value is %d" % (before + 1)
        assert repr(counter) == "<Counter proxy of 'default'>"
    finally:
        counter.disconnect()


def test_counter(shared_client, name):
    counter = Counter(client=shared_client, instance=name, create=(5,))
    assert counter.getvalue() == 5
    counter.increment()
    counter.increment()
    counter.decrement()
    assert counter.getvalue() == 6
    assert str(counter) == "The counter value is 6"
    # Creating an existing instance of the same type is a no-op.
    assert Counter(client=shared_client, instance=name, create=(0,)).getvalue() == 6
    big = Counter(client=shared_client, instance=name + "-max", create=(2**63 - 1,))
    with pytest.raises(OverflowError):
        big.increment()


def test_concoordinit_rebuilds_the_object_and_answers_its_waiters(
    shared_client, other_client, name
):
    counter = Counter(client=shared_client, instance=name + "-c", create=(5,))
    counter.increment()
    assert counter.__concoordinit__(40) is None
    assert Counter(client=other_client, instance=name + "-c").getvalue() == 40
    with pytest.raises(TypeError):
        counter.__concoordinit__("forty")
    assert counter.getvalue() == 40, "a refused __init__ changes nothing"
    mine = Lock(client=shared_client, instance=name, create=True)
    theirs = Lock(client=other_client, instance=name)
    assert mine.acquire() is True
    waiting = in_thread(theirs.acquire)
    wait_parked(other_client)
    mine.__concoordinit__()
    with pytest.raises(RuntimeError, match="re-initialised"):
        waiting()
    assert mine.locked() is False
    with pytest.raises(RuntimeError, match="cannot release un-acquired lock"):
        mine.release()
    assert theirs.acquire() is True
    theirs.release()


def test_lock(shared_client, other_client, name):
    mine = Lock(client=shared_client, instance=name, create=True)
    theirs = Lock(client=other_client, instance=name)
    assert mine.locked() is False
    assert mine.token() is None
    assert mine.acquire() is True
    assert mine.locked() is True
    first_token = mine.token()
    assert isinstance(first_token, int)
    assert repr(mine) == "<DLock owner=%d>" % shared_client.session
    assert str(mine) == "<DLock object>"
    assert theirs.acquire(blocking=False) is False
    assert theirs.acquire_token(blocking=False) is None
    with pytest.raises(RuntimeError, match="cannot release un-acquired lock"):
        theirs.release()
    # A parked acquire is granted on release, FIFO.
    waiting = in_thread(theirs.acquire_token)
    wait_parked(other_client)
    assert mine.release() is None
    second_token = waiting()
    assert second_token > first_token, "fencing tokens grow from grant to grant"
    assert repr(mine) == "<DLock owner=%d>" % other_client.session
    waiting_flag = in_thread(mine.acquire)
    wait_parked(shared_client)
    theirs.release()
    assert waiting_flag() is True
    mine.release()
    assert mine.locked() is False
    with mine:
        assert mine.locked() is True
    assert mine.locked() is False
    with pytest.raises(ValueError, match="non-blocking"):
        mine.acquire(blocking=False, timeout=1)


def test_rlock(shared_client, other_client, name):
    mine = RLock(client=shared_client, instance=name, create=True)
    theirs = RLock(client=other_client, instance=name)
    assert mine.acquire() is True
    assert mine.acquire() is True, "re-entry by the owning session"
    assert repr(mine) == "<DRLock owner=%d count=2>" % shared_client.session
    assert str(mine) == "<DRLock object>"
    assert mine.locked() is True
    assert isinstance(mine.token(), int)
    assert theirs.acquire(False) is False
    with pytest.raises(RuntimeError, match="cannot release un-acquired lock"):
        theirs.release()
    waiting = in_thread(theirs.acquire)
    wait_parked(other_client)
    mine.release()
    assert mine.locked() is True, "count 1 is still held"
    mine.release()
    assert waiting() is True
    assert repr(mine) == "<DRLock owner=%d count=1>" % other_client.session
    assert isinstance(theirs.acquire_token(), int)
    theirs.release()
    theirs.release()
    assert mine.locked() is False
    with mine:
        with mine:
            assert repr(mine).endswith("count=2>")


def test_semaphore(shared_client, other_client, name):
    sem = Semaphore(client=shared_client, instance=name, create=(2,))
    theirs = Semaphore(client=other_client, instance=name)
    assert sem.value() == 2
    assert sem.acquire() is True
    assert isinstance(sem.acquire_token(), int)
    assert repr(sem) == "<DSemaphore count=0>"
    assert str(sem) == "<DSemaphore count=0>", "str falls back to the object's __repr__"
    assert theirs.acquire(blocking=False) is False
    waiting = in_thread(theirs.acquire)
    wait_parked(other_client)
    assert sem.release() is None
    assert waiting() is True
    assert sem.value() == 0
    sem.release(2)
    assert sem.value() == 2
    with pytest.raises(ValueError, match="n must be one or more"):
        sem.release(0)
    with pytest.raises(ValueError, match="initial value"):
        Semaphore(client=shared_client, instance=name + "-neg", create=(-1,))
    with sem:
        assert sem.value() == 1


def test_bounded_semaphore(shared_client, name):
    sem = BoundedSemaphore(client=shared_client, instance=name, create=(1,))
    assert sem.acquire() is True
    assert sem.value() == 0
    assert repr(sem) == "<DBoundedSemaphore count=0 init=1>"
    assert sem.acquire(False) is False
    assert sem.acquire_token(False) is None
    sem.release()
    with pytest.raises(ValueError, match="Semaphore released too many times"):
        sem.release()
    assert sem.value() == 1, "nothing changed"


def test_condition(shared_client, other_client, name):
    mine = Condition(client=shared_client, instance=name, create=True)
    theirs = Condition(client=other_client, instance=name)
    with pytest.raises(RuntimeError, match="cannot wait on un-acquired lock"):
        mine.wait()
    with pytest.raises(RuntimeError, match="cannot notify on un-acquired lock"):
        mine.notify()
    with pytest.raises(RuntimeError, match="cannot release un-acquired lock"):
        mine.release()
    assert mine.acquire() is True
    assert mine.acquire() is True
    waiting = in_thread(mine.wait)
    wait_parked(shared_client)
    # The wait released the lock fully: another session can take it and notify.
    assert theirs.acquire() is True
    assert repr(theirs) == "<Condition(<DRLock owner=%d count=1>, 1)>" % other_client.session
    assert theirs.notify() is None
    assert theirs.notify_all() is None
    assert theirs.notifyAll() is None
    theirs.release()
    assert waiting() is True
    assert repr(mine) == "<Condition(<DRLock owner=%d count=2>, 0)>" % shared_client.session
    mine.release()
    mine.release()
    assert repr(mine) == "<Condition(<DRLock owner=None count=0>, 0)>"
    assert theirs.acquire(blocking=False) is True
    assert mine.acquire(blocking=False) is False
    theirs.release()


def test_barrier(shared_client, other_client, name):
    mine = Barrier(client=shared_client, instance=name, create=(3,))
    theirs = Barrier(client=other_client, instance=name)
    assert mine.parties() == 3
    assert mine.n_waiting() == 0
    assert str(mine) == "<Barrier object>"
    first = in_thread(mine.wait)
    second = in_thread(theirs.wait)
    wait_parked(shared_client)
    wait_parked(other_client)
    assert mine.n_waiting() == 2
    # The third arrival releases every waiter of the round (the original released one).
    third = theirs.wait()
    assert sorted([first(), second(), third]) == [0, 1, 2]
    assert repr(mine) == "<Barrier parties=3 waiting=0>"
    with pytest.raises(ValueError, match="parties must be >= 1"):
        Barrier(client=shared_client, instance=name + "-zero", create=(0,))


def test_queue(shared_client, other_client, name):
    q = Queue(client=shared_client, instance=name, create=(1,))
    theirs = Queue(client=other_client, instance=name)
    assert q.empty() is True
    assert q.put("a") is None
    assert q.full() is True
    assert q.qsize() == 1
    assert str(q) == "<Queue qsize=1>"
    with pytest.raises(queue.Full):
        q.put_nowait("b")
    with pytest.raises(queue.Full):
        q.put("b", block=False)
    assert q.get() == "a"
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    # A parked get is handed the next put's item.
    getter = in_thread(theirs.get)
    wait_parked(other_client)
    q.put({"job": [1, 2]})
    assert getter() == {"job": [1, 2]}
    assert q.empty() is True
    # A parked put enters when a get makes room.
    q.put_nowait(1)
    putter = in_thread(theirs.put, 2)
    wait_parked(other_client)
    assert q.get() == 1
    assert putter() is None
    assert q.get() == 2


def test_stack(shared_client, name):
    s = Stack(client=shared_client, instance=name, create=True)
    s.append(1)
    s.append("a")
    assert s.get_size() == 2
    assert s.get_stack() == [1, "a"]
    assert str(s) == "[1, 'a']"
    assert s.pop() == "a"
    assert s.pop() == 1
    with pytest.raises(IndexError, match="pop from empty list"):
        s.pop()


def test_log(shared_client, name):
    log = Log(client=shared_client, instance=name, create=True)
    log.append("x")
    log.append(2)
    assert log.read() == "x 2"
    assert str(log) == "x 2"
    assert log.write("y") is None
    assert log.read() == "y", "write replaces the whole log, as the original's did"


def test_membership(shared_client, name):
    m = Membership(client=shared_client, instance=name, create=True)
    m.add("a")
    m.add("a")
    m.add(3)
    assert m.members() == ["a", 3]
    assert str(m) == "a 3"
    m.remove("a")
    assert m.members() == [3]
    with pytest.raises(KeyError):
        m.remove("zz")


def test_bank(shared_client, name):
    bank = Bank(client=shared_client, instance=name, create=True)
    assert bank.open(1) is True
    assert bank.open(1) is False
    assert bank.deposit(1, 100) == 100.0
    assert bank.debit(1, 50) == 50.0
    assert bank.debit(1, 80) is False, "an overdraft is refused (the original's guard was inverted)"
    assert bank.balance(1) == 50.0
    assert bank.open(2) is True
    assert str(bank) == "Account 1: balance = $50.00\nAccount 2: balance = $0.00"
    with pytest.raises(ValueError):
        bank.deposit(1, -5)
    assert bank.close(1) is True
    with pytest.raises(KeyError):
        bank.balance(1)
    with pytest.raises(KeyError):
        bank.close(1)


def test_job_manager(shared_client, name):
    jobs = JobManager(client=shared_client, instance=name, create=True)
    jobs.schedule({"id": 1})
    jobs.schedule("b")
    assert jobs.list_jobs() == [{"id": 1}, "b"]
    assert jobs.update({"id": 1}, "state", "done") is None
    assert jobs.list_jobs() == [{"id": 1, "state": "done"}, "b"]
    assert str(jobs) == "{'id': 1, 'state': 'done'} b"
    with pytest.raises(TypeError, match="item assignment"):
        jobs.update("b", "k", "v")
    jobs.deschedule("b")
    with pytest.raises(ValueError, match="job not scheduled"):
        jobs.deschedule("b")
    assert jobs.list_jobs() == [{"id": 1, "state": "done"}]


def test_binary_tree(shared_client, name):
    tree = BinaryTree(client=shared_client, instance=name, create=True)
    assert tree.get_depth() == 0
    with pytest.raises(ValueError, match="tree is empty"):
        tree.get_min()
    for value in (5, 3, 8):
        tree.insert(value)
    tree.add_node(1)
    tree.insert(5)
    assert tree.get_size() == 4
    assert tree.get_depth() == 3
    assert tree.find(3) is True
    assert tree.delete(3) is True
    assert tree.delete(3) is False
    assert tree.find(3) is False
    assert (tree.get_min(), tree.get_max()) == (1, 8)
    assert tree.in_order() == [1, 5, 8]
    with pytest.raises(TypeError):
        tree.insert("x")


def test_mesh_membership(shared_client, other_client, name):
    mesh = MeshMembership(client=shared_client, instance=name, create=True)
    theirs = MeshMembership(client=other_client, instance=name)
    mesh.add_group("g", 2)
    assert mesh.get_group_epoch("g") == 1
    assert mesh.get_group_members("g") == []
    assert mesh.approve_join("g", "n1", 1) == [True, 2]
    assert mesh.approve_join("g", "n2", 1) == [False, 2]
    assert mesh.approve_join("g", "n2", 2) == [True, 3]
    assert mesh.check_member("g", "n1") == [True, 3]
    assert mesh.check_member("g", "zz") == [False, 3]
    assert mesh.get_group_state("g") == [["n1", "n2"], 3]
    waiter = in_thread(theirs.wait, "g")
    wait_parked(other_client)
    assert mesh.approve_join("g", "n3", 3) == [True, 4]
    assert waiter() == 4
    assert mesh.notify_failure("g", 1, "n1") == [["n1", "n2", "n3"], 4], "a stale epoch"
    assert mesh.notify_failure("g", 4, "n1") == [False, 4]
    assert mesh.notify_failure("g", 4, "n1") == [True, 5]
    assert mesh.get_group_members("g") == ["n2", "n3"]
    with pytest.raises(KeyError):
        mesh.notify_failure("g", 5, "n1")
    doomed = in_thread(theirs.wait, "g")
    wait_parked(other_client)
    mesh.remove_group("g")
    with pytest.raises(KeyError):
        doomed()
    with pytest.raises(KeyError):
        mesh.get_group_epoch("g")


def test_nameserver_coord(shared_client, name):
    ns = NameserverCoord(client=shared_client, instance=name, create=True)
    assert ns.addnodetosubdomain("foo", "replica", "1.2.3.4:14000") is None
    ns.addnodetosubdomain("foo", 2, "1.2.3.5:14000")
    assert ns.getnodes("foo") == {"2": ["1.2.3.5:14000"], "replica": ["1.2.3.4:14000"]}
    assert ns.getsubdomains() == ["foo"]
    assert ns.getdomains() == ["foo.openreplica.org."]
    state = str(ns)
    assert state == "foo.openreplica.org.;(2-1.2.3.5:14000--replica-1.2.3.4:14000--);"
    assert ns.delnodefromsubdomain("foo", 2, "1.2.3.5:14000") is True
    assert ns.delnodefromsubdomain("foo", 2, "1.2.3.5:14000") is False
    ns.updatesubdomain("bar", {"1": ["a:1", "b:2"]})
    assert ns.getnodes("bar") == {"1": ["a:1", "b:2"]}
    assert ns.delsubdomain("bar") is True
    assert ns.delsubdomain("bar") is False
    with pytest.raises(KeyError):
        ns.getnodes("bar")
    assert ns._reinstantiate(state) is None
    assert ns.getnodes("foo") == {"2": ["1.2.3.5:14000"], "replica": ["1.2.3.4:14000"]}
    with pytest.raises(ValueError):
        ns._reinstantiate("not;a;state")


def test_map(shared_client, name):
    m = Map(client=shared_client, instance=name, create=True)
    assert m.put("db", {"port": 5432}) is None
    assert m.put("db", {"port": 5433}) == {"port": 5432}
    m.put("a", [1, 2.5, None, b"\x00"])
    assert m.get("db") == {"port": 5433}
    assert m.get("a") == [1, 2.5, None, b"\x00"]
    assert m.get("missing") is None
    assert m.contains("a") is True
    assert m.size() == 2
    assert m.keys() == ["a", "db"]
    assert m.delete("a") is True
    assert m.delete("a") is False
    assert m.size() == 1
    with pytest.raises(ValueError):
        m.put("k" * 2000, 1)


def test_timeouts_take_parked_calls_back(shared_client, other_client, name):
    # A timed-out acquire is cancelled through the log: it returns False and the
    # lock is never granted to it later.
    mine = Lock(client=shared_client, instance=name + "-lock", create=True)
    theirs = Lock(client=other_client, instance=name + "-lock")
    mine.acquire()
    assert theirs.acquire(timeout=0.2) is False
    assert theirs.acquire_token(timeout=0.2) is None
    mine.release()
    assert mine.locked() is False, "the cancelled acquires were forgotten"
    sem = Semaphore(client=shared_client, instance=name + "-sem", create=(0,))
    assert sem.acquire(timeout=0.2) is False
    assert sem.acquire(timeout=0) is False
    sem.release()
    assert sem.value() == 1, "no cancelled acquire took the permit"
    q = Queue(client=shared_client, instance=name + "-queue", create=(1,))
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    q.put("x")
    with pytest.raises(queue.Full):
        q.put("y", timeout=0.2)
    assert q.get() == "x"
    assert q.empty() is True, "the cancelled put's item never entered"
    barrier = Barrier(client=shared_client, instance=name + "-barrier", create=(2,))
    with pytest.raises(Timeout):
        barrier.wait(timeout=0.2)
    assert barrier.n_waiting() == 0
    mesh = MeshMembership(client=shared_client, instance=name + "-mesh", create=True)
    mesh.add_group("g", 1)
    with pytest.raises(Timeout):
        mesh.wait("g", timeout=0.2)


def test_errors_come_back_as_python_exceptions_by_type(shared_client, name):
    proxy = ClientProxy(client=shared_client, instance=name)
    with pytest.raises(AttributeError):
        proxy.invoke_command("getvalue")  # no such instance yet
    Counter(client=shared_client, instance=name, create=True)
    assert proxy.invoke_command("getvalue") == 0
    with pytest.raises(AttributeError):
        proxy.invoke_command("no_such_method")
    with pytest.raises(TypeError):
        proxy.invoke_command("increment", 1, 2, 3)
    with pytest.raises(ValueError):
        Lock(client=shared_client, instance=name, create=True)  # exists as a Counter
    # docs/protocol.md says ValueError for an unknown type; the object registry
    # raises TypeError (reported, not papered over).
    with pytest.raises(TypeError, match="unknown object type"):
        shared_client.create(name + "-x", "NoSuchType")
    with pytest.raises(TypeError, match="set"):
        proxy.invoke_command("increment", {1})
    assert proxy.invoke_command("getvalue") == 0, "nothing was sent"


def test_the_batching_runtime_keeps_order_and_checks_arguments_first(shared_client, name):
    from concoord.batchclientproxy import ClientProxy as BatchProxy

    shared_client.create(name, "Stack")
    stack = BatchProxy(client=shared_client, instance=name, batch_size=1000)
    futures = [stack.invoke_command_async("append", i) for i in range(5)]
    with pytest.raises(TypeError):
        stack.invoke_command_async("append", {1, 2})
    pop = stack.invoke_command_async("pop")
    # Commands run in the order they were queued: pop sees every append.
    assert stack.wait_until_command_done(pop) == 4
    assert [f.result() for f in futures] == [None] * 5
    pushed = stack.invoke_command_async("append", 9)
    # A synchronous call sends the queue first; this one is a command too, so it
    # is ordered after the append.
    assert stack.invoke_command("pop") == 9
    assert pushed.done() and pushed.result() is None
    assert stack.invoke_command("get_stack") == [0, 1, 2, 3]
    assert stack.flush() == 0
    empty = BatchProxy(client=shared_client, instance=name + "-none", batch_size=1000)
    missing = empty.invoke_command_async("append", 1)
    with pytest.raises(AttributeError):
        missing.result()
    with pytest.raises(ValueError):
        BatchProxy(client=shared_client, batch_size=0)
