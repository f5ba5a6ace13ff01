"""Fuzzing the gateway over a real websocket: malformed, truncated, oversized, unsigned, wrongly signed, tampered,
replayed, out-of-sequence, stale and misaddressed frames each get the right NAK on the session that sent them;
that session stays healthy (its next valid order is ACKed and answered) and another user's session never notices."""
from __future__ import annotations

import json
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import SystemClock
from protocol.indexmaker_messages import NewIndexOrder, NewIndexOrderReport
from protocol.reason_codes import NakCode
from protocol.session_messages import Ack, Heartbeat, Logon, Nak, TestRequest
from protocol.signature import Signer
from tests.integration.gateway_harness import ServerThread, SyncUser, frame, make_gateway, read

MAX_FRAME = 4096


@pytest.fixture(scope="module")
def gateway():
    with ServerThread(lambda: make_gateway(max_frame_bytes=MAX_FRAME, hard_max_frame_bytes=65536)) as gw:
        yield gw


@pytest.fixture(scope="module")
def users(gateway):
    alice, bob = SyncUser(gateway.url), SyncUser(gateway.url)
    for user in (alice, bob):
        gateway.call(gateway.app.credit, user.user, "dep", "1000000")
        assert isinstance(user.request(Logon(last_server_seq_num=0)).body, Ack)
    alice.accepted: list[str] = []
    counter = iter(range(10**9))
    alice.order = lambda: NewIndexOrder.model_validate(  # a fresh valid order each time
        {"client_order_id": f"F-{next(counter)}", "symbol": "SY100", "side": "1", "amount": "1"})
    yield alice, bob
    alice.close()
    bob.close()


def _order_fields(alice: SyncUser) -> dict:
    return json.loads(alice.frame(alice.order()))


# Each builder returns (frame to send, expected code, expected ref_seq_num or None when unreadable).
Builder = Callable[[SyncUser, SyncUser, st.DataObject], tuple[str | bytes, NakCode, int | None]]


