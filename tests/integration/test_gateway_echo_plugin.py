"""The plugin boundary is real: the same gateway serves a tiny echo application that knows nothing of index orders,
with the same sessions, signatures, sequence numbers, storage and resend; and it does not know IndexMaker's
messages unless a plugin brings them."""
from __future__ import annotations

import asyncio
from typing import ClassVar, Sequence

import pytest

from protocol.client import GatewayClient, NakError
from protocol.envelope import Body
from protocol.plugin import BasePlugin, Inbound
from protocol.reason_codes import NakCode
from protocol.report_store import MemoryReportStore
from protocol.server import GatewayServer
from core.config import GatewayConfig
from protocol.signature import Signer
from protocol.wire_types import Id
from world.ports import LOOPBACK


class Echo(Body):
    MSG_TYPE: ClassVar[str] = "Echo"
    text: Id


class EchoReply(Body):
    MSG_TYPE: ClassVar[str] = "EchoReply"
    text: Id
    seq: int


class EchoPlugin(BasePlugin):
    requests = {"Echo": Echo}

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def on_requests(self, batch: Sequence[Inbound]) -> None:
        self.batches.append(len(batch))
        for inbound in batch:
            self.outbox.emit(inbound.user, EchoReply(text=inbound.body.text, seq=inbound.seq_num))  # type: ignore


async def test_an_echo_application_gets_the_whole_session_layer() -> None:
    plugin = EchoPlugin()
    server = GatewayServer(plugin, MemoryReportStore(), Signer.generate(), GatewayConfig(host=LOOPBACK, port=0))
    await server.start()
    try:
        client = GatewayClient(server.url, Signer.generate(), reports={"EchoReply": EchoReply},
                               server_address=server.signer.address, reconnect=False, ack_timeout_s=10)
        await client.connect()
        seqs = [await client.request(Echo(text=f"hello-{i}")) for i in range(3)]
        replies = [await client.next_report(10) for _ in range(3)]
        assert [(r.body.text, r.body.seq) for r in replies] == [(f"hello-{i}", s) for i, s in enumerate(seqs)]
        assert sum(plugin.batches) == 3
        with pytest.raises(NakError) as info:  # index orders mean nothing to this gateway
            await client.new_order("C-1", "SY100", "1")
        assert info.value.code is NakCode.UNKNOWN_MSG_TYPE
        client.next_seq -= 1
        await client.drop_connection()
        plugin.outbox.emit(client.user, EchoReply(text="while-away", seq=0))  # an unsolicited message
        await server.flush()
        await client.connect()
        missed = await client.next_report(10)
        assert missed.body.text == "while-away"  # stored and resent like any report, signed by the server
        await client.close()
    finally:
        await server.stop()


def test_a_plugin_cannot_take_over_session_messages() -> None:
    class Greedy(EchoPlugin):
        requests = {"Logon": Echo}

    with pytest.raises(ValueError, match="session messages"):
        GatewayServer(Greedy(), MemoryReportStore(), Signer.generate(), GatewayConfig(host=LOOPBACK, port=0))
    assert asyncio.iscoroutinefunction(EchoPlugin.on_requests)


async def test_a_backlog_reaches_the_plugin_in_bounded_chunks_in_order() -> None:
    """After a hiccup the accepted requests wait in one queue: they go to the plugin `dispatch_chunk` at a time, the
    event loop served in between, and in the order they were accepted."""
    from protocol.envelope import UserRef

    class Recording(EchoPlugin):
        texts: list[str] = []

        async def on_requests(self, batch: Sequence[Inbound]) -> None:
            self.texts.extend(i.body.text for i in batch)  # type: ignore[attr-defined]
            await super().on_requests(batch)

    plugin = Recording()
    server = GatewayServer(plugin, MemoryReportStore(), Signer.generate(),
                           GatewayConfig(host=LOOPBACK, port=0, dispatch_chunk=2))
    await server.start()
    try:
        user = UserRef(42161, Signer.generate().address)
        for i in range(7):
            server._dispatch(Inbound(user, i + 1, Echo(text=f"m-{i}"), 0))
        await asyncio.wait_for(server.flush(), 10)
        assert plugin.batches == [2, 2, 2, 1]
        assert plugin.texts == [f"m-{i}" for i in range(7)]
        assert server._users[user.key].out_seq == 7  # every request answered once
    finally:
        await server.stop()
