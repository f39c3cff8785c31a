"""The ConCoord client protocol, version 1, as bytes: framing, the encoding of every
client frame and the decoding of every server frame (``docs/protocol.md``).

A frame is a little-endian u32 body length followed by a MessagePack body; structs
are maps keyed by field name, enums are externally tagged. Both clients (the
threaded ``concoord.client`` and the asyncio ``concoord.aio``) use this module and
nothing else to speak the protocol.

What it deliberately is not: it holds no state, opens no socket and reads no clock.
Which frame to send when is ``concoord._core``'s business.
"""

import struct
from collections import namedtuple

import msgpack

PROTOCOL_VERSION = 1
# The largest frame body either side accepts; a replica closes a connection that
# announces more, because it cannot find the next frame boundary.
CLIENT_FRAME_MAX = 1 << 20
# The largest request (as the replicas' log stores it) a replica orders.
REQUEST_BYTES_MAX = 256 * 1024
HEADER_LEN = 4

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
# Nesting deeper than this in one argument is refused before it is sent.
VALUE_DEPTH_MAX = 100


class FrameError(Exception):
    """Bytes from a replica that are not a frame of this protocol."""


# --- Server frames, decoded --------------------------------------------------------

Welcome = namedtuple("Welcome", "version replica leader")
# `reply` is one of: ("Value", value), ("Error", (kind, message)), ("Parked", None),
# ("SessionOpened", (nonce, session)), ("SessionUnknown", None).
Reply = namedtuple("Reply", "id slot position reply")
Redirect = namedtuple("Redirect", "id leader")
Error = namedtuple("Error", "id kind message")
Status = namedtuple("Status", "id status")

# Every ErrorKind a replica sends (protocol.md §5).
ERROR_KINDS = frozenset(
    [
        "BadFrame",
        "FrameTooLarge",
        "BadVersion",
        "BadToken",
        "NoHello",
        "RequestTooLarge",
        "Busy",
        "NotReady",
        "OtherCluster",
        "TlsRequired",
    ]
)


# --- Values ------------------------------------------------------------------------


def check_value(value, depth=0):
    """Raises TypeError or OverflowError, naming the culprit, if ``value`` cannot
    travel as a protocol ``Value`` (nil, bool, i64, f64, str, bytes, list, map)."""
    if depth > VALUE_DEPTH_MAX:
        raise ValueError("an argument nests deeper than %d levels" % VALUE_DEPTH_MAX)
    if value is None or isinstance(value, (bool, float, str, bytes, bytearray)):
        return
    if isinstance(value, int):
        if not I64_MIN <= value <= I64_MAX:
            raise OverflowError(
                "the integer %d is outside the 64-bit signed range the replicas accept" % value
            )
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            check_value(item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            check_value(key, depth + 1)
            check_value(item, depth + 1)
        return
    raise TypeError(
        "cannot send a %s to the replicas: arguments are None, bool, int, float, str, "
        "bytes, list, tuple or dict (convert it first, e.g. a set to a sorted list)"
        % type(value).__name__
    )


def pack(value):
    """MessagePack bytes of one value (str as str, bytes as bin)."""
    return msgpack.packb(value, use_bin_type=True)


def pack_args(args):
    """The MessagePack array of a call's arguments, checked first."""
    args = list(args)
    check_value(args)
    return pack(args)


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((_hashable(k), _hashable(v)) for k, v in value.items())
    return value


def _pairs_to_dict(pairs):
    # A map whose keys are lists or maps (legal in MessagePack, and in a Rust
    # `Value`) becomes a dict with tuple keys instead of failing the whole frame.
    return {_hashable(k): v for k, v in pairs}


def unpack(body):
    """Decodes one MessagePack body into Python values."""
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=False)
    except TypeError:
        # Unhashable map keys: decode again, slower, turning them into tuples.
        return msgpack.unpackb(
            body, raw=False, strict_map_key=False, object_pairs_hook=_pairs_to_dict
        )


# --- Framing -----------------------------------------------------------------------


def frame(body):
    """The whole frame for ``body``: length prefix and body, for one write."""
    if not body or len(body) > CLIENT_FRAME_MAX:
        raise ValueError(
            "a frame body must hold 1 to %d bytes, not %d" % (CLIENT_FRAME_MAX, len(body))
        )
    return len(body).to_bytes(HEADER_LEN, "little") + body


