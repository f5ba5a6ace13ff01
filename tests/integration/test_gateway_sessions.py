"""Sessions over real websockets on 127.0.0.1: resume after a drop or a server restart delivers every missed report
exactly once and in order, sequence numbers survive both, users are isolated, limits throttle with NAKs, heartbeats
and timeouts work, and a slow store pushes back instead of losing anything."""
from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Sequence

import pytest
import websockets

from core.clock import ManualClock
from protocol.client import GatewayClient, NakError
from protocol.indexmaker_messages import (AccountToCustody, CancelIndexOrderReport, IndexOrderFill, NewIndexOrder,
                                          NewQuoteRequest)
from protocol.reason_codes import NakCode, ReasonCode
from protocol.redis_report_store import RedisReportStore
from protocol.report_store import MemoryReportStore, StreamWrite
from protocol.session_messages import Ack, Heartbeat, Logon, Logout, Nak, TestRequest
from protocol.signature import Signer
from tests.integration.gateway_harness import WAIT_S, frame, make_gateway, read

async def started(**kwargs):  # noqa: ANN003, ANN201
    server, app = make_gateway(**kwargs)
    await server.start()
    return server, app


async def client_for(server, app, key: Signer | None = None, credit: str = "100000", **kwargs) -> GatewayClient:  # noqa: ANN001
    client = GatewayClient(server.url, key or Signer.generate(), server_address=server.signer.address,
                           ack_timeout_s=WAIT_S, **kwargs)
    app.credit(client.user, "dep", credit)
    return await client.connect()


def order(cl: str, amount: str = "10") -> NewIndexOrder:
    return NewIndexOrder.model_validate({"client_order_id": cl, "symbol": "SY100", "side": "1", "amount": amount})


async def drain_reports(client: GatewayClient, n: int) -> list:
    return [await client.next_report(WAIT_S) for _ in range(n)]


# --- resume --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_reports_missed_while_disconnected_arrive_once_and_in_order(seed: int) -> None:
    rng = random.Random(seed)
    server, app = await started()
    try:
        client = await client_for(server, app, reconnect=False)
        await client.new_order("C-1", "SY100", "1000")
        assert (await client.next_report(WAIT_S)).body.status == "new"
        app.engage(client.user, "C-1", "1000")
        assert (await client.next_report(WAIT_S)).body.filled_quantity == 0  # engaged, nothing filled yet
        expected: list[Decimal] = []
        seen: list[tuple[int, Decimal]] = []
        units = Decimal(0)
        for round_ in range(6):
            for _ in range(rng.randint(0, 4)):  # fills while connected
                units += Decimal("0.001")
                app.fill(client.user, "C-1", "0.001", "1")
                expected.append(units)
            if rng.random() < 0.5:  # read some of them, not necessarily all, before the drop
                for _ in range(rng.randint(0, len(expected) - len(seen))):
                    d = await client.next_report(WAIT_S)
                    seen.append((d.seq_num, d.body.filled_quantity))
            await client.drop_connection()
            await server.wait_for(lambda: server.inspect()["sessions"] == 0, WAIT_S)
            for _ in range(rng.randint(0, 4)):  # fills while nobody listens
                units += Decimal("0.001")
                app.fill(client.user, "C-1", "0.001", "1")
                expected.append(units)
            await server.flush()
            await client.connect()  # Logon(last_server_seq_num = last processed)
        while len(seen) < len(expected):
            d = await client.next_report(WAIT_S)
            seen.append((d.seq_num, d.body.filled_quantity))
        assert [q for _, q in seen] == expected  # every fill, once, in order
        assert [s for s, _ in seen] == sorted({s for s, _ in seen})  # strictly increasing stream numbers
        assert client._reports.empty()
        await client.close()
    finally:
        await server.stop()


async def test_a_request_in_flight_when_the_connection_drops_is_taken_exactly_once() -> None:
    server, app = await started()
    try:
        client = await client_for(server, app)  # reconnects by itself
        first = asyncio.create_task(client.new_order("C-1", "SY100", "10"))
        await client.drop_connection()  # the order may or may not have reached the server; its ACK did not come
        await asyncio.wait_for(first, WAIT_S)
        await client.new_order("C-2", "SY100", "10")
        reports = await drain_reports(client, 2)
        assert [r.body.client_order_id for r in reports] == ["C-1", "C-2"]
        assert [r.body.status for r in reports] == ["new", "new"]  # not a DUPLICATE rejection: sent once
        assert [o.cl_ord_id for o in app.book(client.user)] == ["C-1", "C-2"]
        await client.close()
    finally:
        await server.stop()


