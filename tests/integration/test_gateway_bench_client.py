"""The bench's lean websocket client (bench/lean_ws.py) against the `websockets` library: its frames are what the
library reads, it reads what the library writes (fragments, pings, closes), and through a real gateway it gets
the same ACKs, NAK codes and reports as the `websockets` client for the same script; the bench's cheap field scan
(`bench.gateway._kind`) agrees with a full parse of every frame the gateway sent."""
from __future__ import annotations

import asyncio
import os

import pytest
import websockets
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import serve
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from bench.gateway import _kind
from bench.lean_ws import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, FrameReader, WsProtocolError,
                           close_frame, connect, mask_frame, text_frame)
from protocol.indexmaker_messages import NewIndexOrder
from protocol.session_messages import Logon
from protocol.signature import Signer
from tests.integration.gateway_harness import WAIT_S, frame, make_gateway, read


def _server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A server frame as the websockets library writes it (unmasked)."""
    return Frame(Opcode(opcode), payload, fin=fin).serialize(mask=False, extensions=[])


def _library_parse(data: bytes, mask: bool) -> list[Frame]:
    """Frames as the websockets library reads them (it checks the mask bit against `mask`)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        gen = Frame.parse(reader.read_exact, mask=mask, max_size=None, extensions=[])
        try:
            next(gen)
            raise AssertionError("incomplete frame")
        except StopIteration as done:
            frames.append(done.value)
    return frames


# --- frames ----------------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=70_000), st.sampled_from([OP_TEXT, OP_BINARY, OP_PING, OP_PONG]))
def test_client_frames_are_masked_and_read_back_by_the_library(payload: bytes, opcode) -> None:  # noqa: ANN001
    if opcode in (OP_PING, OP_PONG):
        payload = payload[:125]
    data = mask_frame(payload, int(opcode))
    assert data[1] & 0x80  # MASK bit set: a server must refuse unmasked client frames (§5.1)
    if len(payload) >= 8:
        assert payload not in data  # the payload is not on the wire in clear
    (parsed,) = _library_parse(data, mask=True)
    assert (int(parsed.opcode), parsed.data, parsed.fin) == (opcode, payload, True)


def test_each_frame_gets_a_fresh_masking_key() -> None:
    keys = {text_frame("same text")[2:6] for _ in range(50)}
    assert len(keys) > 45  # random 4-byte keys: a repeat among 50 is a ~3e-7 event


def test_close_frame_carries_code_and_reason() -> None:
    (parsed,) = _library_parse(close_frame(4001, "bye"), mask=True)
    assert int(parsed.opcode) == OP_CLOSE and Close.parse(parsed.data) == Close(4001, "bye")


