"""Benchmarks of the Python side: the Python client against the Rust client on one
cluster, and a hosted Python object against the Rust Counter under the same load.
Run by ``scripts/bench-python``; prints Markdown tables.

1. Three durable replicas of the built-in Counter: the sequential ``increment()``
   latency of the Python client (``concoord.proxy.counter.Counter``) next to the
   Rust client's (``concoord bench -c 1``), then one Python client called by 64
   threads, and one asyncio client with 64 tasks, in calls per second.
2. The same load (``concoord bench -w increment -c C``, the Rust client, so that
   only the object differs) on three durable replicas of the built-in Counter and
   on three hosting ``tencounter.TenCounter``, at C = 1, 8, 64, with the CPU the
   replicas (and their object hosts) spent per applied call.
3. ``overhead``: one in-memory replica (no disk, no peers), so that the round trip
   is mostly the clients: the sequential p50 of both clients, interleaved, and the
   Python client's CPU per call.

What it deliberately is not: a test. Nothing here asserts a speed; the numbers
depend on the machine and on whatever else runs on it.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from concoord.client import Client, status_of
from concoord.exception import ConCoordError
from concoord.proxy.counter import Counter
import concoord.aio

TENCOUNTER = '''\
import concoord


class TenCounter:
    def __init__(self, value=0):
        self.value = value

    def increment(self):
        self.value += 10

    @concoord.readonly
    def getvalue(self):
        return self.value
'''

TICK = os.sysconf("SC_CLK_TCK")


def own_cpu():
    """CPU seconds (user + system, all threads) this process (the Python client)
    has used, from the kernel's exact accounting, not its clock ticks."""
    return time.process_time()


class Cluster:
    """Three durable replicas on 127.0.0.1 ports base..base+2."""

    def __init__(self, binary, workdir, base, objectname):
        self.procs = []
        self.boot = ",".join("127.0.0.1:%d" % (base + i) for i in range(3))
        env = dict(os.environ, CONCOORD_PYTHON=sys.executable)
        for i in range(3):
            args = [binary, "replica", "-a", "127.0.0.1", "-p", str(base + i), "-o", objectname,
                    "--data-dir", os.path.join(workdir, "%s-%d" % (objectname, base + i))]
            if i:
                args += ["-b", "127.0.0.1:%d" % base]
            log = open(os.path.join(workdir, "%s-%d.log" % (objectname, base + i)), "ab")
            self.procs.append(subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=log))
            log.close()
            self.wait_voters(i + 1)

    def wait_voters(self, n, limit=60):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for addr in self.boot.split(",")[:n]:
                try:
                    s = status_of(addr, timeout=1.0)
                except ConCoordError:
                    continue
                voters = [m for m in s.get("members", []) if m["role"] == "voter"]
                if s["role"] == "leader" and len(voters) == n and all(m["lag"] is not None and m["lag"] < 64 for m in voters):
                    return
            time.sleep(0.1)
        raise SystemExit("the cluster at %s did not get %d voters" % (self.boot, n))

    def cpu_seconds(self):
        """CPU time (user + system) of the replicas and their children (object hosts)."""
        pids = [p.pid for p in self.procs]
        children = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) in pids:
                    children.append(int(entry))
        total = 0
        for pid in pids + children:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / TICK

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()


def rust_bench(binary, boot, clients, duration, instance=None, warmup=1.0):
    args = [binary, "bench", "-b", boot, "-w", "increment", "-c", str(clients),
            "-t", str(duration), "--warmup", str(warmup), "--json"]
    if instance:
        args += ["--instance", instance]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def python_sequential(boot, duration):
    """Per-call latencies (ms) of one proxy calling increment() back to back, and
    the client's CPU per call (µs)."""
    c = Counter(boot, instance="py-seq", create=True)
    try:
        for _ in range(50):
            c.increment()
        lat = []
        cpu0 = own_cpu()
        end = time.perf_counter() + duration
        while True:
            t0 = time.perf_counter()
            c.increment()
            t1 = time.perf_counter()
            lat.append((t1 - t0) * 1000)
            if t1 >= end:
                break
        return lat, (own_cpu() - cpu0) / len(lat) * 1e6
    finally:
        c.disconnect()