async def test_streams_and_sequences_survive_a_server_restart(redis_server, redis_client) -> None:
    key, server_key = Signer.generate(), Signer.generate()
    store = RedisReportStore.from_url(redis_server.url)
    server, app = await started(store=store, server_key=server_key)
    client = await client_for(server, app, key, reconnect=False)
    await client.new_order("C-1", "SY100", "100")
    await client.next_report(WAIT_S)
    old_frame = client.sign(order("C-9"), 2)  # seq 2 is the order just taken
    await client.drop_connection()
    app.engage(client.user, "C-1", "50")
    app.fill(client.user, "C-1", "0.5", "40")
    await server.flush()
    last_seen, next_seq = client.last_seen, client.next_seq
    await server.stop()
    await store.close()

    store = RedisReportStore.from_url(redis_server.url)  # a new process would see exactly this
    server, app = await started(store=store, server_key=server_key)
    try:
        again = GatewayClient(server.url, key, server_address=server_key.address, last_seen=last_seen,
                              next_seq=next_seq, reconnect=False, ack_timeout_s=WAIT_S)
        await again.connect()
        missed = await drain_reports(again, 2)
        assert [(type(m.body), m.body.status) for m in missed] == [(IndexOrderFill, "in progress")] * 2
        assert missed[1].body.filled_quantity == Decimal("0.5")
        assert missed[0].seq_num == last_seen + 1
        await again.send_raw(old_frame)  # a replay of a request taken before the restart
        nak = await asyncio.wait_for(again.naks.get(), WAIT_S)
        assert nak.reason_code is NakCode.BAD_SEQUENCE and nak.expected_seq_num == again.next_seq
        app.credit(again.user, "dep", "100")
        await again.new_order("C-2", "SY100", "10")
        report = await again.next_report(WAIT_S)
        assert report.body.client_order_id == "C-2" and report.seq_num > missed[1].seq_num
        await again.close()
    finally:
        await server.stop()
        await store.close()


async def test_a_client_that_lost_count_is_told_what_comes_next() -> None:
    server, app = await started()
    try:
        key = Signer.generate()
        first = await client_for(server, app, key)
        for i in range(3):
            await first.new_order(f"C-{i}", "SY100", "1")
        await first.logout()
        forgetful = GatewayClient(server.url, key, ack_timeout_s=WAIT_S)  # next_seq 1 again
        await forgetful.connect()
        assert forgetful.next_seq == first.next_seq + 1  # adopted from the NAK's expected_seq_num
        await forgetful.new_order("C-9", "SY100", "1")
        assert (await forgetful.next_report(WAIT_S)).body.client_order_id == "C-9"  # live only: no history
        await forgetful.close()
    finally:
        await server.stop()


async def test_logon_cannot_resume_from_beyond_what_was_sent() -> None:
    server, app = await started()
    try:
        client = GatewayClient(server.url, Signer.generate(), last_seen=5, ack_timeout_s=WAIT_S, reconnect=False)
        with pytest.raises(NakError) as info:
            await client.connect()
        assert info.value.code is NakCode.BAD_RESUME
    finally:
        await server.stop()


async def test_a_logon_resuming_from_before_the_kept_messages_is_told_where_they_start() -> None:
    server, app = await started(store=MemoryReportStore(keep=3))  # the gateway actor passes [gateway] report_retention
    try:
        key = Signer.generate()
        client = await client_for(server, app, key)
        for i in range(4):  # each order: its ACK and its report, 8 messages after the Logon's ACK
            await client.new_order(f"C-{i}", "SY100", "1")
            await client.next_report(WAIT_S)
        await server.flush()
        last = client.last_seen
        await client.logout()
        old = GatewayClient(server.url, key, last_seen=1, next_seq=client.next_seq + 1, ack_timeout_s=WAIT_S,
                            reconnect=False)
        with pytest.raises(NakError) as info:
            await old.connect()
        assert info.value.code is NakCode.RESUME_TOO_OLD
        first_kept = await server.store.first_outbound(client.user.key)
        last_stored = (await server.store.last_seqs(client.user.key))[1]
        assert f"seq {first_kept}" in str(info.value) and first_kept == last_stored - 2  # the newest 3 are kept
        again = GatewayClient(server.url, key, last_seen=first_kept - 1, next_seq=client.next_seq + 2,
                              ack_timeout_s=WAIT_S, reconnect=False)
        await again.connect()  # from the oldest kept message on: accepted, and what is kept is resent
        assert again.last_seen >= last
        await again.close()
    finally:
        await server.stop()


# --- isolation ----------------------------------------------------------------------------------------------------


