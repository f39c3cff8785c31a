"""The object host: runs one instance of a user's Python class for a replica.

``concoord replica -o module.Class`` starts ``python3 -m concoord.host
module.Class`` (with ``PYTHONHASHSEED=0``) and applies the log's commands to the
instance through this module, in log order, over the child's stdin and stdout:
each message is a little-endian u32 length and a MessagePack array (docs/python.md
§6); the calls of one log slot usually come together in one ``batch`` message
and are answered together. This module is also what hosted classes import:

- ``readonly``: marks a method that only reads, served after a read barrier
  without a log write (``concoord.readonly`` is the same decorator);
- ``Command``: the ``_concoord_command`` argument a method receives when it
  declares that parameter: who calls (``client``, the caller's session) and the
  call's ``position`` in the log (a fencing token) and ``timestamp``;
- ``wake(command, value)`` / ``wake_error(command, exception)``: answers a call
  that an earlier ``raise BlockingReturn()`` parked;
- hooks a class (or any object inside it) may define:
  ``_concoord_session_closed(self, client)`` releases what an ended session held,
  ``_concoord_cancel(self, command)`` forgets a parked call whose caller gave up
  and returns True.

What it deliberately is not: a sandbox. The class runs with the replica's rights;
determinism (no clock, randomness, IO or threads in methods) is its author's
contract.
"""

import hashlib
import inspect
import os
import pickle
import struct
import sys
import traceback

import msgpack

from .. import _wire, readonly
from ..exception import BlockingReturn, UnblockingReturn

HOST_PROTOCOL_VERSION = 2
HOST_FRAME_MAX = 256 * 1024 * 1024
# Special methods a client may call; other names starting with "_" are private.
CALLABLE_DUNDERS = frozenset(
    ["__str__", "__repr__", "__len__", "__contains__", "__getitem__", "__setitem__", "__delitem__"]
)
REINIT = frozenset(["__init__", "__concoordinit__"])
# How deep the search for `_concoord_session_closed` / `_concoord_cancel` hooks goes.
WALK_DEPTH_MAX = 64

__all__ = ["readonly", "Command", "wake", "wake_error", "BlockingReturn", "UnblockingReturn"]




class Command:
    """The ``_concoord_command`` argument: one call, as the object sees it.

    ``client`` identifies the caller's session (the owner of what it acquires);
    ``request`` is the call's number in that session; ``position`` is the call's
    position in the log (the same on every replica, strictly increasing: a fencing
    token); ``timestamp`` is the leader's clock in microseconds when it ordered the
    call (use it instead of reading a clock). Equal and hashable by
    ``(client, request)``, and picklable, so a method can keep it (to park the call)
    in its state."""

    __slots__ = ("client", "request", "position", "timestamp")

    def __init__(self, client, request, position=0, timestamp=0):
        self.client = client
        self.request = request
        self.position = position
        self.timestamp = timestamp

    def __eq__(self, other):
        return (
            isinstance(other, Command)
            and self.client == other.client
            and self.request == other.request
        )

    def __hash__(self):
        return hash((self.client, self.request))

    def __repr__(self):
        return "<Command client=%d request=%d>" % (self.client, self.request)

    def __getstate__(self):
        return (self.client, self.request, self.position, self.timestamp)

    def __setstate__(self, state):
        self.client, self.request, self.position, self.timestamp = state


class _Runtime:
    """What the current call may do: whether it may wake calls, and the wake-ups it
    made. One per host process."""

    def __init__(self):
        self.wakes = None  # a list while a command runs, None otherwise
        # Calls parked in the object, by (session, request): replicated state,
        # pickled with the object.
        self.parked = {}


_runtime = _Runtime()


def wake(command, value=None):
    """Answers the parked call ``command`` with ``value`` (which must be a value
    the protocol carries). A call that is not parked is ignored."""
    _add_wake(command, [True, value])


def wake_error(command, exception):
    """Answers the parked call ``command`` by raising ``exception`` (its type name
    and message travel) in its caller."""
    _add_wake(command, [False, type(exception).__name__, str(exception)])


def _add_wake(command, result):
    if _runtime.wakes is None:
        raise RuntimeError("only a command (not a read-only method) can wake parked calls")
    if not isinstance(command, Command):
        raise TypeError("wake() takes the _concoord_command of a parked call")
    key = (command.client, command.request)
    if _runtime.parked.pop(key, None) is None:
        return
    _runtime.wakes.append([command.client, command.request] + result)


