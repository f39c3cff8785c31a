"""End-to-end tests of the clients themselves (concoord.client, concoord.aio):
many threads on one client, the asyncio client, tokens, sessions that end
releasing locks, call timeouts, failover from a dead bootstrap address, learning
the cluster's members, and what a call raises when the cluster is gone."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import concoord.aio
from concoord.client import Client
from concoord.exception import BadToken, MaybeExecuted, Timeout, Unavailable
from concoord.proxy.counter import Counter
from concoord.proxy.lock import Lock
from test_proxies import in_thread, wait_parked


def test_many_threads_share_one_client(shared_client, name):
    counter = Counter(client=shared_client, instance=name, create=True)
    threads, per_thread = 16, 100
    errors = []

    def work():
        try:
            for _ in range(per_thread):
                counter.increment()
        except BaseException as e:
            errors.append(e)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert counter.getvalue() == threads * per_thread


def test_the_asyncio_client(shared_cluster, name):
    async def main():
        client = await concoord.aio.Client.connect(shared_cluster.boot)
        try:
            await client.create(name, "Counter", [10])
            await asyncio.gather(*(client.call(name, "increment") for _ in range(300)))
            assert await client.call(name, "getvalue") == 310
            with pytest.raises(AttributeError):
                await client.call(name, "no_such_method")
            status = await client.status()
            assert status["role"] == "leader"
            # A parked call waits across other calls; a timeout takes it back.
            await client.create(name + "-lock", "Lock")
            assert await client.call(name + "-lock", "acquire") is True
            other = await concoord.aio.Client.connect(shared_cluster.boot)
            try:
                with pytest.raises(Timeout):
                    await other.call(name + "-lock", "acquire", timeout=0.2)
                waiting = asyncio.ensure_future(other.call(name + "-lock", "acquire"))
                while not any(p.attempt == "parked" for p in other._core.pending.values()):
                    await asyncio.sleep(0.005)
                await client.call(name + "-lock", "release")
                assert await waiting is True
            finally:
                await other.close()
        finally:
            await client.close()
        with pytest.raises(Unavailable, match="closed"):
            await client.call(name, "getvalue")

    asyncio.run(main())


def test_tokens(cluster_factory):
    cluster = cluster_factory(1, token="s3cret")
    with Counter(cluster.boot, token="s3cret") as counter:
        counter.increment()
        assert counter.getvalue() == 1
    with pytest.raises(BadToken):
        Counter(cluster.boot, token="wrong")
    with pytest.raises(BadToken):
        Counter(cluster.boot)


def test_a_closed_session_releases_its_lock(shared_cluster, name):
    holder = shared_cluster.client()
    waiter = shared_cluster.client()
    try:
        held = Lock(client=holder, instance=name, create=True)
        assert held.acquire() is True
        blocked = Lock(client=waiter, instance=name)
        waiting = in_thread(blocked.acquire)
        wait_parked(waiter)
        holder.close()
        assert waiting() is True
        assert repr(blocked) == "<DLock owner=%d>" % waiter.session
        with pytest.raises(Unavailable, match="closed"):
            held.locked()
    finally:
        waiter.close()


HOLDER = """
import sys, time
from concoord.proxy.lock import Lock
lock = Lock(sys.argv[1], instance=sys.argv[2], lease=1.0)
assert lock.acquire() is True
print("held", lock.client.session, flush=True)
time.sleep(3600)
"""


def test_a_killed_clients_lock_passes_on_when_its_lease_ends(shared_cluster, name):
    Lock(client=shared_cluster.client(), instance=name, create=True).disconnect()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, shared_cluster.boot, name],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        line = holder.stdout.readline().decode()
        assert line.startswith("held "), "the holder did not get the lock: %r" % line
        holder_session = int(line.split()[1])
        # (`with Lock(...)` would acquire, as `with threading.Lock()` does.)
        lock = Lock(shared_cluster.boot, instance=name, call_timeout=60)
        try:
            assert repr(lock) == "<DLock owner=%d>" % holder_session
            holder.send_signal(signal.SIGKILL)
            holder.wait()
            # The holder's session ends after its 1 s lease: the lock passes here.
            assert lock.acquire() is True
            assert repr(lock) == "<DLock owner=%d>" % lock.client.session
        finally:
            lock.disconnect()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_call_timeout_cancels_through_the_cluster(shared_cluster, name):
    holder = shared_cluster.client()
    impatient = shared_cluster.client(call_timeout=0.3)
    try:
        Lock(client=holder, instance=name, create=True).acquire()
        with pytest.raises(Timeout, match="no effect"):
            impatient.call(name, "acquire")
        holder.call(name, "release")
        assert holder.call(name, "locked") is False, "the cancelled acquire is never granted"
        assert impatient.call(name, "acquire") is True, "the client goes on"
    finally:
        holder.close()
        impatient.close()


def test_failover_from_a_dead_address_and_learning_the_members(shared_cluster, shared_client, name):
    Counter(client=shared_client, instance=name, create=True)
    leader = shared_cluster.leader()
    follower = next(r for r in shared_cluster.live() if r is not leader)
    # Port 1 refuses at once; then the follower serves the calls by forwarding them
    # to its leader (docs/protocol.md §4), so the client may stay where it is.
    with Client(["127.0.0.1:1", follower.addr]) as client:
        client.call(name, "increment")
        assert client.call(name, "getvalue") == 1
        with client._shell.lock:
            known = set(client._shell.core.addrs)
        assert {r.addr for r in shared_cluster.live()} <= known, "it learned every member"
        status = client.status()
        assert status["addr"] in {r.addr for r in shared_cluster.live()}
        assert status["role"] in ("leader", "follower")


def test_calls_fail_with_unavailable_when_the_cluster_is_gone(cluster_factory):
    cluster = cluster_factory(1)
    client = cluster.client(give_up_after=1.0, attempt_timeout=0.5)
    try:
        client.call("default", "increment")
        cluster.stop()
        with pytest.raises(Unavailable) as raised:
            client.call("default", "increment")
        # Sent to the dying replica or never sent: both say so.
        assert isinstance(raised.value, MaybeExecuted) == ("may or may not" in str(raised.value))
    finally:
        client.close()


def end_session_behind_its_back(cluster, session):
    """Ends ``session`` with a CloseSession sent on a raw connection to the leader,
    as the cluster would on lease expiry."""
    from concoord import _wire
    from concoord.client import connect_socket

    sock, _, _ = connect_socket(cluster.leader().addr, cluster.token, 5.0)
    with sock:
        sock.sendall(_wire.close_session(1, session))
        buf = bytearray()
        while True:
            bodies, end = _wire.split_frames(buf)
            if bodies:
                reply = _wire.decode_server_frame(bodies[0])
                assert reply == _wire.Reply(1, reply.slot, reply.position, ("Value", False))
                return
            data = sock.recv(65536)
            assert data, "the leader closed the connection"
            buf += data


def test_a_session_ended_under_a_client_fails_its_calls_and_a_new_one_opens(shared_cluster, name):
    from concoord.exception import SessionExpired

    holder = shared_cluster.client()
    client = shared_cluster.client()
    try:
        Lock(client=holder, instance=name, create=True).acquire()
        Counter(client=client, instance=name + "-c", create=True).increment()
        parked = in_thread(client.call, name, "acquire")
        wait_parked(client)
        old = client.session
        end_session_behind_its_back(shared_cluster, old)
        # The parked call learns that its session ended, and so does a new call.
        with pytest.raises(SessionExpired):
            parked()
        try:
            client.call(name + "-c", "increment")
            ran = 1
        except SessionExpired:
            ran = 0  # sent in the ended session before the client learned: refused
        client.call(name + "-c", "increment")
        assert client.session != old
        assert client.call(name + "-c", "getvalue") == 2 + ran
        holder.call(name, "release")
        assert holder.call(name, "locked") is False, "the ended session's acquire was dropped"
    finally:
        holder.close()
        client.close()


def test_debug_logs_the_clients_decisions(shared_cluster, caplog):
    import logging

    logger = logging.getLogger("concoord")
    level, handlers = logger.level, list(logger.handlers)
    try:
        with caplog.at_level(logging.DEBUG, logger="concoord"):
            logger.setLevel(logging.WARNING)
            counter = Counter(shared_cluster.boot, debug=True)
            assert logger.level == logging.DEBUG
            counter.getvalue()
            counter.disconnect()
        messages = [r.getMessage() for r in caplog.records if r.name == "concoord.client"]
        assert any(m.startswith("connected to 127.0.0.1:") for m in messages), messages
        assert any(m.startswith("session ") and m.endswith(" opened") for m in messages), messages
    finally:
        logger.setLevel(level)
        logger.handlers[:] = handlers


def test_closing_a_client_ends_the_calls_other_threads_wait_for(shared_cluster, name):
    holder = shared_cluster.client()
    client = shared_cluster.client()
    try:
        Lock(client=holder, instance=name, create=True).acquire()
        parked = in_thread(client.call, name, "acquire")
        wait_parked(client)
        client.close()
        with pytest.raises(Unavailable):
            parked()
        holder.call(name, "release")
        assert holder.call(name, "locked") is False, "the closed session's acquire was dropped"
    finally:
        holder.close()


def test_threads_mixing_calls_parked_calls_and_timeouts_on_one_client(shared_cluster, name):
    # Each thread acquires the lock with a timeout, increments, releases; calls of
    # all kinds are in flight at once, some parked, some cancelled.
    import random

    client = shared_cluster.client()
    try:
        counter = Counter(client=client, instance=name + "-c", create=True)
        Lock(client=client, instance=name, create=True)
        got, gave_up, errors = [0], [0], []
        mutex = threading.Lock()
        other = shared_cluster.client()
        theirs = Lock(client=other, instance=name)

        def work(seed):
            rng = random.Random(seed)
            try:
                for _ in range(25):
                    counter.increment()
                    if theirs.acquire(timeout=rng.choice([0, 0.01, 0.05, None])):
                        with mutex:
                            got[0] += 1
                        theirs.release()
                    else:
                        with mutex:
                            gave_up[0] += 1
            except BaseException as e:
                errors.append(e)

        # `theirs` is one session shared by every thread, and a Lock is not
        # re-entrant: threads of one session queue behind each other.
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert got[0] + gave_up[0] == 8 * 25
        assert got[0] > 0
        assert counter.getvalue() == 8 * 25
        assert theirs.locked() is False, "no cancelled acquire was granted later"
        other.close()
    finally:
        client.close()


def test_a_cancelled_asyncio_task_takes_its_parked_call_back(shared_cluster, name):
    async def main():
        holder = await concoord.aio.Client.connect(shared_cluster.boot)
        other = await concoord.aio.Client.connect(shared_cluster.boot)
        try:
            await holder.create(name, "Lock")
            assert await holder.call(name, "acquire") is True
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(other.call(name, "acquire"), 0.2)
            # The cancel is ordered before this release, or it finds the call
            # parked: either way the lock is never granted to the task that left.
            while any(p.kind[0] in ("call", "cancel") for p in other._core.pending.values()):
                await asyncio.sleep(0.01)
            await holder.call(name, "release")
            assert await holder.call(name, "locked") is False
        finally:
            await holder.close()
            await other.close()

    asyncio.run(main())


def test_the_original_tutorials_counter(cluster_factory):
    # Two replicas of the original's dotted object name, and the proxy built from
    # the original's bootstrap string, spaces included.
    cluster = cluster_factory(2, object="concoord.object.counter.Counter")
    a, b = cluster.live()
    counter = Counter("%s, %s" % (a.addr, b.addr))
    try:
        for _ in range(3):
            counter.increment()
        assert counter.getvalue() == 3
        assert str(counter) == "The counter value is 3"
    finally:
        counter.disconnect()


def test_the_client_pins_its_cluster_and_never_uses_a_replica_of_another(cluster_factory, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="concoord")
    ours, theirs = cluster_factory(1), cluster_factory(1)
    client = Client(
        [ours.replicas[0].addr, theirs.replicas[0].addr], give_up_after=3.0, attempt_timeout=1.0
    )
    stranger = theirs.client()
    try:
        client.call("default", "increment")
        deadline = time.monotonic() + 10
        while client.cluster is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert client.cluster == ours.status(ours.replicas[0])["cluster"]
        assert client.cluster != theirs.status(theirs.replicas[0])["cluster"]
        ours.replicas[0].kill()
        # The only replica left belongs to another cluster: it refuses our Hello
        # (OtherCluster), and the call fails instead of running there.
        with pytest.raises(Unavailable):
            client.call("default", "increment")
        assert "refused the connection: OtherCluster" in caplog.text
        assert stranger.call("default", "getvalue") == 0
    finally:
        client.close()
        stranger.close()