def not_json(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    text = data.draw(st.text(max_size=200).filter(lambda t: not _is_json(t)))
    return text, NakCode.BAD_JSON, 0


def not_an_object(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    value = data.draw(st.one_of(st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=5),
                                st.none(), st.booleans()))
    return json.dumps(value), NakCode.BAD_JSON, 0


def truncated(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    good = alice.frame(alice.order())
    cut = 1 + data.draw(st.integers(0, 10**6)) % (len(good) - 1)  # draws must not depend on the session's state
    return good[:cut], NakCode.BAD_JSON, 0


def binary(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    return alice.frame(alice.order()).encode(), NakCode.BAD_JSON, 0


def oversized(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    raw = _order_fields(alice)
    raw["padding"] = "x" * data.draw(st.integers(MAX_FRAME, 4 * MAX_FRAME))
    return json.dumps(raw), NakCode.TOO_LARGE, 0


def bad_field(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    raw = _order_fields(alice)
    field, value = data.draw(st.sampled_from([
        ("amount", "1e3"), ("amount", 1), ("amount", "-1"), ("side", "bid"), ("symbol", "sy 100"),
        ("client_order_id", ""), ("address", alice.signer.address.lower()), ("chain_id", "8453"),
        ("chain_id", 1), ("unknown_field", "x"), ("standard_header", {"msg_type": "NewIndexOrder"})]))
    raw[field] = value
    return json.dumps(raw), NakCode.BAD_FIELD, (alice.next_seq if field != "standard_header" else 0)


def unknown_type(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    raw = _order_fields(alice)
    raw["standard_header"]["msg_type"] = data.draw(st.sampled_from(["NewOrderSingle", "newindexorder", "ACK", "X"]))
    return json.dumps(raw), NakCode.UNKNOWN_MSG_TYPE, alice.next_seq


def unsigned(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    raw = _order_fields(alice)
    if data.draw(st.booleans()):
        raw.pop("standard_trailer")
    else:
        raw["standard_trailer"] = {"public_key": [], "signature": []}
    return json.dumps(raw), NakCode.BAD_SIGNATURE, alice.next_seq


def wrong_key(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    return (frame(Signer.generate(), alice.order(), alice.next_seq, address=alice.signer.address),
            NakCode.BAD_SIGNATURE, alice.next_seq)


def tampered(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    raw = _order_fields(alice)
    field, value = data.draw(st.sampled_from([("amount", "1000"), ("symbol", "SYAI"), ("client_order_id", "X-1")]))
    raw[field] = value  # after signing: amounts and symbols are covered by the signature now (§10.2)
    return json.dumps(raw), NakCode.BAD_SIGNATURE, alice.next_seq


def replayed(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    pick = data.draw(st.integers(0, 10**6)) % len(alice.accepted)
    return alice.accepted[pick], NakCode.BAD_SEQUENCE, None


def out_of_sequence(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    offset = data.draw(st.integers(1, 1000))
    seq = alice.next_seq + offset if data.draw(st.booleans()) else (alice.next_seq - offset) % alice.next_seq
    return alice.frame(alice.order(), seq), NakCode.BAD_SEQUENCE, seq


def stale(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    skew = data.draw(st.sampled_from([-1, 1])) * data.draw(st.integers(61_000, 10**9))
    return alice.frame(alice.order(), ts_ms=SystemClock().now_ms() + skew), NakCode.STALE_TIMESTAMP, alice.next_seq


def someone_else(alice: SyncUser, bob: SyncUser, data: st.DataObject):
    # Bob's own, correctly signed order, sent on Alice's session: a session speaks for one user only.
    return bob.frame(alice.order()), NakCode.WRONG_USER, bob.next_seq


BUILDERS: list[Builder] = [not_json, not_an_object, truncated, binary, oversized, bad_field, unknown_type, unsigned,
                           wrong_key, tampered, replayed, out_of_sequence, stale, someone_else]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _order_ok(alice: SyncUser) -> None:
    order = alice.order()
    sent = alice.frame(order)
    answer = alice.request(order)
    assert isinstance(answer.body, Ack), answer.body
    alice.accepted.append(sent)
    report = alice.report()
    assert isinstance(report.body, NewIndexOrderReport) and report.body.status == "new"
    assert report.body.client_order_id == order.client_order_id


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(st.sampled_from(BUILDERS), st.data())
def test_every_bad_frame_gets_its_nak_and_harms_nobody(gateway, users, builder: Builder, data) -> None:
    alice, bob = users
    if not alice.accepted:
        _order_ok(alice)
    sent, code, ref = builder(alice, bob, data)
    alice.ws.send(sent)
    nak = alice.recv()
    assert isinstance(nak.body, Nak), nak.body
    assert nak.body.reason_code is code, (builder.__name__, nak.body)
    assert nak.seq_num == 0  # a session frame: not part of the stream, never stored
    if ref is not None:
        assert nak.body.ref_seq_num == ref
    if code is NakCode.BAD_SEQUENCE:
        assert nak.body.expected_seq_num == alice.next_seq
    if code is not NakCode.BAD_JSON and code is not NakCode.TOO_LARGE:
        assert nak.envelope.address in (alice.signer.address, bob.signer.address)
    _order_ok(alice)  # the same session goes on, its sequence untouched by the refusal
    bob.ws.send(frame(None, TestRequest(test_req_id="ping"), 0, address=bob.signer.address))
    pong = bob.recv()  # the other session answers at once: nothing of Alice's reached it
    assert isinstance(pong.body, Heartbeat) and pong.body.test_req_id == "ping"


def test_the_server_counted_the_refusals_and_is_still_serving(gateway, users) -> None:
    alice, bob = users
    stats = gateway.call(gateway.server.inspect)
    assert stats["naks"] > 0 and stats["logged_on"] >= 2
    fresh = SyncUser(gateway.url)
    try:
        assert isinstance(fresh.request(Logon(last_server_seq_num=0)).body, Ack)
    finally:
        fresh.close()


def test_a_frame_beyond_the_hard_limit_closes_only_that_connection(gateway, users) -> None:
    from websockets.exceptions import ConnectionClosed

    victim = SyncUser(gateway.url)
    victim.ws.send("x" * 70_000)  # above hard_max_frame_bytes: websockets cannot even read it
    with pytest.raises(ConnectionClosed):
        victim.ws.recv(timeout=5)
    alice, _ = users
    _order_ok(alice)
    assert read(victim.frame(TestRequest(test_req_id="t"), 0)).msg_type == "TestRequest"  # (frame builder works)
