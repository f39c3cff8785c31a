"""End-to-end tests of hosted Python objects: replicas started with ``-o
module.Class`` for a class written to a temporary directory, run by the object host
(``python3 -m concoord.host``). A hosted counter on three replicas, exceptions by
type, blocking through ``concoord.threadingobject`` with two clients, a session
that ends releasing a lock, a durable replica recovering its object from a
snapshot, state that cannot be pickled keeping the log instead of stopping the
replicas, a replica of different code refused, a host that crashes or hangs
stopping its replica with a clear message, and a result that cannot be sent
answered as the caller's TypeError by every replica."""

import pathlib
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from concoord.client import Client
from concoord.clientproxy import ClientProxy
from concoord.exception import RemoteError, Timeout, Unavailable
from conftest import Replica, concoord_bin
from test_proxies import in_thread, wait_parked

MODULES = {
    "tencounter": """
        import concoord

        class TenCounter:
            def __init__(self, value=0):
                self.value = value

            def increment(self):
                self.value += 10

            def decrement(self):
                self.value -= 10

            @concoord.readonly
            def getvalue(self):
                return self.value

            def __str__(self):
                return "The counter value is %d" % self.value
    """,
    "faulty": """
        import os
        from concoord.exception import BlockingReturn
        from concoord.host import wake

        class Oops(Exception):
            pass

        class Faulty:
            def __init__(self):
                self.items = {}

            def put(self, key, value):
                self.items[key] = value

            def get(self, key):
                return self.items[key]

            def check(self, n):
                if n < 0:
                    raise ValueError("negative: %d" % n)
                return n

            def oops(self):
                raise Oops("custom")

            def _secret(self):
                return "private"

            def crash(self):
                os._exit(3)

            def getset(self):
                return {1, 2}

            def spin(self):
                while True:
                    pass

            def park(self, _concoord_command):
                self.parked = _concoord_command
                raise BlockingReturn()

            def wake_badly(self):
                wake(self.parked, {1, 2})
                return "woke"
    """,
    "spoilable": """
        import threading

        import concoord

        class Spoilable:
            def __init__(self):
                self.items = []
                self.guard = None

            def add(self, item):
                self.items.append(item)

            def spoil(self):
                # A lock cannot be pickled: snapshots fail while it is there.
                self.guard = threading.Lock()

            def mend(self):
                self.guard = None

            @concoord.readonly
            def getitems(self):
                return self.items
    """,
    "hostedlock": """
        from concoord.threadingobject.dlock import DLock
        from concoord.threadingobject.dsemaphore import DSemaphore

        class HostedLock:
            def __init__(self):
                self.lock = DLock()
                self.permits = {"pool": DSemaphore(2)}
                self.grants = 0

            def acquire(self, _concoord_command):
                result = self.lock.acquire(_concoord_command)
                self.grants += 1
                return result

            def release(self, _concoord_command):
                return self.lock.release(_concoord_command)

            def take(self, _concoord_command):
                return self.permits["pool"].acquire(_concoord_command)

            def give(self, _concoord_command):
                return self.permits["pool"].release(_concoord_command)

            def __repr__(self):
                return "%r %r" % (self.lock, self.permits["pool"])
    """,
}


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Writes the test classes to a directory on the replicas' PYTHONPATH and runs
    the host with this interpreter (which has the concoord package)."""
    src = tmp_path / "src"
    src.mkdir()
    for name, text in MODULES.items():
        (src / (name + ".py")).write_text(textwrap.dedent(text))
    monkeypatch.setenv("PYTHONPATH", str(src))
    monkeypatch.setenv("CONCOORD_PYTHON", sys.executable)
    return src


def test_a_hosted_counter_on_three_replicas(modules, cluster_factory):
    cluster = cluster_factory(3, object="tencounter.TenCounter")
    counter = ClientProxy(cluster.boot)
    try:
        for _ in range(5):
            counter.invoke_command("increment")
        counter.invoke_command("decrement")
        assert counter.invoke_command("getvalue") == 40
        assert counter.invoke_command("__str__") == "The counter value is 40"
        status = cluster.status(cluster.replicas[0])
        assert status["object_type"].startswith("tencounter.TenCounter@")
        # Every replica applied the same commands to its own Python object: the
        # counter survives its leader.
        leader = cluster.leader()
        leader.kill()
        assert counter.invoke_command("getvalue") == 40
        counter.invoke_command("increment")
        assert counter.invoke_command("__str__") == "The counter value is 50"
    finally:
        counter.disconnect()


def test_a_hosted_object_raises_exceptions_by_type(modules, cluster_factory):
    cluster = cluster_factory(1, object="faulty.Faulty")
    proxy = ClientProxy(cluster.boot)
    try:
        proxy.invoke_command("put", "k", [1, "two"])
        assert proxy.invoke_command("get", "k") == [1, "two"]
        with pytest.raises(KeyError) as missing:
            proxy.invoke_command("get", "nope")
        # As a local dict's KeyError: the key itself, printed once quoted.
        assert missing.value.args == ("nope",) and str(missing.value) == "'nope'"
        with pytest.raises(ValueError, match="negative: -1"):
            proxy.invoke_command("check", -1)
        with pytest.raises(TypeError):
            proxy.invoke_command("check")
        with pytest.raises(RemoteError) as e:
            proxy.invoke_command("oops")
        assert (e.value.kind, e.value.message) == ("Oops", "custom")
        with pytest.raises(AttributeError):
            proxy.invoke_command("no_such_method")
        with pytest.raises(AttributeError):
            proxy.invoke_command("_secret")
        # A second instance of a hosted class cannot be created.
        with pytest.raises(TypeError, match="one instance"):
            proxy._client.create("other", "faulty.Faulty", [])
        assert proxy.invoke_command("check", 7) == 7
    finally:
        proxy.disconnect()


def test_a_hosted_lock_blocks_one_client_until_the_other_releases(modules, cluster_factory):
    cluster = cluster_factory(3, object="hostedlock.HostedLock")
    a, b = cluster.client(), cluster.client()
    try:
        assert a.call("default", "acquire") is True
        waiting = in_thread(lambda: b.call("default", "acquire", timeout=30))
        wait_parked(b)
        assert "owner=%d" % a.session in a.call("default", "__repr__")
        # A caller that gives up is taken out of the queue through the host.
        with pytest.raises(Timeout):
            b.call("default", "acquire", timeout=0.3)
        assert a.call("default", "release") is None
        assert waiting() is True
        with pytest.raises(RuntimeError, match="un-acquired"):
            a.call("default", "release")
        assert b.call("default", "release") is None
        # The cancelled acquire was never granted: the lock is free for a.
        assert a.call("default", "acquire", timeout=5) is True
        # A semaphore with two permits, inside a dict: the third taker waits.
        assert a.call("default", "take") is True
        assert a.call("default", "take") is True
        taking = in_thread(lambda: b.call("default", "take", timeout=30))
        wait_parked(b)
        a.call("default", "give")
        assert taking() is True
    finally:
        a.close()
        b.close()


def test_calls_that_share_a_slot_run_in_order_with_parks_and_wakes(modules, cluster_factory):
    """Many callers at once put several hosted calls in one log slot, which each
    replica hands to its host in one batch: a lock passed among six clients (parked
    and woken inside batches) never has two holders, no increment from sixteen
    threads is lost or doubled, and every replica's object agrees (the counts
    survive their leader)."""
    cluster = cluster_factory(3, object="hostedlock.HostedLock")
    clients = [cluster.client() for _ in range(6)]
    rounds = 15

    def take_turns(c):
        for _ in range(rounds):
            assert c.call("default", "acquire", timeout=60) is True
            # While c holds the lock nobody else does.
            assert "owner=%d" % c.session in c.call("default", "__repr__")
            assert c.call("default", "release") is None

    try:
        joins = [in_thread(take_turns, c) for c in clients]
        for join in joins:
            join()
        cluster.leader().kill()
        assert "owner=None" in clients[0].call("default", "__repr__")
    finally:
        for c in clients:
            c.close()

    counters = cluster_factory(3, object="tencounter.TenCounter")
    a, b = counters.client(), counters.client()

    def increment(c):
        for _ in range(25):
            c.call("default", "increment")

    try:
        joins = [in_thread(increment, c) for c in (a, b) for _ in range(8)]
        for join in joins:
            join()
        assert a.call("default", "getvalue") == 2 * 8 * 25 * 10
        counters.leader().kill()
        assert b.call("default", "getvalue") == 2 * 8 * 25 * 10
    finally:
        a.close()
        b.close()


def test_a_session_that_ends_releases_the_hosted_lock(modules, cluster_factory):
    cluster = cluster_factory(1, object="hostedlock.HostedLock")
    a, b = cluster.client(), cluster.client()
    try:
        assert a.call("default", "acquire") is True
        assert a.call("default", "take") is True
        assert a.call("default", "take") is True
        waiting = in_thread(lambda: b.call("default", "acquire", timeout=30))
        taking = in_thread(lambda: b.call("default", "take", timeout=30))
        wait_parked(b, 2)
        a.close()
        assert waiting() is True
        assert taking() is True
        assert "owner=%d" % b.session in b.call("default", "__repr__")
    finally:
        a.close()
        b.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_durable_replica_recovers_its_python_object_from_a_snapshot(modules, tmp_path):
    port = free_port()
    args = [
        "-a", "127.0.0.1", "-p", str(port), "-o", "hostedlock.HostedLock",
        "--data-dir", str(tmp_path / "data"), "--snapshot-every", "4",
    ]
    replica = Replica(args, tmp_path / "replica.log")
    client = None
    try:
        client = Client(replica.addr, give_up_after=2)
        assert client.call("default", "acquire") is True
        assert client.call("default", "take") is True
        assert client.call("default", "take") is True
        for _ in range(20):
            client.call("default", "__repr__")  # commands: the log grows, snapshots follow
        before = client.call("default", "__repr__")
        assert "owner=%d" % client.session in before and "count=0" in before
        replica.kill()
        replica = Replica(args, tmp_path / "replica.log")
        assert "installed a snapshot" in replica.log_text()
        again = Client(replica.addr)
        try:
            # The lock's owner and the permits survived the restart, in the pickle.
            assert again.call("default", "__repr__") == before
            with pytest.raises(Timeout):
                again.call("default", "acquire", timeout=0.5)
        finally:
            again.close()
    finally:
        replica.kill()
        if client is not None:
            client.close()


UNPICKLABLE = "cannot pickle the object for a snapshot: self.guard (a _thread.lock)"


def test_state_that_cannot_be_pickled_keeps_the_log_and_stops_no_replica(
    modules, cluster_factory
):
    cluster = cluster_factory(3, object="spoilable.Spoilable", extra=["--snapshot-every", "4"])
    client = cluster.client()
    try:
        client.call("default", "spoil")
        for i in range(24):
            client.call("default", "add", [i])
        assert client.call("default", "getitems") == list(range(24))
        # Every replica tried to snapshot, said why it could not, and serves on.
        assert len(cluster.live()) == 3
        for replica in cluster.replicas:
            log = replica.log_text()
            assert UNPICKLABLE in log and "keeps its log instead of compacting" in log, log
        cluster.wait_voters(3)
        # A replica that joins now catches up from the kept log.
        cluster.add_replica()
        cluster.wait_voters(4)
        client.call("default", "add", [24])
        assert client.call("default", "getitems") == list(range(25))
    finally:
        client.close()


def test_a_durable_replica_replays_the_log_it_kept_when_snapshots_failed(modules, tmp_path):
    port = free_port()
    args = [
        "-a", "127.0.0.1", "-p", str(port), "-o", "spoilable.Spoilable",
        "--data-dir", str(tmp_path / "data"), "--snapshot-every", "4",
    ]
    logs = [tmp_path / ("replica-%d.log" % i) for i in range(3)]
    replica = Replica(args, logs[0])
    client = None
    try:
        client = Client(replica.addr, give_up_after=2)
        client.call("default", "spoil")
        for i in range(20):
            client.call("default", "add", [i])
        assert UNPICKLABLE in replica.log_text()
        client.close()
        replica.kill()

        # Restarted: nothing was compacted, the log replays every add.
        replica = Replica(args, logs[1])
        client = Client(replica.addr, give_up_after=2)
        assert client.call("default", "getitems") == list(range(20))
        # Mended: the next snapshot point takes a snapshot again.
        client.call("default", "mend")
        for i in range(20, 30):
            client.call("default", "add", [i])
        client.close()
        replica.kill()

        replica = Replica(args, logs[2])
        assert "installed a snapshot" in replica.log_text()
        client = Client(replica.addr, give_up_after=2)
        assert client.call("default", "getitems") == list(range(30))
    finally:
        replica.kill()
        if client is not None:
            client.close()


def wait_exit(replica, limit=30):
    try:
        return replica.process.wait(timeout=limit)
    except Exception:
        raise AssertionError("the replica did not stop:\n%s" % replica.log_text())


@pytest.mark.parametrize("method, reason", [("crash", "the Python object host failed")])
def test_a_failing_host_stops_its_replica_with_a_clear_message(
    modules, cluster_factory, method, reason
):
    cluster = cluster_factory(1, object="faulty.Faulty")
    replica = cluster.replicas[0]
    client = Client(cluster.boot, give_up_after=2)
    try:
        with pytest.raises(Exception):
            client.call("default", method)
        assert wait_exit(replica) != 0
        log = replica.log_text()
        assert reason in log, log
        assert "stops rather than answer" in log
    finally:
        client.close()


def test_a_result_that_cannot_be_sent_is_the_callers_error_on_every_replica(
    modules, cluster_factory
):
    cluster = cluster_factory(3, object="faulty.Faulty")
    waiter, other = cluster.client(), cluster.client()
    try:
        with pytest.raises(TypeError, match=r"the result of getset\(\) cannot be sent"):
            other.call("default", "getset")
        parked = in_thread(waiter.call, "default", "park")
        wait_parked(waiter)
        assert other.call("default", "wake_badly") == "woke"
        with pytest.raises(TypeError, match=r"the value wake_badly\(\) woke the call with cannot be sent"):
            parked()
        # No replica stopped: each applied the same error, and the cluster serves on.
        other.call("default", "put", ["k", 1])
        assert other.call("default", "get", ["k"]) == 1
        assert len(cluster.live()) == 3
        cluster.wait_voters(3)
    finally:
        waiter.close()
        other.close()


def test_a_hung_host_stops_its_replica(modules, cluster_factory):
    cluster = cluster_factory(1, object="faulty.Faulty", extra=["--host-timeout", "1"])
    replica = cluster.replicas[0]
    client = Client(cluster.boot, give_up_after=3)
    try:
        with pytest.raises(Exception):
            client.call("default", "spin")
        assert wait_exit(replica) != 0
        assert "did not answer within" in replica.log_text()
    finally:
        client.close()


def test_a_replica_of_different_code_is_refused(modules, cluster_factory, tmp_path, monkeypatch):
    cluster = cluster_factory(1, object="tencounter.TenCounter")
    other = tmp_path / "other"
    other.mkdir()
    (other / "tencounter.py").write_text(
        textwrap.dedent(MODULES["tencounter"]).replace("+= 10", "+= 11")
    )
    monkeypatch.setenv("PYTHONPATH", str(other))
    joiner = Replica(
        ["-a", "127.0.0.1", "-p", "0", "-o", "tencounter.TenCounter", "-b", cluster.boot],
        tmp_path / "joiner.log",
    )
    try:
        deadline = time.monotonic() + 20
        problem = None
        while time.monotonic() < deadline:
            status = cluster.status(joiner)
            problem = status and status.get("join_problem")
            if problem and "tencounter.TenCounter@" in problem:
                break
            time.sleep(0.2)
        assert problem and "tencounter.TenCounter@" in problem, joiner.log_text()
        assert cluster.status(joiner)["role"] == "joining"
    finally:
        joiner.kill()


def concoord_object(cwd, *args):
    return subprocess.run(
        [concoord_bin(), "object"] + list(args), cwd=str(cwd), capture_output=True, text=True
    )


def test_the_tutorial_with_generated_proxies(modules, cluster_factory, monkeypatch):
    import concoord.object.semaphore

    (modules / "tutsemaphore.py").write_text(
        pathlib.Path(concoord.object.semaphore.__file__).read_text()
    )
    # The original's installed module: its proxy lands in the current directory.
    done = concoord_object(modules, "-o", "concoord.object.semaphore.Semaphore", "-p", "1")
    assert done.returncode == 0, done.stderr
    assert (modules / "semaphoreproxy.py").exists()
    done = concoord_object(modules, "-o", "tencounter.TenCounter")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(str(modules / "tencounterproxy.py"))
    done = concoord_object(modules, "-o", "tutsemaphore.Semaphore", "-p", "1", "-s")
    assert done.returncode == 0, done.stderr
    monkeypatch.syspath_prepend(str(modules))
    from tencounterproxy import TenCounter
    from tutsemaphoreproxy import Semaphore

    counters = cluster_factory(2, object="tencounter.TenCounter")
    c = TenCounter(counters.boot)
    c.increment()
    c.increment()
    assert c.getvalue() == 20
    assert str(c) == "The counter value is 20"
    c.__concoordinit__(5)
    assert c.getvalue() == 5
    c.proxy.disconnect()

    semaphores = cluster_factory(1, object="tutsemaphore.Semaphore")
    a, b = Semaphore(semaphores.boot), Semaphore(semaphores.boot)
    try:
        assert a.acquire() is True
        waiting = in_thread(b.acquire)
        wait_parked(b.proxy._client)
        assert repr(a) != "" and a.release() is None
        assert waiting() is True
    finally:
        a.proxy.disconnect()
        b.proxy.disconnect()

    # The same proxy, generated from the original's installed module, drives the
    # Rust built-in that -o concoord.object.semaphore.Semaphore selects.
    from semaphoreproxy import Semaphore as BuiltinSemaphore

    builtin = cluster_factory(1, object="concoord.object.semaphore.Semaphore")
    assert builtin.status(builtin.replicas[0])["object_type"] == "Semaphore"
    a, b = BuiltinSemaphore(builtin.boot), BuiltinSemaphore(builtin.boot)
    try:
        assert a.acquire() is True
        waiting = in_thread(b.acquire)
        wait_parked(b.proxy._client)
        assert a.release() is None
        assert waiting() is True
    finally:
        a.proxy.disconnect()
        b.proxy.disconnect()


def test_the_safety_check_names_lines_and_reasons(modules):
    done = concoord_object(modules, "-o", "faulty.Faulty", "-s")
    assert done.returncode != 0
    assert "faulty.py:2: imports os" in done.stderr
    assert not (modules / "faultyproxy.py").exists()
    done = concoord_object(modules, "-o", "faulty.Faulty", "-p", "4")
    assert done.returncode != 0 and "proxy type 4 is not available" in done.stderr
    done = concoord_object(modules, "-o", "faulty.Faulty")
    assert done.returncode == 0, done.stderr
    assert "def put(self, key, value):" in (modules / "faultyproxy.py").read_text()


def test_a_class_that_cannot_be_loaded_stops_the_replica_at_start(modules, tmp_path):
    for spec, reason in [
        ("nosuchmodule.Thing", "cannot import nosuchmodule"),
        ("tencounter.NoSuchClass", "has no class NoSuchClass"),
    ]:
        with pytest.raises(RuntimeError) as e:
            Replica(["-a", "127.0.0.1", "-p", "0", "-o", spec], tmp_path / "bad.log")
        assert reason in str(e.value)
        assert "cannot host the Python class %s" % spec in str(e.value)


def test_an_asyncio_proxy_generated_with_p3(modules, cluster_factory, monkeypatch):
    import asyncio

    (modules / "asynccounter.py").write_text(textwrap.dedent(MODULES["tencounter"]))
    done = concoord_object(modules, "-o", "asynccounter.TenCounter", "-p", "3")
    assert done.returncode == 0, done.stderr
    monkeypatch.syspath_prepend(str(modules))
    from asynccounterproxy import TenCounter

    cluster = cluster_factory(1, object="asynccounter.TenCounter")

    async def main():
        counter = await TenCounter.connect(cluster.boot)
        try:
            await asyncio.gather(*(counter.increment() for _ in range(50)))
            assert await counter.getvalue() == 500
            await counter.__concoordinit__(3)
            assert await counter.getvalue() == 3
        finally:
            await counter.close()

    asyncio.run(main())


def test_a_batching_proxy_generated_with_p2(modules, cluster_factory, monkeypatch):
    (modules / "batchcounter.py").write_text(textwrap.dedent(MODULES["tencounter"]))
    (modules / "batchlock.py").write_text(textwrap.dedent(MODULES["hostedlock"]))
    for spec in ("batchcounter.TenCounter", "batchlock.HostedLock"):
        done = concoord_object(modules, "-o", spec, "-p", "2")
        assert done.returncode == 0, done.stderr
    monkeypatch.syspath_prepend(str(modules))
    from batchcounterproxy import TenCounter
    from batchlockproxy import HostedLock

    counters = cluster_factory(1, object="batchcounter.TenCounter")
    counter = TenCounter(counters.boot, batch_size=20)
    try:
        queued = [counter.increment() for _ in range(50)]
        # Two full batches of 20 went out; the last 10 wait for a flush.
        assert sum(f.done() for f in queued[40:]) == 0
        assert counter.proxy.flush() == 10
        assert [f.result() for f in queued] == [None] * 50
        value = counter.getvalue()
        assert value.result() == 500, "asking for a result sends its batch"
        assert str(counter) == "The counter value is 500"
        assert counter.__concoordinit__(7).result() is None
        assert counter.getvalue().result() == 7
    finally:
        counter.proxy.disconnect()

    locks = cluster_factory(1, object="batchlock.HostedLock")
    a, b = HostedLock(locks.boot), HostedLock(locks.boot)
    try:
        assert a.acquire().result() is True
        waiting = b.acquire()
        b.proxy.flush()
        wait_parked(b.proxy._client)
        assert not waiting.done()
        assert a.release().result() is None
        assert waiting.result(timeout=30) is True
    finally:
        a.proxy.disconnect()
        b.proxy.disconnect()


def test_a_hosted_barrier_parks_through_the_replicas(modules, cluster_factory):
    import concoord.object.barrier

    (modules / "mybarrier.py").write_text(
        pathlib.Path(concoord.object.barrier.__file__).read_text().replace("count=1", "count=3")
    )
    cluster = cluster_factory(3, object="mybarrier.Barrier")
    proxies = [ClientProxy(cluster.boot) for _ in range(3)]
    try:
        first = in_thread(proxies[0].invoke_command, "wait")
        wait_parked(proxies[0]._client)
        second = in_thread(proxies[1].invoke_command, "wait")
        wait_parked(proxies[1]._client)
        assert proxies[2].invoke_command("__repr__") == "<DBarrier parties=3 waiting=2>"
        assert proxies[2].invoke_command("wait") == 2
        assert (first(), second()) == (0, 1)
        assert proxies[2].invoke_command("n_waiting") == 0
        # A session that ends leaves the barrier: the next round needs three others.
        waiting = in_thread(proxies[0].invoke_command, "wait")
        wait_parked(proxies[0]._client)
        proxies[0].disconnect()
        with pytest.raises(Unavailable):
            waiting()
        assert proxies[1].invoke_command("n_waiting") == 0
    finally:
        for p in proxies:
            p.disconnect()