async def test_one_user_cannot_cancel_or_speak_for_another() -> None:
    server, app = await started()
    try:
        alice = await client_for(server, app)
        bob = await client_for(server, app)
        await alice.new_order("SAME-ID", "SY100", "100")
        assert (await alice.next_report(WAIT_S)).body.status == "new"
        await bob.cancel_order("SAME-ID", "SY100")
        reply = await bob.next_report(WAIT_S)
        assert isinstance(reply.body, CancelIndexOrderReport)
        assert (reply.body.status, reply.body.reason_code) == ("rejected", ReasonCode.UNKNOWN_ORDER)
        assert app.book(alice.user).get("SAME-ID").remaining == Decimal("100")
        # Bob signs a message in Alice's name, on his own session and as a fresh logon:
        forged = frame(bob.signer, order("B-1"), bob.next_seq, address=alice.address)
        await bob.send_raw(forged)
        assert (await asyncio.wait_for(bob.naks.get(), WAIT_S)).reason_code is NakCode.WRONG_USER
        async with websockets.connect(server.url) as ws:
            await ws.send(frame(bob.signer, Logon(), 1, address=alice.address))
            nak = read(await asyncio.wait_for(ws.recv(), WAIT_S))
            assert nak.body.reason_code is NakCode.BAD_SIGNATURE
        # Alice's stream holds nothing of Bob's attempts.
        await alice.cancel_order("SAME-ID", "SY100", "1")
        assert (await alice.next_report(WAIT_S)).body.cancelled_amount == Decimal("1")
        await alice.close()
        await bob.close()
    finally:
        await server.stop()


async def test_every_session_of_a_user_gets_the_same_stream() -> None:
    server, app = await started()
    try:
        key = Signer.generate()
        one = await client_for(server, app, key)
        two = GatewayClient(server.url, key, ack_timeout_s=WAIT_S)
        await two.connect()
        one.next_seq = two.next_seq  # the sequence belongs to the user: the second session moved it on
        await one.new_order("C-1", "SY100", "5")
        a, b = await one.next_report(WAIT_S), await two.next_report(WAIT_S)
        assert a.raw == b.raw  # same message, same number, same signature
        await one.close()
        await two.close()
    finally:
        await server.stop()


async def test_sessions_per_address_are_limited() -> None:
    server, app = await started(max_sessions_per_address=2)
    try:
        key = Signer.generate()
        first = await client_for(server, app, key)
        second = GatewayClient(server.url, key, ack_timeout_s=WAIT_S)
        await second.connect()
        third = GatewayClient(server.url, key, ack_timeout_s=WAIT_S, reconnect=False)
        third.next_seq = second.next_seq
        with pytest.raises(NakError) as info:
            await third.connect()
        assert info.value.code is NakCode.TOO_MANY_SESSIONS
        await first.close()
        await server.wait_for(lambda: server.inspect()["logged_on"] == 1, WAIT_S)
        await third.connect()
        await second.close()
        await third.close()
    finally:
        await server.stop()


# --- limits -------------------------------------------------------------------------------------------------------