class Fatal(Exception):
    """Something the replica must stop for (it cannot answer deterministically)."""


def _digest(cls):
    """A hash of the class's module source, its name and this protocol: replicas
    refuse to join one whose class differs."""
    h = hashlib.sha256()
    h.update(("%s.%s\0%d\0" % (cls.__module__, cls.__qualname__, HOST_PROTOCOL_VERSION)).encode())
    module = sys.modules.get(cls.__module__)
    path = None
    try:
        path = inspect.getsourcefile(module) if module is not None else None
    except TypeError:
        path = None
    if path:
        with open(path, "rb") as f:
            h.update(f.read())
    else:
        try:
            h.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):
            pass
    return h.hexdigest()[:16]


def _methods(cls):
    """[[name, readonly, [argument names]]] for every method a client may call."""
    out = []
    for name in sorted(dir(cls)):
        if name.startswith("_") and name not in CALLABLE_DUNDERS:
            continue
        attr = getattr(cls, name, None)
        if not callable(attr) or isinstance(attr, type):
            continue
        if name in CALLABLE_DUNDERS and getattr(object, name, None) is attr:
            continue
        args = []
        try:
            params = list(inspect.signature(attr).parameters.values())[1:]
            args = [
                p.name
                for p in params
                if p.name != "_concoord_command"
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        except (TypeError, ValueError):
            pass
        out.append([name, bool(getattr(attr, "_concoord_readonly", False)), args])
    return out


def _takes_command(method):
    try:
        return "_concoord_command" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _hooks(root, name):
    """Every distinct object reachable from ``root`` (through instance attributes,
    lists, tuples and dict values, in order) whose class defines the hook ``name``,
    in a deterministic order: depth first, attributes in insertion order."""
    found = []
    seen = set()
    stack = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > WALK_DEPTH_MAX:
            continue
        seen.add(id(obj))
        if obj is None or isinstance(obj, (str, bytes, bytearray, int, float, bool, type)):
            continue
        if isinstance(obj, (list, tuple)):
            children = list(obj)
        elif isinstance(obj, dict):
            children = list(obj.values())
        else:
            if callable(getattr(type(obj), name, None)):
                found.append(obj)
            d = getattr(obj, "__dict__", None)
            children = list(d.values()) if isinstance(d, dict) else []
        # Reversed so the first child is visited first.
        for child in reversed(children):
            stack.append((child, depth + 1))
    return found


def _pickles(value):
    try:
        pickle.dumps(value, protocol=4)
        return True
    except Exception:
        return False


def _unpicklable(value, path, depth=0):
    """``(path, type name)`` of the innermost part of ``value`` that cannot be
    pickled (``self.jobs['a'].lock``, ``_thread.lock``), or ``(None, None)`` when
    ``value`` pickles. Followed through instance attributes, lists, tuples, sets and
    dict values; only run once a snapshot has failed."""
    if _pickles(value):
        return None, None
    if depth < WALK_DEPTH_MAX:
        if isinstance(value, (list, tuple)):
            children = [("%s[%d]" % (path, i), v) for i, v in enumerate(value)]
        elif isinstance(value, dict):
            children = [("%s[%r]" % (path, k), v) for k, v in value.items()]
            children += [("a key of %s" % path, k) for k in value]
        elif isinstance(value, (set, frozenset)):
            children = [("a member of %s" % path, v) for v in value]
        else:
            d = getattr(value, "__dict__", None)
            children = [("%s.%s" % (path, k), v) for k, v in d.items()] if isinstance(d, dict) else []
        for child_path, child in children:
            if not _pickles(child):
                return _unpicklable(child, child_path, depth + 1)
    t = type(value)
    return path, "%s.%s" % (t.__module__, t.__qualname__) if t.__module__ != "builtins" else t.__qualname__


class Host:
    """Runs the protocol for one instance of ``cls``."""

    def __init__(self, cls):
        self.current = None
        self.cls = cls
        self.obj = None
        self.takes_command = {}
        self.readonly = {}
        for name, ro, _ in _methods(cls):
            self.readonly[name] = ro

    def hello(self):
        cls = self.cls
        name = "%s.%s" % (cls.__module__, cls.__qualname__)
        return ["hello", HOST_PROTOCOL_VERSION, name, _digest(cls), _methods(cls)]

    # --- messages ---------------------------------------------------------------

    def handle(self, message):
        tag = message[0]
        if tag == "batch":
            # [[session, request, position, timestamp, method, args], ...]: run in
            # order, answered in order, as that many "call" messages would be.
            call = self.call
            return ["batch", [call(Command(s, r, p, t), m, a) for s, r, p, t, m, a in message[1]]]
        if tag == "call":
            _, session, request, position, timestamp, method, args = message
            return self.call(Command(session, request, position, timestamp), method, args)
        if tag == "query":
            _, method, args = message
            return self.query(method, args)
        if tag == "closed":
            _, session, position, timestamp = message
            return ["done", self.run_hooks(lambda: self.session_closed(session))]
        if tag == "cancel":
            _, session, request, position, timestamp = message
            result = []
            wakes = self.run_hooks(lambda: result.append(self.cancel(Command(session, request))))
            return ["cancelled", result[0], wakes]
        if tag == "snapshot":
            return self.snapshot()
        if tag == "restore":
            self.restore(message[1])
            return ["ok"]
        if tag == "construct":
            try:
                self.obj = self.cls()
            except Exception as e:
                return ["raise", type(e).__name__, str(e)]
            _runtime.parked = {}
            return ["ok"]
        raise Fatal("unknown message %r from the replica" % (tag,))

    def run_hooks(self, run):
        _runtime.wakes = []
        self.current = None
        try:
            run()
            return self.checked_wakes()
        finally:
            _runtime.wakes = None

    def checked_wakes(self):
        """The wake-ups to send; one whose value cannot be sent wakes its caller
        with a TypeError instead (the same on every replica: the check is pure)."""
        wakes = _runtime.wakes
        for i, w in enumerate(wakes):
            if w[2]:
                what = "a session end or cancel" if self.current is None else "%s()" % self.current
                problem = self.unsendable(w[3], "the value %s woke the call with" % what)
                if problem is not None:
                    wakes[i] = [w[0], w[1], False, "TypeError", problem]
        return wakes

    @staticmethod
    def unsendable(value, what):
        """Why ``value`` cannot travel to a client, or None. Deterministic, so every
        replica makes the same call answer an error, not just this one."""
        try:
            _wire.check_value(value)
        except (TypeError, OverflowError, ValueError) as e:
            return "%s cannot be sent to a client: %s" % (what, e)
        return None

    def method(self, name):
        if name.startswith("_") and name not in CALLABLE_DUNDERS and name not in REINIT:
            raise AttributeError("%s has no public method %r" % (self.cls.__name__, name))
        attr = getattr(self.obj, name, None)
        if attr is None or not callable(attr):
            raise AttributeError("%s has no method %r" % (self.cls.__name__, name))
        return attr

    def call(self, command, name, args):
        _runtime.wakes = []
        self.current = name
        try:
            try:
                if name in REINIT:
                    result = self.reinit(args)
                else:
                    method = self.method(name)
                    takes = self.takes_command.get(name)
                    if takes is None:
                        takes = self.takes_command[name] = _takes_command(method)
                    if takes:
                        result = method(*args, _concoord_command=command)
                    else:
                        result = method(*args)
            except BlockingReturn:
                _runtime.parked[(command.client, command.request)] = command
                return ["park", self.checked_wakes()]
            except UnblockingReturn as u:
                for parked, value in (u.unblockeddict or {}).items():
                    wake(parked, value)
                result = u.returnvalue
            except MemoryError:
                raise Fatal("%s() ran out of memory" % name)
            except Exception as e:
                return ["raise", type(e).__name__, str(e), self.checked_wakes()]
            problem = self.unsendable(result, "the result of %s()" % name)
            if problem is not None:
                # Like an exception the method raised: its changes stay.
                return ["raise", "TypeError", problem, self.checked_wakes()]
            return ["return", result, self.checked_wakes()]
        finally:
            _runtime.wakes = None

    def reinit(self, args):
        """``__concoordinit__(*args)``: re-initialises the live instance in place;
        calls parked in the old state are answered with RuntimeError."""
        self.obj.__init__(*args)
        for command in list(_runtime.parked.values()):
            wake_error(command, RuntimeError("the object was re-initialised"))
        return None

    def query(self, name, args):
        try:
            method = self.method(name)
            if not getattr(method, "_concoord_readonly", False):
                raise TypeError("%s is not read-only" % name)
            result = method(*args)
        except (BlockingReturn, UnblockingReturn):
            return ["raise", "RuntimeError", "a read-only method cannot block or wake calls", []]
        except MemoryError:
            raise Fatal("%s() ran out of memory" % name)
        except Exception as e:
            return ["raise", type(e).__name__, str(e), []]
        problem = self.unsendable(result, "the result of %s()" % name)
        if problem is not None:
            return ["raise", "TypeError", problem, []]
        return ["return", result, []]

    def session_closed(self, session):
        for obj in _hooks(self.obj, "_concoord_session_closed"):
            obj._concoord_session_closed(session)
        for key in [k for k in _runtime.parked if k[0] == session]:
            del _runtime.parked[key]

    def cancel(self, command):
        key = (command.client, command.request)
        if key not in _runtime.parked:
            return False
        for obj in _hooks(self.obj, "_concoord_cancel"):
            if obj._concoord_cancel(_runtime.parked[key]):
                _runtime.parked.pop(key, None)
                return True
        return False

    def snapshot(self):
        """``["state", pickle]``, or ``["raise", type, reason]`` when the state cannot
        be pickled: the replica then keeps its log instead of compacting it, logs the
        reason and tries again at its next snapshot point, so nothing is lost and
        the host keeps serving."""
        state = (self.obj, _runtime.parked)
        try:
            return ["state", pickle.dumps(state, protocol=4)]
        except Exception as e:
            where, culprit = _unpicklable(self.obj, "self")
            if where is None:
                where, culprit = _unpicklable(_runtime.parked, "the parked calls")
            found = "" if where is None else "%s (a %s) " % (where, culprit)
            return [
                "raise",
                type(e).__name__,
                "cannot pickle the object for a snapshot: %scannot be pickled (%s: %s); a "
                "hosted object's state must be picklable (no locks, files, sockets, "
                "generators, lambdas or threads)" % (found, type(e).__name__, e),
            ]

    def restore(self, data):
        try:
            obj, parked = pickle.loads(data)
        except Exception as e:
            raise Fatal("cannot unpickle the snapshot (%s: %s)" % (type(e).__name__, e))
        if not isinstance(obj, self.cls):
            raise Fatal("the snapshot holds a %s, not a %s" % (type(obj).__name__, self.cls.__name__))
        self.obj = obj
        _runtime.parked = parked


# --- the process ----------------------------------------------------------------


def _read_exact(stream, n):
    """``n`` bytes from the buffered ``stream`` (which reads until it has them), or
    None at its end."""
    data = stream.read(n)
    if len(data) < n:
        return None
    return data


# One packer for the process (the host has one thread): packb would build one per
# message.
_packer = msgpack.Packer(use_bin_type=True)
_HEADER = struct.Struct("<I")


def _send(out, message):
    body = _packer.pack(message)
    out.write(_HEADER.pack(len(body)) + body)
    out.flush()


def _load(spec):
    module_name, _, class_name = spec.rpartition(".")
    if not module_name:
        raise Fatal("%r is not module.Class" % spec)
    import importlib

    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise Fatal("cannot import %s: %s: %s" % (module_name, type(e).__name__, e))
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise Fatal("%s has no class %s" % (module_name, class_name))
    return cls


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    # The protocol owns the real stdin and stdout; whatever the class prints goes to
    # stderr (the replica's log) and it reads nothing.
    proto_in = os.fdopen(os.dup(0), "rb", buffering=64 * 1024)
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        if len(argv) != 1:
            raise Fatal("usage: python3 -m concoord.host module.Class")
        if os.environ.get("PYTHONHASHSEED") != "0":
            raise Fatal(
                "PYTHONHASHSEED must be 0 so that sets and dicts iterate alike on every "
                "replica (the replica starts the host that way)"
            )
        host = Host(_load(argv[0]))
        _send(proto_out, host.hello())
        while True:
            header = _read_exact(proto_in, 4)
            if header is None:
                return 0
            (n,) = _HEADER.unpack(header)
            if n == 0 or n > HOST_FRAME_MAX:
                raise Fatal("the replica sent a frame of %d bytes" % n)
            body = _read_exact(proto_in, n)
            if body is None:
                return 0
            _send(proto_out, host.handle(_wire.unpack(body)))
    except Fatal as e:
        _fatal(proto_out, str(e))
        return 1
    except Exception as e:
        traceback.print_exc()
        _fatal(proto_out, "the object host broke: %s: %s" % (type(e).__name__, e))
        return 1


def _fatal(out, reason):
    print("concoord.host: %s" % reason, file=sys.stderr)
    try:
        _send(out, ["fatal", reason])
    except OSError:
        pass
