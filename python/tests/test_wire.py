"""Unit tests of the protocol codec (concoord._wire): the example frames of
docs/protocol.md §8 byte for byte, framing, argument checks and decoding."""

import math

import pytest

from concoord import _wire


def hexframe(text):
    """Bytes from protocol.md's notation: hex pairs, and a5"Hello" for the byte
    a5 followed by the bytes of Hello."""
    out = bytearray()
    i = 0
    text = " ".join(text.split())
    while i < len(text):
        if text[i] == " ":
            i += 1
        elif text[i] == '"':
            end = text.index('"', i + 1)
            out += text[i + 1 : end].encode()
            i = end + 1
        else:
            out.append(int(text[i : i + 2], 16))
            i += 2
    return bytes(out)


def test_hello_matches_the_documented_bytes():
    assert _wire.hello(None) == hexframe('18000000 81 a5"Hello" 82 a7"version" 01 a5"token" c0')
    assert _wire.hello(None, "00000000000000c1") == hexframe(
        '31000000 81 a5"Hello" 83 a7"version" 01 a5"token" c0 a7"cluster" b0"00000000000000c1"'
    )


def test_call_matches_the_documented_bytes():
    expected = hexframe(
        '5c000000 81 a7"Request" 82 a2"id" 02 a7"request" 81 a4"Call" 86 a7"session" 01 '
        'a7"request" 01 a5"acked" 01 a6"object" a7"default" a6"method" a9"increment" a4"args" 90'
    )
    assert _wire.call(2, 1, 1, 1, "default", "increment", _wire.pack_args([])) == expected


def test_documented_replies_decode():
    value = hexframe(
        '2a000000 81 a5"Reply" 84 a2"id" 02 a4"slot" 05 a8"position" 03 a5"reply" 81 a5"Value" c0'
    )
    parked = hexframe(
        '29000000 81 a5"Reply" 84 a2"id" 02 a4"slot" 05 a8"position" 03 a5"reply" a6"Parked"'
    )
    error = hexframe(
        '64000000 81 a5"Reply" 84 a2"id" 03 a4"slot" 06 a8"position" 04 a5"reply" '
        '81 a5"Error" 82 a4"kind" ac"RuntimeError" a7"message" bf"cannot release un-acquired lock"'
    )
    bodies, end = _wire.split_frames(value + parked + error)
    assert end == len(value + parked + error)
    frames = [_wire.decode_server_frame(b) for b in bodies]
    assert frames[0] == _wire.Reply(2, 5, 3, ("Value", None))
    assert frames[1] == _wire.Reply(2, 5, 3, ("Parked", None))
    assert frames[2] == _wire.Reply(
        3, 6, 4, ("Error", ("RuntimeError", "cannot release un-acquired lock"))
    )


def test_every_client_frame_round_trips_through_msgpack():
    packed = _wire.pack_args([1, -2, "x", b"\x00", [1.5, None], {"k": True}])
    frames = {
        "OpenSession": (_wire.open_session(1, 2**63 + 5, 10000), {"nonce": 2**63 + 5, "lease_ms": 10000}),
        "KeepAlive": (_wire.keep_alive(2, 7), {"session": 7}),
        "CloseSession": (_wire.close_session(3, 7), {"session": 7}),
        "Create": (
            _wire.create(4, 7, 9, "hits", "Counter", _wire.pack_args([5])),
            {"session": 7, "request": 9, "name": "hits", "type_name": "Counter", "args": [5]},
        ),
        "Cancel": (_wire.cancel(5, 7, 10, 9), {"session": 7, "request": 10, "target": 9}),
        "Call": (
            _wire.call(6, 7, 11, 10, "o", "m", packed),
            {
                "session": 7,
                "request": 11,
                "acked": 10,
                "object": "o",
                "method": "m",
                "args": [1, -2, "x", b"\x00", [1.5, None], {"k": True}],
            },
        ),
    }
    for id, (name, (frame, fields)) in enumerate(frames.items(), start=1):
        bodies, _ = _wire.split_frames(frame)
        assert _wire.unpack(bodies[0]) == {"Request": {"id": id, "request": {name: fields}}}
    bodies, _ = _wire.split_frames(_wire.status(9) + _wire.hello("s3cret"))
    assert [_wire.unpack(b) for b in bodies] == [
        {"Status": {"id": 9}},
        {"Hello": {"version": 1, "token": "s3cret"}},
    ]


def test_split_frames_keeps_a_partial_frame_for_later():
    one = _wire.status(1)
    two = _wire.status(2)
    stream = one + two
    for cut in range(len(stream) + 1):
        bodies, end = _wire.split_frames(stream[:cut])
        whole = [b for b, limit in ((one, len(one)), (two, len(stream))) if cut >= limit]
        assert len(bodies) == len(whole)
        assert end == sum(len(f) for f in whole)
    bodies, end = _wire.split_frames(bytearray(b"xx" + one), start=2)
    assert (len(bodies), end) == (1, 2 + len(one))


