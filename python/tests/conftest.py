"""Real ``concoord replica`` processes on 127.0.0.1 for the end-to-end tests.

Every replica listens on a port the OS picked (``-p 0``, announced on its first
stdout line), so tests never collide with each other or with anything else on the
machine. Every process a test starts is killed when the test ends, pass or fail.
The binary is ``$CONCOORD_BIN``, else ``target/release/concoord`` in the repository.

What it deliberately is not: a fault injector beyond SIGKILL; network partitions
and pauses are the Rust end-to-end tests' business.
"""

import os
import pathlib
import signal
import subprocess
import threading
import time

import pytest

from concoord.client import Client, status_of
from concoord.exception import ConCoordError

REPO = pathlib.Path(__file__).resolve().parents[2]


def concoord_bin():
    path = os.environ.get("CONCOORD_BIN") or str(REPO / "target" / "release" / "concoord")
    if not os.access(path, os.X_OK):
        pytest.fail(
            "no concoord binary at %s: build it with `cargo build --release -p concoord` "
            "or point CONCOORD_BIN at one" % path
        )
    return path


class Replica:
    def __init__(self, args, log_path, cwd=None):
        self.args = list(args)
        self.log_path = log_path
        log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [concoord_bin(), "replica"] + self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=None if cwd is None else str(cwd),
        )
        log.close()
        lines = []
        reader = threading.Thread(target=self._drain, args=(lines,), daemon=True)
        reader.start()
        deadline = time.monotonic() + 20
        while not lines and time.monotonic() < deadline and self.process.poll() is None:
            time.sleep(0.01)
        prefix = "concoord replica listening on "
        if not lines or not lines[0].startswith(prefix):
            self.kill()
            raise RuntimeError(
                "replica %s did not start (first line %r):\n%s"
                % (self.args, lines[:1], self.log_text())
            )
        self.addr = lines[0][len(prefix) :].strip()

    def _drain(self, lines):
        # Read the first line, then keep draining so the child never blocks on
        # a full pipe.
        for raw in self.process.stdout:
            if not lines:
                lines.append(raw.decode(errors="replace"))

    def kill(self):
        """SIGKILL and reap."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def log_text(self):
        try:
            return pathlib.Path(self.log_path).read_text(errors="replace")[-4000:]
        except OSError:
            return ""


class Cluster:
    def __init__(self, tmp_path, object="Counter", token=None, extra=(), ssl_context=None,
                 host="127.0.0.1"):
        self.tmp_path = tmp_path
        self.host = host
        self.object = object
        self.token = token
        # How the test talks to replicas started with --tls-cert (in `extra`).
        self.ssl_context = ssl_context
        self.extra = list(extra)
        self.replicas = []

    def add_replica(self):
        args = ["-a", self.host, "-p", "0", "-o", self.object] + self.extra
        live = self.live()
        if live:
            args += ["-b", ",".join(r.addr for r in live)]
        if self.token is not None:
            args += ["--token", self.token]
        log = self.tmp_path / ("replica-%d.log" % len(self.replicas))
        replica = Replica(args, log)
        self.replicas.append(replica)
        return replica

    def live(self):
        return [r for r in self.replicas if r.process.poll() is None]

    @property
    def boot(self):
        """The live replicas' addresses, as the original's bootstrap string."""
        return ", ".join(r.addr for r in self.live())

    def status(self, replica):
        try:
            return status_of(replica.addr, self.token, timeout=2.0, ssl_context=self.ssl_context)
        except ConCoordError:
            return None

    def leader(self, limit=30.0):
        """The live replica that says it leads (waits up to ``limit`` seconds)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for r in self.live():
                s = self.status(r)
                if s is not None and s["role"] == "leader":
                    return r
            time.sleep(0.05)
        raise AssertionError("no leader within %gs\n%s" % (limit, self.logs()))

    def wait_voters(self, n, limit=30.0):
        """Waits until a leader reports ``n`` voters, all caught up."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            for r in self.live():
                s = self.status(r)
                if s is None or s["role"] != "leader":
                    continue
                voters = [m for m in s["members"] if m["role"] == "voter"]
                if len(voters) == n and all(m["lag"] is not None and m["lag"] < 64 for m in voters):
                    return
            time.sleep(0.05)
        raise AssertionError("no %d caught-up voters within %gs\n%s" % (n, limit, self.logs()))

    def client(self, **options):
        options.setdefault("ssl_context", self.ssl_context)
        return Client(self.boot, token=self.token, **options)

    def logs(self):
        return "\n".join("--- %s\n%s" % (r.addr if hasattr(r, "addr") else r.args, r.log_text()) for r in self.replicas)

    def stop(self):
        for r in self.replicas:
            r.kill()


def start_cluster(tmp_path, n, **kwargs):
    cluster = Cluster(tmp_path, **kwargs)
    try:
        for i in range(n):
            cluster.add_replica()
            cluster.wait_voters(i + 1)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture
def cluster_factory(tmp_path):
    """Starts clusters for one test: ``cluster_factory(n, object=..., token=...)``;
    every process is killed when the test ends."""
    clusters = []

    def start(n=3, **kwargs):
        sub = tmp_path / ("cluster-%d" % len(clusters))
        sub.mkdir()
        cluster = start_cluster(sub, n, **kwargs)
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory):
    """One three-replica cluster for the tests that only call objects; each test
    creates its own named instances, so they do not see each other's state."""
    cluster = start_cluster(tmp_path_factory.mktemp("shared"), 3)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def shared_client(shared_cluster):
    client = shared_cluster.client()
    yield client
    client.close()


_names = iter(range(1_000_000))


@pytest.fixture
def name(request):
    """A fresh instance name for this test."""
    return "%s-%d" % (request.node.name[:40], next(_names))