def python_threads(boot, threads, duration):
    """Calls per second of one Client called by ``threads`` threads."""
    client = Client(boot)
    client.create("py-threads", "Counter")
    counts = [0] * threads
    stop = threading.Event()

    def run(i):
        while not stop.is_set():
            client.call("py-threads", "increment")
            counts[i] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    time.sleep(1.0)  # warm-up
    before, t0, cpu0 = sum(counts), time.perf_counter(), own_cpu()
    time.sleep(duration)
    after, t1, cpu1 = sum(counts), time.perf_counter(), own_cpu()
    stop.set()
    for w in workers:
        w.join()
    client.close()
    return (after - before) / (t1 - t0), (cpu1 - cpu0) / max(1, after - before) * 1e6


def python_asyncio(boot, tasks, duration):
    """Calls per second of one asyncio client with ``tasks`` tasks."""

    async def main():
        client = await concoord.aio.Client.connect(boot)
        await client.create("py-aio", "Counter")
        counts = [0] * tasks
        stop = asyncio.Event()

        async def run(i):
            while not stop.is_set():
                await client.call("py-aio", "increment")
                counts[i] += 1

        workers = [asyncio.ensure_future(run(i)) for i in range(tasks)]
        await asyncio.sleep(1.0)
        before, t0, cpu0 = sum(counts), time.perf_counter(), own_cpu()
        await asyncio.sleep(duration)
        after, t1, cpu1 = sum(counts), time.perf_counter(), own_cpu()
        stop.set()
        await asyncio.gather(*workers)
        await client.close()
        return (after - before) / (t1 - t0), (cpu1 - cpu0) / max(1, after - before) * 1e6

    return asyncio.run(main())


def applied(boot, instance, step):
    client = Client(boot)
    try:
        return client.call(instance, "getvalue") // step
    finally:
        client.close()


