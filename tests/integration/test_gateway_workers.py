"""Two gateway processes on one port (protocol/worker_group.py), here as two servers in one event loop: the kernel
spreads connections over both listening sockets (SO_REUSEPORT), and a Logon that reached the process not owning
its user moves the connection there, with whatever the client already sent after the Logon."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.lean_ws import connect as lean_connect, text_frame
from protocol.client import GatewayClient
from core.config import GatewayConfig
from protocol.indexmaker_messages import NewIndexOrder
from protocol.indexmaker_plugin import IndexMakerPlugin
from protocol.report_store import MemoryReportStore
from protocol.server import GatewayServer
from protocol.session_messages import Logon
from protocol.signature import Signer
from protocol.worker_group import WorkerGroup, bytes_after
from tests.hand_driven_app import HandDrivenApp
from tests.integration.gateway_harness import OPEN_LIMITS, WAIT_S, frame, read

USERS = 12


def order(cl: str) -> NewIndexOrder:
    return NewIndexOrder.model_validate({"client_order_id": cl, "symbol": "SY100", "side": "1", "amount": "10"})


class Pair:
    """Two servers of one group, each with its own application (a user only ever reaches its owner's)."""

    def __init__(self, tmp: Path, keys: list[Signer]) -> None:
        self.key = Signer.generate()
        self.keys = keys
        self.servers: list[GatewayServer] = []
        self.apps: list[HandDrivenApp] = []
        self.tmp = tmp

    async def start(self) -> "Pair":
        port = 0
        for index in range(2):
            app = HandDrivenApp({"SY100"}, max_open_orders=10_000)
            plugin = IndexMakerPlugin(app)
            app.set_sink(plugin.deliver)
            server = GatewayServer(plugin, MemoryReportStore(), self.key,
                                   GatewayConfig(port=port, **OPEN_LIMITS), group=WorkerGroup(index, 2, str(self.tmp)))
            await server.start()
            port = server.port  # the second binds the port the first was given
            for key in self.keys:
                client = GatewayClient("ws://unused", key)
                app.credit(client.user, "dep", "100000")
            self.servers.append(server)
            self.apps.append(app)
        return self

    @property
    def url(self) -> str:
        return self.servers[0].url

    def owner(self, address: str) -> GatewayServer:
        return self.servers[self.servers[0].group.owner_of(f"8453:{address}")]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()


async def test_every_user_is_served_by_its_owner_whichever_process_took_the_connection(tmp_path: Path) -> None:
    keys = [Signer.generate() for _ in range(USERS)]
    pair = await Pair(tmp_path, keys).start()
    try:
        clients = [await GatewayClient(pair.url, key, server_address=pair.key.address, ack_timeout_s=WAIT_S).connect()
                   for key in keys]
        for i, client in enumerate(clients):
            await client.new_order(f"C-{i}", "SY100", "10")
        for i, client in enumerate(clients):
            report = await client.next_report(WAIT_S)
            assert report.msg_type == "NewIndexOrder" and report.body.client_order_id == f"C-{i}"
            assert report.body.status == "new"
            owner = pair.owner(client.address)
            assert f"8453:{client.address}" in owner._users  # noqa: SLF001
            other = pair.servers[1 - pair.servers.index(owner)]
            assert f"8453:{client.address}" not in other._users  # noqa: SLF001
        moved = [s.stats["handed_off"] for s in pair.servers]
        assert sum(moved) == sum(s.stats["adopted"] for s in pair.servers)
        assert sum(moved) >= 1  # 12 connections all landing on their owners: 1 chance in 4,096
        for client in clients:
            await client.close()
    finally:
        await pair.stop()


async def test_frames_sent_right_after_the_logon_follow_the_connection(tmp_path: Path) -> None:
    """A client that does not wait for the Logon's ACK: the orders it already sent were read by the process that
    handed the connection over, and must reach the owner once, in order."""
    keys = [Signer.generate() for _ in range(8)]
    pair = await Pair(tmp_path, keys).start()
    try:
        for key in keys:
            ws = await lean_connect("127.0.0.1", pair.servers[0].port, "/ws", timeout=WAIT_S)
            burst = [frame(key, Logon(last_server_seq_num=0), 1)] + [frame(key, order(f"P-{k}"), k + 2)
                                                                     for k in range(3)]
            ws.send_many([text_frame(f) for f in burst])  # one write: the first process reads them all at once
            acks: list[int] = []
            reports: list[str] = []
            while len(acks) < 4 or len(reports) < 3:
                d = read(await ws.recv(WAIT_S))
                assert d.msg_type != "NAK", d.body
                if d.msg_type == "ACK":
                    acks.append(d.body.ref_seq_num)
                elif d.msg_type == "NewIndexOrder":
                    reports.append(d.body.client_order_id)
            assert acks == [1, 2, 3, 4]
            assert reports == ["P-0", "P-1", "P-2"]
            await ws.close()
        assert sum(s.stats["handed_off"] for s in pair.servers) >= 1
    finally:
        await pair.stop()


def test_bytes_after_finds_the_end_of_the_nth_message() -> None:
    from bench.lean_ws import OP_CONT, OP_PING, OP_TEXT, mask_frame  # noqa: PLC0415  (a masking client encoder)

    http = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"
    a = mask_frame(b"a" * 10)
    b1 = mask_frame(b"b" * 200, OP_TEXT, fin=False)
    ping = mask_frame(b"p", OP_PING)
    b2 = mask_frame(b"c" * 70_000, OP_CONT)
    c = mask_frame(b"tail")
    log = http + a + b1 + ping + b2 + c
    assert bytes_after(log, 1) == b1 + ping + b2 + c
    assert bytes_after(log, 2) == c  # a fragmented message ends with its last fragment; the ping is no message
    assert bytes_after(log, 3) == b""
    assert bytes_after(log, 4) is None
    assert bytes_after(log[:-3], 3) is None
    assert bytes_after(a + c, 1, has_http=False) == c


def test_owner_is_stable_and_spreads_users() -> None:
    group = WorkerGroup(0, 3, "/tmp")
    owners = [group.owner_of(f"8453:0x{i:040x}") for i in range(3000)]
    assert owners == [WorkerGroup(2, 3, "/x").owner_of(f"8453:0x{i:040x}") for i in range(3000)]
    assert all(800 < owners.count(k) < 1200 for k in range(3))
    with pytest.raises(ValueError):
        WorkerGroup(3, 3, "/tmp")


async def test_a_logon_for_a_process_that_is_down_closes_the_connection_and_loses_nothing(tmp_path: Path) -> None:
    """Only process 0 of 2 runs: a user owned by process 1 cannot be served here, so its connection is closed
    (1013, try again), nothing of it is stored or answered, and a user of process 0 is served as usual."""
    group = WorkerGroup(0, 2, str(tmp_path))
    keys = [Signer.generate() for _ in range(40)]
    theirs = next(k for k in keys if group.owner_of(f"8453:{k.address}") == 1)
    ours = next(k for k in keys if group.owner_of(f"8453:{k.address}") == 0)
    app = HandDrivenApp({"SY100"}, max_open_orders=100)
    plugin = IndexMakerPlugin(app)
    app.set_sink(plugin.deliver)
    store = MemoryReportStore()
    server = GatewayServer(plugin, store, Signer.generate(), GatewayConfig(port=0, **OPEN_LIMITS), group=group)
    await server.start()
    try:
        ws = await lean_connect("127.0.0.1", server.port, "/ws", timeout=WAIT_S)
        ws.send(text_frame(frame(theirs, Logon(last_server_seq_num=0), 1)))
        await asyncio.wait_for(asyncio.shield(ws.closed), WAIT_S)
        assert ws.close_code == 1013
        assert await store.last_seqs(f"8453:{theirs.address}") == (0, 0)
        with pytest.raises(ValueError, match="belongs to gateway process 1"):
            server.emit(GatewayClient("ws://unused", theirs).user, order("X"))
        app.credit(GatewayClient("ws://unused", ours).user, "dep", "1000")
        async with GatewayClient(server.url, ours, server_address=server.signer.address, ack_timeout_s=WAIT_S) as c:
            await c.new_order("OK-1", "SY100", "10")
        assert server.stats["handed_off"] == 0
    finally:
        await server.stop()