def split_frames(buf, start=0):
    """Splits the whole frames off ``buf`` from ``start``: ``(bodies, end)``, where
    ``end`` is where the first incomplete frame begins. FrameError on a length no
    replica sends (zero, or above CLIENT_FRAME_MAX)."""
    bodies = []
    size = len(buf)
    while size - start >= HEADER_LEN:
        length = int.from_bytes(buf[start : start + HEADER_LEN], "little")
        if length == 0 or length > CLIENT_FRAME_MAX:
            raise FrameError(
                "a frame announced %d bytes (allowed: 1 to %d)" % (length, CLIENT_FRAME_MAX)
            )
        end = start + HEADER_LEN + length
        if end > size:
            break
        bodies.append(bytes(buf[start + HEADER_LEN : end]))
        start = end
    return bodies, start


# --- Client frames -----------------------------------------------------------------

# Precomputed MessagePack fragments of the envelope (field names and tags).
_K = {name: pack(name) for name in [
    "Hello", "version", "token", "Request", "id", "request", "Status",
    "OpenSession", "nonce", "lease_ms", "KeepAlive", "session", "CloseSession",
    "Call", "acked", "object", "method", "args", "Create", "name", "type_name",
    "Cancel", "target", "cluster",
]}


_STRUCT_U8 = struct.Struct(">BB")
_STRUCT_U16 = struct.Struct(">BH")
_STRUCT_U32 = struct.Struct(">BI")
_STRUCT_U64 = struct.Struct(">BQ")


def _uint(value):
    """MessagePack of an unsigned envelope integer (ids, sessions, numbers): the
    same bytes as ``pack``, without building a Packer per field."""
    if value < 0x80:
        return _FIXINT[value]
    if value < 0x100:
        return _STRUCT_U8.pack(0xCC, value)
    if value < 0x10000:
        return _STRUCT_U16.pack(0xCD, value)
    if value < 0x100000000:
        return _STRUCT_U32.pack(0xCE, value)
    return _STRUCT_U64.pack(0xCF, value)


_FIXINT = [bytes([i]) for i in range(0x80)]
# Object and method names recur: keep their encodings (bounded, as names are).
_NAMES = {}
_NAMES_MAX = 4096


def _name(text):
    packed = _NAMES.get(text)
    if packed is None:
        packed = pack(text)
        if len(_NAMES) < _NAMES_MAX:
            _NAMES[text] = packed
    return packed


def _map(n):
    assert 0 < n < 16, "envelope maps are small"
    return bytes([0x80 | n])


_REQUEST_HEAD = _map(1) + _K["Request"] + _map(2) + _K["id"]
_CALL_HEAD = _map(1) + _K["Call"] + _map(6) + _K["session"]


def hello(token, cluster=None):
    """``Hello { version, token }``, framed, with ``cluster`` when the client has
    learned which cluster it talks to (a replica of another refuses it)."""
    body = _map(1) + _K["Hello"] + _map(2 if cluster is None else 3)
    body += _K["version"] + pack(PROTOCOL_VERSION) + _K["token"] + pack(token)
    if cluster is not None:
        body += _K["cluster"] + pack(cluster)
    return frame(body)


def status(id):
    """``Status { id }``, framed."""
    return frame(_map(1) + _K["Status"] + _map(1) + _K["id"] + pack(id))


def _request(id, request):
    return frame(_REQUEST_HEAD + _uint(id) + _K["request"] + request)


def open_session(id, nonce, lease_ms):
    request = _map(1) + _K["OpenSession"] + _map(2) + _K["nonce"] + pack(nonce)
    request += _K["lease_ms"] + pack(lease_ms)
    return _request(id, request)


def keep_alive(id, session):
    return _request(id, _map(1) + _K["KeepAlive"] + _map(1) + _K["session"] + pack(session))


def close_session(id, session):
    return _request(id, _map(1) + _K["CloseSession"] + _map(1) + _K["session"] + pack(session))


def call(id, session, request, acked, object, method, packed_args):
    """``Request { id, Call { ... } }``, framed; ``packed_args`` from ``pack_args``.
    Raises ValueError for a request larger than the replicas order, TypeError for
    names that are not strings (a replica could not even tell which request failed)."""
    _check_names(object=object, method=method)
    body = b"".join(
        (
            _CALL_HEAD,
            _uint(session),
            _K["request"],
            _uint(request),
            _K["acked"],
            _uint(acked),
            _K["object"],
            _name(object),
            _K["method"],
            _name(method),
            _K["args"],
            packed_args,
        )
    )
    _check_size(body)
    return _request(id, body)