async def test_a_flood_is_throttled_with_naks_and_the_session_recovers() -> None:
    clock = ManualClock(1_800_000_000_000)
    server, app = await started(clock=clock, session_rate_per_s=20, session_burst=10)
    try:
        flooder = await client_for(server, app, clock=clock)
        calm = await client_for(server, app, clock=clock)
        start = flooder.next_seq
        frames = [flooder.sign(order(f"F-{i}", "1"), start + i) for i in range(40)]
        for f in frames:
            await flooder.send_raw(f)
        # the Logon took one token of the burst; the rest of the burst passes, every other frame is NAKed
        passed = server.config.session_burst - 1
        naks = [await asyncio.wait_for(flooder.naks.get(), WAIT_S) for _ in range(len(frames) - passed)]
        assert {n.reason_code for n in naks} == {NakCode.RATE_LIMITED}
        assert all(n.retry_after_ms == 1000 // server.config.session_rate_per_s for n in naks)
        assert [n.ref_seq_num for n in naks] == list(range(start + passed, start + len(frames)))
        await calm.new_order("CALM-1", "SY100", "1")  # another session does not notice
        assert (await calm.next_report(WAIT_S)).body.client_order_id == "CALM-1"
        clock.advance(1000)  # time refills the bucket; the NAKed frames consumed no sequence number
        flooder.next_seq = start + passed
        await flooder.new_order("F-after", "SY100", "1")
        ids = [(await flooder.next_report(WAIT_S)).body.client_order_id for _ in range(passed + 1)]
        assert ids == [f"F-{i}" for i in range(passed)] + ["F-after"]
        await flooder.close()
        await calm.close()
    finally:
        await server.stop()


async def test_a_garbage_flood_counts_against_the_limit_too() -> None:
    clock = ManualClock(1_800_000_000_000)
    server, app = await started(clock=clock, session_rate_per_s=10, session_burst=5)
    try:
        client = await client_for(server, app, clock=clock)  # the Logon took one token
        for i in range(10):
            await client.send_raw(f"garbage {i}")
        codes = [(await asyncio.wait_for(client.naks.get(), WAIT_S)).reason_code for _ in range(10)]
        assert codes == [NakCode.BAD_JSON] * 4 + [NakCode.RATE_LIMITED] * 6
        clock.advance(1000)
        await client.new_order("C-1", "SY100", "1")  # and the session is as good as new
        await client.close()
    finally:
        await server.stop()


async def test_the_user_limit_weighs_orders_more_than_quotes() -> None:
    clock = ManualClock(1_800_000_000_000)
    server, app = await started(clock=clock, user_weight_per_s=10, user_burst=31)
    try:
        client = await client_for(server, app, clock=clock)  # Logon weighs 1: 30 left
        for i in range(3):
            await client.new_order(f"C-{i}", "SY100", "1")  # 10 each
        with pytest.raises(NakError) as info:
            await client.new_order("C-3", "SY100", "1")
        assert info.value.code is NakCode.RATE_LIMITED and info.value.nak.retry_after_ms == 1000
        client.next_seq -= 1  # the NAKed request took no number
        clock.advance(500)  # 5 units back: a quote (5) fits, an order (10) would not
        await client.request(NewQuoteRequest.model_validate(
            {"client_quote_id": "Q-1", "symbol": "SY100", "side": "1", "amount": "1"}))
        await client.close()
    finally:
        await server.stop()


async def test_oversized_frames_are_naked_and_the_session_goes_on() -> None:
    server, app = await started(max_frame_bytes=1024)
    try:
        client = await client_for(server, app)
        await client.send_raw('{"pad":"' + "x" * 2000 + '"}')
        assert (await asyncio.wait_for(client.naks.get(), WAIT_S)).reason_code is NakCode.TOO_LARGE
        await client.new_order("C-1", "SY100", "1")
        await client.close()
    finally:
        await server.stop()


class BlockedStore(MemoryReportStore):
    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.entered = asyncio.Event()

    async def append(self, writes: Sequence[StreamWrite]) -> None:
        self.entered.set()
        await self.open.wait()
        await super().append(writes)


async def test_a_stalled_store_pushes_back_with_server_busy_and_loses_nothing() -> None:
    store = BlockedStore()
    store.open.set()
    limit = 10
    server, app = await started(store=store, max_pending_writes=limit)
    try:
        client = await client_for(server, app)
        store.open.clear()
        store.entered.clear()
        start = client.next_seq
        await client.send_raw(client.sign(order("C-0", "1"), start))
        await asyncio.wait_for(store.entered.wait(), WAIT_S)  # its write is in flight, stuck
        frames = [client.sign(order(f"C-{i}", "1"), start + i) for i in range(1, 21)]
        for f in frames:
            await client.send_raw(f)
        naks = [await asyncio.wait_for(client.naks.get(), WAIT_S) for _ in range(len(frames) - limit)]
        # `limit` writes queue; the next request is refused, and so the ones after it are out of sequence
        assert (naks[0].reason_code, naks[0].ref_seq_num) == (NakCode.SERVER_BUSY, start + limit + 1)
        assert {(n.reason_code, n.expected_seq_num) for n in naks[1:]} == {(NakCode.BAD_SEQUENCE, start + limit + 1)}
        store.open.set()
        taken = [(await client.next_report(WAIT_S)).body.client_order_id for _ in range(limit + 1)]
        assert taken == [f"C-{i}" for i in range(limit + 1)]
        assert (await store.last_seqs(client.user.key))[0] == start + limit
        await client.close()
    finally:
        store.open.set()
        await server.stop()


# --- session lifecycle ----------------------------------------------------------------------------------------------


async def test_a_silent_client_is_tested_then_dropped_and_an_answering_one_is_kept() -> None:
    server, app = await started(heartbeat_interval_ms=100, idle_timeout_ms=400)
    try:
        key = Signer.generate()
        async with websockets.connect(server.url) as ws:
            await ws.send(frame(key, Logon(), 1))
            assert isinstance(read(await ws.recv()).body, Ack)
            seen = []
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    seen.append(type(read(await asyncio.wait_for(ws.recv(), WAIT_S)).body))
            assert TestRequest in seen
            assert closed.value.rcvd.code == 4000
        async with websockets.connect(server.url) as ws:  # answers every TestRequest
            await ws.send(frame(key, Logon(), 2))
            assert isinstance(read(await ws.recv()).body, Ack)
            answered = 0
            while answered < 6:  # six intervals: longer than the idle timeout
                d = read(await asyncio.wait_for(ws.recv(), WAIT_S))
                if isinstance(d.body, TestRequest):
                    await ws.send(frame(None, Heartbeat(test_req_id=d.body.test_req_id), 0, address=key.address))
                    answered += 1
            await ws.send(frame(key, order("C-1", "1"), 3))
            while True:  # still served: the order is ACKed (heartbeat traffic may come first)
                d = read(await asyncio.wait_for(ws.recv(), WAIT_S))
                if d.seq_num:
                    assert isinstance(d.body, Ack) and d.body.ref_seq_num == 3
                    break
    finally:
        await server.stop()


async def test_a_connection_that_never_logs_on_is_closed() -> None:
    server, app = await started(logon_timeout_ms=100, heartbeat_interval_ms=50, idle_timeout_ms=10_000)
    try:
        async with websockets.connect(server.url) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), WAIT_S)
            assert closed.value.rcvd.code == 4002
    finally:
        await server.stop()


