"""Golden tests of the proxy generator (``concoord object``): the proxy module
written for ``golden/ledger.py`` with every ``-p`` (0, 1, 2, 3) and a token, and
what ``-s`` prints for ``golden/unsafe.py``, compared with the files in
``golden/``. A change to the generator shows up as a diff here; when it is meant,
rewrite the files with ``CONCOORD_UPDATE_GOLDEN=1`` and read the diff.

The generated modules are also imported and their methods checked against a
recording runtime, so a golden file that is wrong Python cannot pass."""

import asyncio
import inspect
import os
import pathlib
import subprocess
import sys

import pytest

from concoord import proxygen

GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("CONCOORD_UPDATE_GOLDEN") == "1"


def check_golden(name, text):
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert path.exists(), "%s is missing: run with CONCOORD_UPDATE_GOLDEN=1" % path
    assert text == path.read_text(), "%s differs from what the generator writes now" % name


def generated(proxytype):
    source = (GOLDEN / "ledger.py").read_text()
    return proxygen.generate(source, str(GOLDEN / "ledger.py"), "Ledger", "s3cret", proxytype)


@pytest.mark.parametrize("proxytype", [0, 1, 2, 3])
def test_the_proxy_module_for_each_proxy_type(proxytype):
    check_golden("ledgerproxy_p%d.py" % proxytype, generated(proxytype))


class Recorder:
    """Stands in for the runtimes: records what a proxy method sends."""

    sent = []

    def __init__(self, *args, **kwargs):
        Recorder.sent.append(("connect", args, kwargs))

    def invoke_command(self, method, *args):
        Recorder.sent.append(("sync", method, args))
        return "result"

    def invoke_command_async(self, method, *args):
        Recorder.sent.append(("queued", method, args))
        return "future"

    async def call(self, instance, method, args):
        Recorder.sent.append(("await", instance, method, list(args)))
        return "result"

    @classmethod
    async def connect(cls, *args, **kwargs):
        return cls(*args, **kwargs)


def load(proxytype, tmp_path):
    path = tmp_path / ("ledgerproxy_p%d.py" % proxytype)
    path.write_text(generated(proxytype))
    namespace = {"__name__": "ledgerproxy"}
    # The runtime import is the first statement after the docstring; run the rest
    # with the recorder in its place.
    code = compile(path.read_text(), str(path), "exec")
    exec(code, namespace)
    namespace["ClientProxy"] = Recorder
    namespace["_ConCoordClient"] = Recorder
    return namespace


@pytest.mark.parametrize("proxytype", [0, 1, 2])
def test_synchronous_and_batching_proxies_forward_positional_arguments(proxytype, tmp_path):
    ns = load(proxytype, tmp_path)
    Ledger = ns["Ledger"]
    assert ns["helper"](1) == 2 and ns["LIMIT"] == 1000 and ns["Account"]("x").balance == 0
    assert Ledger.kind == "ledger"
    assert str(inspect.signature(Ledger.open)) == "(self, owner, deposit=0)"
    assert str(inspect.signature(Ledger.deposit)) == "(self, owner, *amounts)"
    assert str(inspect.signature(Ledger.transfer)) == "(self, source, target, amount=1)"
    assert str(inspect.signature(Ledger.acquire)) == "(self)"
    assert not hasattr(Ledger, "_audit")
    Recorder.sent = []
    ledger = Ledger("127.0.0.1:1")
    ledger.open("ann")
    ledger.deposit("ann", 1, 2)
    ledger.transfer("ann", "bob")
    ledger.acquire()
    ledger.__concoordinit__("side", 5)
    assert ledger.__len__() == "result"
    kind = "queued" if proxytype == 2 else "sync"
    options = {"batch_size": 100, "ssl_context": None} if proxytype == 2 else {"ssl_context": None}
    assert Recorder.sent[0] == ("connect", ("127.0.0.1:1", 60, False, "s3cret"), options)
    assert Recorder.sent[1:6] == [
        (kind, "open", ("ann", 0)),
        (kind, "deposit", ("ann", 1, 2)),
        (kind, "transfer", ("ann", "bob", 1)),
        (kind, "acquire", ()),
        (kind, "__concoordinit__", ("side", 5)),
    ]
    # Dunders return their value at once in every proxy type.
    assert Recorder.sent[6] == ("sync", "__len__", ())
    assert ledger.__str__() == "result" and Recorder.sent[-1] == ("sync", "__str__", ())


def test_the_asyncio_proxy_awaits_every_method(tmp_path):
    ns = load(3, tmp_path)
    Ledger = ns["Ledger"]
    assert inspect.iscoroutinefunction(Ledger.open)
    # str(), len() and repr() cannot await: the asyncio proxy leaves the dunders out.
    assert "__len__" not in Ledger.__dict__ and "__str__" not in Ledger.__dict__

    async def main():
        Recorder.sent = []
        ledger = await Ledger.connect("127.0.0.1:1")
        await ledger.open("ann")
        await ledger.deposit("ann", 1, 2)
        await ledger.__concoordinit__()
        return Recorder.sent

    sent = asyncio.run(main())
    assert sent == [
        ("connect", ("127.0.0.1:1",), {"token": "s3cret", "give_up_after": 60, "ssl_context": None}),
        ("await", "default", "open", ["ann", 0]),
        ("await", "default", "deposit", ["ann", 1, 2]),
        ("await", "default", "__concoordinit__", []),
    ]


def test_the_safety_check_output(tmp_path):
    (tmp_path / "unsafe.py").write_text((GOLDEN / "unsafe.py").read_text())
    done = subprocess.run(
        [sys.executable, "-m", "concoord.proxygen", "-o", "unsafe.Unsafe", "-s"],
        cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    check_golden("unsafe_s.txt", done.stderr.replace(str(tmp_path), "<dir>"))
    assert not (tmp_path / "unsafeproxy.py").exists()


def test_a_safe_module_passes_the_check(tmp_path):
    (tmp_path / "ledger.py").write_text((GOLDEN / "ledger.py").read_text())
    done = subprocess.run(
        [sys.executable, "-m", "concoord.proxygen", "-o", "ledger.Ledger", "-s", "-p", "2", "-t", "s3cret"],
        cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=str(tmp_path)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ledgerproxy.py").read_text() == generated(2).replace(
        str(GOLDEN / "ledger.py"), str(tmp_path / "ledger.py")
    )
