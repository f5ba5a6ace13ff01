"""Helpers for the gateway tests: a gateway with the order shards' application (tests/hand_driven_app.py), run in
the test's event loop or in a thread of its own (for synchronous clients and hypothesis), and frames signed any way
a test needs."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any, Awaitable, Callable, TypeVar

from websockets.sync.client import ClientConnection, connect

from core.clock import Clock, SystemClock
from protocol.codec import Decoded, decode, encode, header, parse_frame
from protocol.envelope import Body, UserRef
from core.config import GatewayConfig
from protocol.indexmaker_messages import INDEXMAKER_REPORTS
from protocol.indexmaker_plugin import IndexMakerPlugin
from protocol.plugin import Plugin
from protocol.report_store import MemoryReportStore, ReportStore
from protocol.server import GatewayServer
from protocol.session_messages import SERVER_SESSION_BODIES, Ack, Nak
from protocol.signature import Signer
from protocol.wire_types import format_timestamp
from tests.hand_driven_app import HandDrivenApp
from world.ports import LOOPBACK

T = TypeVar("T")
SERVER_BODIES = {**SERVER_SESSION_BODIES, **INDEXMAKER_REPORTS}
WAIT_S = 10.0  # upper bound on any single wait; tests wait on events, this only keeps a broken one from hanging

#: Limits high enough not to interfere with tests that are not about limits.
OPEN_LIMITS = dict(session_rate_per_s=100_000, session_burst=100_000, user_weight_per_s=1_000_000,
                   user_burst=1_000_000, global_rate_per_s=1_000_000, global_burst=1_000_000)


def make_gateway(store: ReportStore | None = None, clock: Clock | None = None, plugin: Plugin | None = None,
                 server_key: Signer | None = None, **config: Any) -> tuple[GatewayServer, HandDrivenApp]:
    clock = clock or SystemClock()
    app = HandDrivenApp({"SY100", "SYAI"}, clock=clock, max_open_orders=10_000)
    if plugin is None:
        plugin = IndexMakerPlugin(app)
        app.set_sink(plugin.deliver)  # type: ignore[attr-defined]
    settings = {"host": LOOPBACK, "port": 0, "max_frame_bytes": 4096, "hard_max_frame_bytes": 65536, **OPEN_LIMITS,
                **config}
    server = GatewayServer(plugin, store or MemoryReportStore(), server_key or Signer.generate(),
                           GatewayConfig(**settings), clock)
    return server, app


def frame(signer: Signer | None, body: Body, seq: int, *, address: str | None = None, chain_id: int = 8453,
          ts_ms: int | None = None, comp_ids: tuple[str, str] = ("CLIENT", "SERVER")) -> str:
    """A client frame: `address` defaults to the signer's; `signer` None leaves it unsigned."""
    if address is None:
        assert signer is not None
        address = signer.address
    stamp = format_timestamp(SystemClock().now_ms() if ts_ms is None else ts_ms)
    return encode(header(body.MSG_TYPE, comp_ids[0], comp_ids[1], seq, stamp), chain_id, address, body, signer)


def read(text: str | bytes) -> Decoded:
    return decode(parse_frame(text, 1 << 22, max_containers=100_000), SERVER_BODIES)


class ServerThread:
    """A gateway in its own thread and event loop, for synchronous clients (hypothesis runs sync tests)."""

    def __init__(self, build: Callable[[], tuple[GatewayServer, HandDrivenApp]]) -> None:
        self._build = build
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="gateway-test-loop", daemon=True)
        self.server: GatewayServer
        self.app: HandDrivenApp

    def __enter__(self) -> "ServerThread":
        self._thread.start()

        async def start() -> None:
            self.server, self.app = self._build()
            await self.server.start()

        self.run(start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT_S)
        self.loop.close()

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT_S)  # type: ignore[arg-type]

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the gateway's loop (the application and the outbox live there)."""
        done: Future[T] = Future()

        def job() -> None:
            try:
                done.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller
                done.set_exception(exc)

        self.loop.call_soon_threadsafe(job)
        return done.result(WAIT_S)

    @property
    def url(self) -> str:
        return self.server.url


class SyncUser:
    """A synchronous client that signs what it is told and shows every frame it gets (fuzzing needs that control)."""

    def __init__(self, url: str, signer: Signer | None = None, chain_id: int = 8453) -> None:
        self.url = url
        self.signer = signer or Signer.generate()
        self.chain_id = chain_id
        # (entered by hand: the connection lives as long as this object, not a `with` block)
        self.ws: ClientConnection = connect(url, max_size=1 << 22, open_timeout=WAIT_S).__enter__()
        self.next_seq = 1
        self.last_seen = 0
        self.reports: list[Decoded] = []

    @property
    def user(self) -> UserRef:
        return UserRef(self.chain_id, self.signer.address)

    def frame(self, body: Body, seq: int | None = None, **kwargs: Any) -> str:
        return frame(self.signer, body, self.next_seq if seq is None else seq, chain_id=self.chain_id, **kwargs)

    def recv(self) -> Decoded:
        d = read(self.ws.recv(timeout=WAIT_S))
        if d.seq_num:
            assert d.seq_num == self.last_seen + 1, f"stream gap: got {d.seq_num} after {self.last_seen}"
            self.last_seen = d.seq_num
        return d

    def answer(self, ref_seq: int) -> Decoded:
        """The ACK or NAK for `ref_seq`; reports arriving meanwhile are kept in `reports`."""
        while True:
            d = self.recv()
            if isinstance(d.body, (Ack, Nak)) and d.body.ref_seq_num == ref_seq:
                return d
            if isinstance(d.body, Nak):
                raise AssertionError(f"unexpected NAK {d.body}")
            if not isinstance(d.body, Ack):
                self.reports.append(d)

    def request(self, body: Body) -> Decoded:
        """Send a correctly signed, sequenced request; returns its ACK or NAK."""
        seq = self.next_seq
        self.ws.send(self.frame(body))
        answer = self.answer(seq)
        if isinstance(answer.body, Ack):
            self.next_seq += 1
        return answer

    def report(self) -> Decoded:
        if self.reports:
            return self.reports.pop(0)
        while True:
            d = self.recv()
            if not isinstance(d.body, (Ack, Nak)):
                return d

    def close(self) -> None:
        self.ws.close()