def test_lengths_no_replica_sends_are_frame_errors():
    with pytest.raises(_wire.FrameError, match="0 bytes"):
        _wire.split_frames(b"\x00\x00\x00\x00")
    too_big = (_wire.CLIENT_FRAME_MAX + 1).to_bytes(4, "little")
    with pytest.raises(_wire.FrameError, match="allowed"):
        _wire.split_frames(too_big)
    with pytest.raises(ValueError):
        _wire.frame(b"")


def test_arguments_that_cannot_travel_are_refused_before_sending():
    with pytest.raises(TypeError, match="set"):
        _wire.pack_args([{1, 2}])
    with pytest.raises(TypeError, match="object"):
        _wire.pack_args([{"k": [object()]}])
    with pytest.raises(OverflowError, match="64-bit"):
        _wire.pack_args([2**63])
    with pytest.raises(OverflowError):
        _wire.pack_args([[-(2**63) - 1]])
    assert _wire.unpack(_wire.pack_args([2**63 - 1, -(2**63), math.inf])) == [
        2**63 - 1,
        -(2**63),
        math.inf,
    ]
    nested = []
    for _ in range(_wire.VALUE_DEPTH_MAX + 2):
        nested = [nested]
    with pytest.raises(ValueError, match="deeper"):
        _wire.pack_args([nested])


def test_a_request_larger_than_the_replicas_order_is_refused():
    big = _wire.pack_args(["x" * _wire.REQUEST_BYTES_MAX])
    with pytest.raises(ValueError, match="limit"):
        _wire.call(1, 1, 1, 1, "default", "append", big)


def test_server_frames_decode_and_malformed_ones_are_frame_errors():
    def body(message):
        return _wire.pack(message)

    assert _wire.decode_server_frame(
        body({"Welcome": {"version": 1, "replica": 3, "leader": "127.0.0.1:1", "new": 1}})
    ) == _wire.Welcome(1, 3, "127.0.0.1:1")
    assert _wire.decode_server_frame(body({"Redirect": {"id": 4, "leader": None}})) == _wire.Redirect(4, None)
    assert _wire.decode_server_frame(
        body({"Error": {"id": None, "kind": "BadToken", "message": "no"}})
    ) == _wire.Error(None, "BadToken", "no")
    opened = body({"Reply": {"id": 1, "slot": 2, "position": 3, "reply": {"SessionOpened": {"nonce": 9, "session": 4}}}})
    assert _wire.decode_server_frame(opened).reply == ("SessionOpened", (9, 4))
    unknown = body({"Reply": {"id": 1, "slot": 2, "position": 3, "reply": "SessionUnknown"}})
    assert _wire.decode_server_frame(unknown).reply == ("SessionUnknown", None)
    status = body({"Status": {"id": 5, "status": {"role": "leader", "members": []}}})
    assert _wire.decode_server_frame(status) == _wire.Status(5, {"role": "leader", "members": []})
    for bad in [
        b"\xc1",
        body([1, 2]),
        body({"Reply": {"id": -1, "slot": 0, "position": 0, "reply": "Parked"}}),
        body({"Reply": {"id": 1, "slot": 0, "position": 0, "reply": "Sideways"}}),
        body({"Error": {"id": 1, "kind": "Meltdown", "message": ""}}),
        body({"Hello": {}}),
    ]:
        with pytest.raises(_wire.FrameError):
            _wire.decode_server_frame(bad)


def test_maps_with_list_keys_decode_with_tuple_keys():
    # A Rust Value::Map may have any key; Python needs hashable ones.
    raw = b"\x81\x92\x01\x02\xa1x"  # {[1, 2]: "x"}
    assert _wire.unpack(raw) == {(1, 2): "x"}


def test_envelope_integers_encode_exactly_as_msgpack_does():
    import random

    rng = random.Random(7)
    edges = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
    for value in edges + [rng.getrandbits(rng.choice([7, 8, 16, 32, 64])) for _ in range(2000)]:
        assert _wire._uint(value) == _wire.pack(value), value


def test_names_that_are_not_strings_are_refused_before_sending():
    # A replica could not decode the frame at all, nor say which request it was.
    args = _wire.pack_args([])
    with pytest.raises(TypeError, match="method must be a str"):
        _wire.call(1, 1, 1, 1, "default", None, args)
    with pytest.raises(TypeError, match="type_name must be a str"):
        _wire.create(1, 1, 1, "x", None, args)


def test_every_error_kind_of_the_protocol_decodes():
    for kind in ["BadFrame", "FrameTooLarge", "BadVersion", "BadToken", "NoHello",
                 "RequestTooLarge", "Busy", "NotReady", "OtherCluster"]:
        body = _wire.pack({"Error": {"id": None, "kind": kind, "message": "m"}})
        assert _wire.decode_server_frame(body) == _wire.Error(None, kind, "m")
