"""The leader killed with SIGKILL under the Python client: calls in flight are
neither lost nor doubled, and a parked acquire survives the failover and is woken
by the new leader."""

import threading

from concoord.proxy.counter import Counter
from concoord.proxy.lock import Lock
from test_proxies import in_thread, wait_parked


def test_leader_killed_during_calls_loses_and_doubles_nothing(cluster_factory):
    cluster = cluster_factory(3)
    counter = Counter(cluster.boot)
    threads, per_thread = 8, 60
    done = [0] * threads
    errors = []
    halfway = threading.Event()

    def work(index):
        try:
            for _ in range(per_thread):
                counter.increment()
                done[index] += 1
                if sum(done) >= threads * per_thread // 3:
                    halfway.set()
        except BaseException as e:
            errors.append(e)
            halfway.set()

    try:
        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for w in workers:
            w.start()
        halfway.wait()
        leader = cluster.leader()
        leader.kill()
        for w in workers:
            w.join()
        assert errors == []
        # Every call returned exactly once, and each ran exactly once: calls in
        # flight at the kill were resent unchanged and deduplicated.
        assert counter.getvalue() == threads * per_thread
        assert cluster.leader() is not leader
    finally:
        counter.disconnect()


def test_a_parked_acquire_survives_the_leaders_death(cluster_factory):
    cluster = cluster_factory(3)
    holder = Lock(cluster.boot, instance="l", create=True)
    waiter = Lock(cluster.boot, instance="l")
    try:
        assert holder.acquire() is True
        waiting = in_thread(waiter.acquire_token)
        wait_parked(waiter.client)
        first_token = holder.token()
        cluster.leader().kill()
        # The holder's release reaches the new leader, which wakes the waiter on
        # the connection it has moved to.
        holder.release()
        assert waiting() > first_token
        assert repr(holder) == "<DLock owner=%d>" % waiter.client.session
        waiter.release()
        assert holder.locked() is False
    finally:
        holder.disconnect()
        waiter.disconnect()


def test_leader_killed_under_the_asyncio_client(cluster_factory):
    import asyncio

    import concoord.aio

    cluster = cluster_factory(3)
    calls, tasks = 400, 16

    async def main():
        client = await concoord.aio.Client.connect(cluster.boot)
        try:
            done = 0
            killed = asyncio.Event()

            async def work(count):
                nonlocal done
                for _ in range(count):
                    await client.call("default", "increment")
                    done += 1
                    if done == calls // 3:
                        killed.set()

            workers = asyncio.gather(*(work(calls // tasks) for _ in range(tasks)))
            await killed.wait()
            leader = cluster.leader()
            leader.kill()
            await workers
            assert await client.call("default", "getvalue") == calls
        finally:
            await client.close()

    asyncio.run(main())


def test_a_client_given_only_the_leader_fails_over_to_members_it_learned(cluster_factory):
    import socket

    cluster = cluster_factory(3)
    leader = cluster.leader()
    counter = Counter(leader.addr)
    try:
        counter.increment()
        sock = counter.client._shell.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        # The status the client asked for when it connected listed every member;
        # one more status on the same connection means that answer is in.
        counter.client.status()
        with counter.client._shell.lock:
            assert {r.addr for r in cluster.live()} <= set(counter.client._shell.core.addrs)
        leader.kill()
        # No address it was given answers now: only the members it learned do.
        counter.increment()
        assert counter.getvalue() == 2
    finally:
        counter.disconnect()
