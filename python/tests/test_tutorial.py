"""The original ConCoord tutorial, run as its text says: the same commands, files
and calls, with the outputs it shows. Only the ports differ: the tutorial's
14000 and 14001 may be taken on a machine that runs other tests, so each
replica gets a port that was free a moment before (and another one if that
port was taken in between). Every replica runs in the directory the tutorial's
user would be in, with the environment the user has (no PYTHONPATH set: the
replica and ``concoord object`` find ``tencounter.py`` in their current
directory)."""

import socket
import subprocess
import sys

import pytest

from conftest import Cluster, Replica, concoord_bin
from test_proxies import in_thread, wait_parked

TENCOUNTER = '''\
class TenCounter:
    def __init__(self, value=0):
        self.value = value

    def decrement(self):
        self.value -= 10

    def increment(self):
        self.value += 10

    def getvalue(self):
        return self.value

    def __str__(self):
        return "The counter value is %d" % self.value
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tutorial:
    """The tutorial's shell: runs ``concoord replica`` and ``concoord object`` in
    one working directory, and kills every replica at the end."""

    def __init__(self, cwd):
        self.cwd = cwd
        self.cluster = Cluster(cwd)

    def replica(self, *args):
        """``concoord replica -a 127.0.0.1 -p PORT ARGS`` on a free port; the port."""
        for attempt in range(5):
            port = free_port()
            log = self.cwd / ("replica-%d.log" % len(self.cluster.replicas))
            argv = list(args) + ["-a", "127.0.0.1", "-p", str(port)]
            try:
                replica = Replica(argv, log, cwd=self.cwd)
            except RuntimeError as e:
                # Someone took the port between free_port and the bind.
                if "in use" in str(e).lower() and attempt < 4:
                    continue
                raise
            self.cluster.replicas.append(replica)
            self.cluster.wait_voters(len(self.cluster.live()))
            return port
        raise AssertionError("unreachable")

    def object(self, *args):
        done = subprocess.run(
            [concoord_bin(), "object"] + list(args),
            cwd=str(self.cwd),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self):
        self.cluster.stop()


@pytest.fixture
def tutorial(tmp_path, monkeypatch):
    # The object host runs on this interpreter, which has the concoord package
    # (a user's python3 has it from `pip install`).
    monkeypatch.setenv("CONCOORD_PYTHON", sys.executable)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    # Proxies other tests generated (from other directories) must not be reused.
    for module in ("tencounterproxy", "semaphoreproxy"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    shell = Tutorial(tmp_path)
    yield shell
    shell.stop()


def test_the_counter(tutorial):
    # $ concoord replica -o concoord.object.counter.Counter -a 127.0.0.1 -p 14000
    # $ concoord replica -o concoord.object.counter.Counter -a 127.0.0.1 -b 127.0.0.1:14000 -p 14001
    first = tutorial.replica("-o", "concoord.object.counter.Counter")
    second = tutorial.replica(
        "-o", "concoord.object.counter.Counter", "-b", "127.0.0.1:%d" % first
    )

    from concoord.proxy.counter import Counter

    c = Counter("127.0.0.1:%d, 127.0.0.1:%d" % (first, second))
    try:
        c.increment()
        c.increment()
        assert c.getvalue() == 2
        assert str(c) == "The counter value is 2"
        c.__concoordinit__()
        assert c.getvalue() == 0
        c.__concoordinit__(5)
        c.increment()
        assert c.getvalue() == 6
        c.decrement()
        assert c.getvalue() == 5
    finally:
        c.disconnect()


def test_tencounter(tutorial):
    (tutorial.cwd / "tencounter.py").write_text(TENCOUNTER)
    # $ concoord object -o tencounter.TenCounter
    out = tutorial.object("-o", "tencounter.TenCounter")
    assert out == "Client proxy file created with name: %s\n" % (
        tutorial.cwd / "tencounterproxy.py"
    )
    # $ concoord replica -o tencounter.TenCounter -a 127.0.0.1 -p 14000
    # $ concoord replica -o tencounter.TenCounter -a 127.0.0.1 -b 127.0.0.1:14000 -p 14001
    first = tutorial.replica("-o", "tencounter.TenCounter")
    second = tutorial.replica("-o", "tencounter.TenCounter", "-b", "127.0.0.1:%d" % first)

    from tencounterproxy import TenCounter

    t = TenCounter("127.0.0.1:%d, 127.0.0.1:%d" % (first, second))
    try:
        t.increment()
        t.increment()
        assert t.getvalue() == 20
        assert str(t) == "The counter value is 20"
        t.decrement()
        assert t.getvalue() == 10
        t.__concoordinit__(3)
        assert t.getvalue() == 3
    finally:
        t.proxy.disconnect()


def semaphore_tutorial(boot):
    """The tutorial's semaphore session, and a second client that blocks in
    acquire until the first releases."""
    from semaphoreproxy import Semaphore

    s = Semaphore(boot)
    other = Semaphore(boot)
    try:
        assert s.acquire() is True
        assert repr(s) == "<DSemaphore count=0>"
        waiting = in_thread(other.acquire)
        wait_parked(other.proxy._client)
        assert s.release() is None
        assert waiting() is True
        assert repr(s) == "<DSemaphore count=0>"
        assert other.release() is None
        assert repr(s) == "<DSemaphore count=1>"
    finally:
        s.proxy.disconnect()
        other.proxy.disconnect()


def test_the_semaphore(tutorial):
    # $ concoord object -o concoord.object.semaphore.Semaphore -p 1
    out = tutorial.object("-o", "concoord.object.semaphore.Semaphore", "-p", "1")
    assert out.endswith("%s\n" % (tutorial.cwd / "semaphoreproxy.py"))
    # $ concoord replica -o concoord.object.semaphore.Semaphore -a 127.0.0.1 -p 14000
    port = tutorial.replica("-o", "concoord.object.semaphore.Semaphore")
    # A built-in's dotted name selects the Rust built-in, which prints what the
    # original's object printed.
    assert tutorial.cluster.status(tutorial.cluster.replicas[0])["object_type"] == "Semaphore"
    semaphore_tutorial("127.0.0.1:%d" % port)


def test_the_semaphore_module_hosted_in_python(tutorial):
    # The tutorial's concoord/object/semaphore.py is real code: copied under a
    # name that is not a built-in's, a replica hosts it in Python, and the same
    # generated proxy gives the same answers.
    import concoord.object.semaphore

    source = open(concoord.object.semaphore.__file__).read()
    (tutorial.cwd / "mysemaphore.py").write_text(source)
    tutorial.object("-o", "concoord.object.semaphore.Semaphore", "-p", "1")
    port = tutorial.replica("-o", "mysemaphore.Semaphore")
    assert tutorial.cluster.status(tutorial.cluster.replicas[0])["object_type"].startswith(
        "mysemaphore.Semaphore@"
    )
    semaphore_tutorial("127.0.0.1:%d" % port)