messages = st.lists(st.tuples(st.binary(max_size=300), st.integers(1, 4), st.booleans()), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(messages, st.lists(st.integers(1, 97), min_size=1, max_size=20), st.integers(0, 2**32))
def test_reader_joins_fragments_and_splits_any_chunking(msgs, cuts, seed) -> None:  # noqa: ANN001
    """Server frames written by the library (fragmented, with pings between fragments), fed in arbitrary chunks."""
    wire = bytearray()
    expected = []
    for payload, parts, ping_inside in msgs:
        step = max(1, len(payload) // parts)
        pieces = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
        for k, piece in enumerate(pieces):
            opcode = OP_BINARY if k == 0 else OP_CONT
            wire += _server_frame(opcode, piece, fin=k == len(pieces) - 1)
            if ping_inside and k == 0:
                wire += _server_frame(OP_PING, b"p", fin=True)
                expected.append((int(OP_PING), b"p"))
        expected.append((int(OP_BINARY), payload))
        # the ping sent inside a fragmented message is delivered before the message it interrupts
    reader = FrameReader()
    got = []
    data = bytes(wire)
    pos, i = 0, seed % len(cuts)
    while pos < len(data):
        n = cuts[i % len(cuts)]
        got.extend(reader.feed(data[pos:pos + n]))
        pos += n
        i += 1
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert [g for g in got if g[0] == OP_BINARY] == [e for e in expected if e[0] == OP_BINARY]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_reader_reads_every_length_form(size: int) -> None:
    payload = os.urandom(size)
    wire = _server_frame(OP_BINARY, payload)
    assert FrameReader(max_size=1 << 20).feed(wire) == [(OP_BINARY, payload)]


@pytest.mark.parametrize("wire", [
    mask_frame(b"masked by the server"),                                        # §5.1: server frames are unmasked
    bytes((0x80 | 0x40 | OP_TEXT, 1)) + b"x",                                   # RSV1 without an extension
    bytes((0x80 | 0x3, 0)),                                                     # reserved opcode
    bytes((0x80 | OP_CONT, 1)) + b"x",                                          # continuation of nothing
    bytes((OP_PING, 0)),                                                        # fragmented control frame
    bytes((OP_TEXT, 1)) + b"a" + bytes((0x80 | OP_TEXT, 1)) + b"b",             # new message inside a fragmented one
    bytes((0x80 | OP_TEXT, 126, 0, 5)) + b"short",                              # length not in shortest form
])
def test_reader_fails_on_protocol_violations(wire: bytes) -> None:
    with pytest.raises(WsProtocolError):
        FrameReader().feed(wire)


def test_reader_refuses_frames_over_max_size() -> None:
    with pytest.raises(WsProtocolError) as exc:
        FrameReader(max_size=100).feed(_server_frame(OP_TEXT, b"x" * 101))
    assert exc.value.close_code == 1009


async def test_connect_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ValueError):
        await connect("192.0.2.1", 9, "/")


# --- against a websockets server -----------------------------------------------------------------------------------


async def test_ping_fragmented_text_and_close_from_a_websockets_server() -> None:
    pong_seen = asyncio.Event()
    got: list[str] = []

    async def handler(ws) -> None:  # noqa: ANN001
        got.append(await ws.recv())
        waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(waiter, WAIT_S)  # our Pong, with the Ping's payload
        pong_seen.set()
        await ws.send(iter(["frag", "mented ", "é"]))  # one text message in three frames
        await ws.close(4001, "bye")

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        ws = await connect("127.0.0.1", port, "/")
        ws.send(text_frame("hello"))
        assert await ws.recv(WAIT_S) == "fragmented é"
        await asyncio.wait_for(ws.closed, WAIT_S)
    assert got == ["hello"] and pong_seen.is_set()
    assert ws.close_code == 4001 and ws.error is None


async def test_handshake_refused_by_the_server_raises() -> None:
    server, _ = make_gateway()
    await server.start()
    try:
        with pytest.raises(WsProtocolError, match="refused"):
            await connect("127.0.0.1", server.port, "/not-the-endpoint", timeout=WAIT_S)  # 404 from the gateway
    finally:
        await server.stop()


# --- same script, both clients, one gateway ------------------------------------------------------------------------


def _order(cl: str, symbol: str = "SY100", amount: str = "10") -> NewIndexOrder:
    return NewIndexOrder.model_validate({"client_order_id": cl, "symbol": symbol, "side": "1", "amount": amount})


def _script(key: Signer) -> tuple[list[str], int]:
    """Frames of one user and how many server frames they earn: a Logon, two good orders, a replay, a frame whose
    signature is not the address's, an order for an unknown index (ACKed, then rejected), a third good order."""
    other = Signer.generate()
    o2 = frame(key, _order("C-2"), 3)
    frames = [frame(key, Logon(last_server_seq_num=0), 1),               # ACK
              frame(key, _order("C-1"), 2),                              # ACK + NewIndexOrder
              o2,                                                        # ACK + NewIndexOrder
              o2,                                                        # NAK BAD_SEQUENCE (a replay)
              frame(other, _order("C-3"), 4, address=key.address),       # NAK BAD_SIGNATURE
              frame(key, _order("C-4", symbol="SYXX"), 4),               # ACK + NewIndexOrder rejected
              frame(key, _order("C-5"), 5)]                              # ACK + NewIndexOrder
    return frames, 1 + 2 + 2 + 1 + 1 + 2 + 2


def _summary(texts: list[str]) -> list[tuple]:
    """What a client saw, in order, without what differs between users (addresses, ids, times, signatures)."""
    out = []
    for text in texts:
        d = read(text)
        body = d.body
        kind = _kind(text)
        assert kind == (d.msg_type, getattr(body, "ref_seq_num", 0) if d.msg_type in ("ACK", "NAK") else 0)
        if d.msg_type == "ACK":
            out.append(("ACK", body.ref_seq_num))
        elif d.msg_type == "NAK":
            out.append(("NAK", body.ref_seq_num, body.reason_code))
        else:
            out.append((d.msg_type, body.client_order_id, body.status, getattr(body, "reason_code", None)))
    return out


async def test_lean_and_websockets_clients_get_the_same_answers_from_the_gateway() -> None:
    server, app = make_gateway()
    await server.start()
    try:
        results = {}
        for name in ("websockets", "lean"):
            key = Signer.generate()
            from protocol.envelope import UserRef  # noqa: PLC0415

            app.credit(UserRef(8453, key.address), "dep", "100000")
            frames, expected = _script(key)
            received: list[str] = []
            if name == "websockets":
                async with websockets.connect(server.url, compression=None, ping_interval=None) as ws:
                    for f in frames:
                        await ws.send(f)
                    for _ in range(expected):
                        received.append(await asyncio.wait_for(ws.recv(), WAIT_S))
            else:
                ws = await connect("127.0.0.1", server.port, "/ws", timeout=WAIT_S)
                ws.send_many([text_frame(f) for f in frames[:3]])  # several frames in one write
                for f in frames[3:]:
                    ws.send(text_frame(f))
                for _ in range(expected):
                    received.append(await ws.recv(WAIT_S))
                await ws.close()
                assert ws.close_code == 1000
            results[name] = _summary(received)
        await server.flush()
    finally:
        await server.stop()
    assert results["lean"] == results["websockets"]
    # and the answers are the ones the script calls for, in a per-type order the gateway guarantees
    acks = [r for r in results["lean"] if r[0] == "ACK"]
    naks = [r[2] for r in results["lean"] if r[0] == "NAK"]
    reports = [r[1:3] for r in results["lean"] if r[0] == "NewIndexOrder"]
    assert acks == [("ACK", 1), ("ACK", 2), ("ACK", 3), ("ACK", 4), ("ACK", 5)]
    assert sorted(naks) == sorted(["BAD_SEQUENCE", "BAD_SIGNATURE"])
    assert reports == [("C-1", "new"), ("C-2", "new"), ("C-4", "rejected"), ("C-5", "new")]
    assert server.stats["accepted"] == 2 * 5


async def test_the_floor_does_the_signature_work_it_claims() -> None:
    """bench/gateway.py's floor: Logon -> ACK; each order -> ACK + a NewIndexOrder report signed by the floor's key
    over its canonical body (so the floor pays for one recovery and one signature per order, as a gateway does)."""
    import json

    from bench.gateway import Load, _floor_process, _start, _stop
    from protocol.codec import canonical
    from protocol.signature import signer_matches

    server_key = Signer.generate()
    proc, conn, port = await asyncio.to_thread(_start, _floor_process, server_key.private_key_hex)
    try:
        load = Load(1, 3)
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(load.logons[0])
            assert _kind(await asyncio.wait_for(ws.recv(), WAIT_S)) == ("ACK", 1)
            for k, order in enumerate(load.orders[0]):
                await ws.send(order)
                assert _kind(await asyncio.wait_for(ws.recv(), WAIT_S)) == ("ACK", k + 2)
                report = await asyncio.wait_for(ws.recv(), WAIT_S)
                assert _kind(report) == ("NewIndexOrder", 0)
                raw = json.loads(report)
                assert raw["client_order_id"] == json.loads(order)["client_order_id"]
                assert signer_matches(canonical(raw), raw["standard_trailer"]["signature"][0], server_key.address)
    finally:
        await asyncio.to_thread(_stop, proc, conn)