def measured_load(binary, cluster, clients, duration, instance, step):
    """`concoord bench` at C = clients, and the replicas' CPU per applied call (µs)."""
    n0, cpu0 = applied(cluster.boot, instance, step), cluster.cpu_seconds()
    report = rust_bench(binary, cluster.boot, clients, duration,
                        instance if instance == "default" else None)
    n1, cpu1 = applied(cluster.boot, instance, step), cluster.cpu_seconds()
    return report, (cpu1 - cpu0) / max(1, n1 - n0) * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--base-port", type=int, default=16700)
    parser.add_argument("--parts", default="overhead,client,hosted")
    args = parser.parse_args()
    parts = args.parts.split(",")
    workdir = tempfile.mkdtemp(prefix="concoord-pybench.")
    with open(os.path.join(workdir, "tencounter.py"), "w") as f:
        f.write(TENCOUNTER)
    print("machine: %d cores, load average %s; Python %s" % (
        os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg()), sys.version.split()[0]))
    try:
        if "overhead" in parts:
            port = args.base_port + 30
            proc = subprocess.Popen(
                [args.bin, "replica", "-a", "127.0.0.1", "-p", str(port), "-o", "Counter"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            boot = "127.0.0.1:%d" % port
            try:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        status_of(boot, timeout=1.0)
                        break
                    except ConCoordError:
                        if time.monotonic() > deadline:
                            raise SystemExit("the replica at %s did not start" % boot)
                        time.sleep(0.1)
                rounds = 5
                rust_p50, python_p50, python_cpu = [], [], []
                for _ in range(rounds):
                    rust_p50.append(rust_bench(args.bin, boot, 1, args.duration / rounds)["p50_ms"] * 1000)
                    lat, cpu = python_sequential(boot, args.duration / rounds)
                    python_p50.append(statistics.median(lat) * 1000)
                    python_cpu.append(cpu)
                print("\n| sequential increment, one in-memory replica, %d interleaved rounds | p50 per round (µs) | median |" % rounds)
                print("|---|---|---|")
                print("| Rust client | %s | %.0f µs |" % (" ".join("%.0f" % x for x in rust_p50), statistics.median(rust_p50)))
                print("| Python client | %s | %.0f µs |" % (" ".join("%.0f" % x for x in python_p50), statistics.median(python_p50)))
                print("| Python client's CPU per call | %s | %.0f µs |" % (" ".join("%.0f" % x for x in python_cpu), statistics.median(python_cpu)))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        if "client" in parts:
            cluster = Cluster(args.bin, workdir, args.base_port, "Counter")
            try:
                # Interleaved rounds, so that a change in the machine's load hits both
                # clients alike; the ratio is of the medians of the rounds' p50s.
                rounds = 5
                rust_p50, python_p50, python_cpu = [], [], []
                for _ in range(rounds):
                    rust_p50.append(rust_bench(args.bin, cluster.boot, 1, args.duration / rounds)["p50_ms"])
                    lat, cpu = python_sequential(cluster.boot, args.duration / rounds)
                    python_p50.append(statistics.median(lat))
                    python_cpu.append(cpu)
                print("\n| sequential increment, 3 durable replicas, %d interleaved rounds | p50 per round | median |" % rounds)
                print("|---|---|---|")
                print("| Rust client (`concoord bench -c 1`) | %s | %.3f ms |" % (
                    " ".join("%.3f" % x for x in rust_p50), statistics.median(rust_p50)))
                print("| Python client (`Counter.increment()`) | %s | %.3f ms |" % (
                    " ".join("%.3f" % x for x in python_p50), statistics.median(python_p50)))
                print("\nPython p50 / Rust p50 (medians) = %.2f; the Python client's CPU per "
                      "sequential call: %.0f µs (median)" % (
                          statistics.median(python_p50) / statistics.median(rust_p50),
                          statistics.median(python_cpu)))
                threads, threads_cpu = python_threads(cluster.boot, 64, args.duration)
                aio, aio_cpu = python_asyncio(cluster.boot, 64, args.duration)
                rust64 = rust_bench(args.bin, cluster.boot, 64, args.duration)["ops_per_sec"]
                print("\n| one client process, C = 64 | calls/s | client CPU per call |")
                print("|---|---|---|")
                print("| 64 threads on one `concoord.client.Client` | %.0f | %.0f µs |" % (threads, threads_cpu))
                print("| 64 tasks on one `concoord.aio.Client` | %.0f | %.0f µs |" % (aio, aio_cpu))
                print("| the Rust client (`concoord bench -c 64`), same cluster | %.0f | |" % rust64)
            finally:
                cluster.stop()
        if "hosted" in parts:
            rows = []
            for objectname, instance, step, base in [
                ("Counter", "bench-counter", 1, args.base_port + 10),
                ("tencounter.TenCounter", "default", 10, args.base_port + 20),
            ]:
                cluster = Cluster(args.bin, workdir, base, objectname)
                try:
                    if instance == "bench-counter":
                        # The bench creates it; make it exist for the first count.
                        c = Client(cluster.boot)
                        c.create(instance, "Counter")
                        c.close()
                    for clients in (1, 8, 64):
                        report, cpu = measured_load(args.bin, cluster, clients, args.duration, instance, step)
                        rows.append((objectname, clients, report, cpu))
                finally:
                    cluster.stop()
            print("\n| object (3 durable replicas) | C | calls/s | p50 | p99 | CPU per call, per replica |")
            print("|---|---|---|---|---|---|")
            for objectname, clients, report, cpu in rows:
                print("| %s | %d | %.0f | %.2f ms | %.2f ms | %.0f µs |" % (
                    objectname, clients, report["ops_per_sec"], report["p50_ms"], report["p99_ms"], cpu / 3))
            by = {(o, c): (r, cpu) for o, c, r, cpu in rows}
            for clients in (1, 8, 64):
                (rr, rc), (hr, hc) = by[("Counter", clients)], by[("tencounter.TenCounter", clients)]
                print("C = %d: hosted/Rust throughput %.2f, extra CPU per call per replica %.0f µs" % (
                    clients, hr["ops_per_sec"] / rr["ops_per_sec"], (hc - rc) / 3))
        print("\nload average at the end: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
