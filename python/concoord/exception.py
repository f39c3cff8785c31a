"""The exceptions a ConCoord client raises.

Two families. A replicated method that raised comes back as the Python exception of
the same name (``RuntimeError``, ``ValueError``, ``KeyError``, ``queue.Full``, ...),
built by ``remote_exception``; a name Python does not know becomes ``RemoteError``,
which keeps the name. Everything else, trouble reaching the cluster or with the
session, is a ``ConCoordError`` subclass that says what happened and, above all,
whether the call may have taken effect.

The original's ``BlockingReturn`` and ``UnblockingReturn`` are here too: they are
raised *by hosted objects' methods* (the object side of blocking), never by the
client.
"""

import ast
import builtins
import queue


class ConCoordError(Exception):
    """Base class of every exception the client itself raises."""


class Unavailable(ConCoordError, ConnectionError):
    """No replica answered for ``give_up_after`` seconds (the proxies' ``timeout``),
    or the client was closed. The call was never sent, so it did not run."""


class MaybeExecuted(Unavailable):
    """The call was sent, but no answer came before the cluster became unreachable
    (or its session could no longer be asked): it may or may not have taken effect.
    Read the object's state to find out."""


class SessionExpired(ConCoordError):
    """The session the call ran in ended (its lease ran out or it was closed): the
    call may or may not have run, and what the session held (locks, permits, places
    in barriers) was released. The client opened a new session for later calls."""


class Timeout(ConCoordError, TimeoutError):
    """The call did not finish within its timeout, and the cluster confirmed it took
    the call back: it had no effect and never will (a parked ``acquire`` is not
    granted later). A call that completed before the cancel returns its result
    instead, so a caller never has to guess."""


class BadToken(ConCoordError):
    """The replicas refused the token: pass the one they were started with
    (``concoord replica --token``). The client does not retry."""


class TlsError(ConCoordError):
    """TLS failed: a replica's certificate was not signed by the CA the client
    trusts or does not name the address dialled, the replica refused the client's
    certificate (or its absence), or one side speaks TLS and the other does not.
    A configuration error: the client does not retry."""


class ProtocolError(ConCoordError):
    """A replica broke the client protocol, or a request cannot be sent at all."""


class BadAddress(ConCoordError, ValueError):
    """The bootstrap could not be parsed: give ``"host:port, host:port"`` or a list."""


class RemoteError(ConCoordError):
    """A method raised an exception whose name is not a Python built-in; ``kind`` is
    that name, ``message`` its message."""

    def __init__(self, kind, message):
        super().__init__("%s: %s" % (kind, message))
        self.kind = kind
        self.message = message


# Exception names the replicas use that are not in `builtins`.
_EXTRA = {"Full": queue.Full, "Empty": queue.Empty}


def remote_exception(kind, message):
    """The exception to raise for a method that raised ``kind`` with ``message``.

    Only subclasses of ``Exception`` are built (never ``SystemExit`` or
    ``KeyboardInterrupt``, whatever a replica says)."""
    cls = _EXTRA.get(kind)
    if cls is None:
        cls = getattr(builtins, kind, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(*_arguments(cls, message))
        except Exception:
            # Some built-ins need more constructor arguments (UnicodeDecodeError).
            pass
    return RemoteError(kind, message)


def _arguments(cls, message):
    """The constructor arguments that make ``str(cls(*args)) == message``: the
    message is what ``str()`` of the exception printed on the replica. A
    ``KeyError`` prints the ``repr`` of its key, so its message (``'x'``, ``7``) is
    read back as that key rather than quoted a second time; an empty message is an
    exception without arguments."""
    if message == "":
        return ()
    if issubclass(cls, KeyError):
        try:
            key = ast.literal_eval(message)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return (message,)
        if repr(key) == message:
            return (key,)
    return (message,)


class BlockingReturn(Exception):
    """Raised by a hosted object's method to park its caller: the call waits, in
    replicated state, until a later command wakes it (``concoord.host.wake``, or
    ``UnblockingReturn``). The method must first keep its ``_concoord_command``
    (for example in a queue) to wake it later. Changes the method made stay.
    ``returnvalue`` is accepted for the original's code and ignored."""

    def __init__(self, returnvalue=None):
        super().__init__(returnvalue)
        self.returnvalue = returnvalue


class UnblockingReturn(Exception):
    """Raised by a hosted object's method to return ``returnvalue`` to its caller
    and wake the parked calls in ``unblockeddict`` (``{command: value}``), each
    with its own value (the original woke every one with None). Raising ends the
    method: ``concoord.host.wake`` wakes a call without ending it."""

    def __init__(self, returnvalue=None, unblockeddict=None):
        super().__init__(returnvalue)
        self.returnvalue = returnvalue
        self.unblockeddict = unblockeddict if unblockeddict is not None else {}