def create(id, session, request, name, type_name, packed_args):
    _check_names(name=name, type_name=type_name)
    body = _map(1) + _K["Create"] + _map(5)
    body += _K["session"] + pack(session) + _K["request"] + pack(request)
    body += _K["name"] + pack(name) + _K["type_name"] + pack(type_name)
    body += _K["args"] + packed_args
    _check_size(body)
    return _request(id, body)


def cancel(id, session, request, target):
    body = _map(1) + _K["Cancel"] + _map(3)
    body += _K["session"] + pack(session) + _K["request"] + pack(request)
    body += _K["target"] + pack(target)
    return _request(id, body)


def _check_names(**names):
    for what, value in names.items():
        if not isinstance(value, str):
            raise TypeError("the %s must be a str, not %s" % (what, type(value).__name__))


def _check_size(request):
    # The log stores the request more compactly than this (field names dropped),
    # so this refuses a little early rather than letting the replica refuse it.
    if len(request) > REQUEST_BYTES_MAX:
        raise ValueError(
            "the request is %d bytes, more than the replicas' limit of %d: send smaller "
            "arguments" % (len(request), REQUEST_BYTES_MAX)
        )


# --- Server frames -----------------------------------------------------------------


def _u64(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FrameError("%s is not an unsigned integer: %r" % (what, value))
    return value


def _opt_str(value, what):
    if value is not None and not isinstance(value, str):
        raise FrameError("%s is neither a string nor nil: %r" % (what, value))
    return value


def _fields(value, what):
    if not isinstance(value, dict):
        raise FrameError("%s is not a map: %r" % (what, value))
    return value


def _decode_reply(reply):
    if reply == "Parked" or reply == "SessionUnknown":
        return (reply, None)
    if isinstance(reply, dict) and len(reply) == 1:
        ((tag, body),) = reply.items()
        if tag == "Value":
            return ("Value", body)
        if tag == "Error":
            body = _fields(body, "Error")
            kind, message = body.get("kind"), body.get("message")
            if not isinstance(kind, str) or not isinstance(message, str):
                raise FrameError("an Error reply lacks its kind or message: %r" % (body,))
            return ("Error", (kind, message))
        if tag == "SessionOpened":
            body = _fields(body, "SessionOpened")
            nonce = _u64(body.get("nonce"), "SessionOpened.nonce")
            return ("SessionOpened", (nonce, _u64(body.get("session"), "SessionOpened.session")))
    raise FrameError("unknown reply %r" % (reply,))


def decode_server_frame(body):
    """One server frame from its body: Welcome, Reply, Redirect, Error or Status.
    FrameError when it is not a frame of this protocol version."""
    try:
        message = unpack(body)
    except Exception as e:  # msgpack raises several types on garbage
        raise FrameError("undecodable MessagePack: %s" % e) from None
    if not isinstance(message, dict) or len(message) != 1:
        raise FrameError("a server frame is a one-entry map, not %r" % (message,))
    ((tag, f),) = message.items()
    f = _fields(f, tag)
    if tag == "Reply":
        return Reply(
            _u64(f.get("id"), "Reply.id"),
            _u64(f.get("slot"), "Reply.slot"),
            _u64(f.get("position"), "Reply.position"),
            _decode_reply(f.get("reply")),
        )
    if tag == "Redirect":
        return Redirect(_u64(f.get("id"), "Redirect.id"), _opt_str(f.get("leader"), "leader"))
    if tag == "Error":
        id = f.get("id")
        kind = f.get("kind")
        if kind not in ERROR_KINDS:
            raise FrameError("unknown error kind %r" % (kind,))
        message = f.get("message")
        if not isinstance(message, str):
            raise FrameError("an Error frame lacks its message")
        return Error(None if id is None else _u64(id, "Error.id"), kind, message)
    if tag == "Welcome":
        return Welcome(
            _u64(f.get("version"), "Welcome.version"),
            _u64(f.get("replica"), "Welcome.replica"),
            _opt_str(f.get("leader"), "Welcome.leader"),
        )
    if tag == "Status":
        return Status(_u64(f.get("id"), "Status.id"), _fields(f.get("status"), "Status.status"))
    raise FrameError("unknown server frame %r" % (tag,))