async def test_logout_is_acked_then_the_connection_closes_normally() -> None:
    server, app = await started()
    try:
        key = Signer.generate()
        async with websockets.connect(server.url) as ws:
            await ws.send(frame(key, Logon(), 1))
            await ws.send(frame(key, Logout(), 2))
            acks = [read(await ws.recv()).body for _ in range(2)]
            assert [a.ref_seq_num for a in acks] == [1, 2]
            with pytest.raises(websockets.ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), WAIT_S)
    finally:
        await server.stop()


async def test_comp_ids_are_swapped_in_replies() -> None:
    server, app = await started()
    try:
        key = Signer.generate()
        async with websockets.connect(server.url) as ws:
            await ws.send(frame(key, Logon(), 1, comp_ids=("FE-7", "GW")))
            ack = read(await ws.recv())
            hdr = ack.envelope.standard_header
            assert (hdr.sender_comp_id, hdr.target_comp_id) == ("GW", "FE-7")
    finally:
        await server.stop()


async def test_placeholders_are_unsupported_and_take_no_number() -> None:
    server, app = await started()
    try:
        client = await client_for(server, app)
        with pytest.raises(NakError) as info:
            await client.request(AccountToCustody())
        assert info.value.code is NakCode.UNSUPPORTED
        client.next_seq -= 1
        await client.new_order("C-1", "SY100", "1")
        await client.close()
    finally:
        await server.stop()


@pytest.mark.parametrize("allow", [False, True])
async def test_unsigned_quotes_only_when_configured_and_only_on_a_logged_on_session(allow: bool) -> None:
    server, app = await started(allow_unsigned_quotes=allow)
    try:
        client = await client_for(server, app)
        quote = NewQuoteRequest.model_validate({"client_quote_id": "Q-1", "symbol": "SY100", "side": "1",
                                                "amount": "1"})
        await client.send_raw(frame(None, quote, client.next_seq, address=client.address))
        if allow:
            report = await client.next_report(WAIT_S)  # taken (no price source here: a refusal, but a report)
            assert report.body.reason_code is ReasonCode.MARKET_UNAVAILABLE
        else:
            assert (await asyncio.wait_for(client.naks.get(), WAIT_S)).reason_code is NakCode.BAD_SIGNATURE
        unsigned_order = frame(None, order("C-1"), client.next_seq + (1 if allow else 0), address=client.address)
        await client.send_raw(unsigned_order)
        assert (await asyncio.wait_for(client.naks.get(), WAIT_S)).reason_code is NakCode.BAD_SIGNATURE
        async with websockets.connect(server.url) as ws:  # never before a Logon
            await ws.send(frame(None, quote, 1, address=Signer.generate().address))
            assert read(await ws.recv()).body.reason_code is NakCode.NOT_LOGGED_ON
        await client.close()
    finally:
        await server.stop()


async def test_wrong_path_and_unknown_chain_are_refused() -> None:
    server, app = await started()
    try:
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(server.url.replace("/ws", "/other")):
                pass
        key = Signer.generate()
        async with websockets.connect(server.url) as ws:
            await ws.send(frame(key, Logon(), 1, chain_id=1))
            nak = read(await ws.recv()).body
            assert isinstance(nak, Nak) and nak.reason_code is NakCode.BAD_FIELD and "chain_id" in nak.reason
    finally:
        await server.stop()
