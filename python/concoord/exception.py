"""The exceptions a ConCoord client raises.

Two families. A replicated method that raised comes back as the Python exception of
the same name (``RuntimeError``, ``ValueError``, ``KeyError``, ``queue.Full``, ...),
built by ``remote_exception``; a name Python does not know becomes ``RemoteError``,
which keeps the name. Everything else, trouble reaching the cluster or with the
session, is a ``ConCoordError`` subclass that says what happened and, above all,
whether the call may have taken effect.

What it deliberately is not: the original's ``BlockingReturn``/``UnblockingReturn``
(the object side of blocking, for hosted Python objects) are not here yet.
"""

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
            return cls(message)
        except Exception:
            # Some built-ins need more constructor arguments (UnicodeDecodeError).
            pass
    return RemoteError(kind, message)
