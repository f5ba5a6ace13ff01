"""Market-data websockets: `/ws`, `/ws/<stream>` (raw events) and `/stream?streams=a/b` (wrapped), with SUBSCRIBE /
UNSUBSCRIBE / LIST_SUBSCRIPTIONS frames.

Each connection has its own FIFO queue and sender task: the SUBSCRIBE ack is queued before the subscription is
registered, so it precedes the first event (ccxt drops events before the ack). Events are serialised once per
publication; a client whose queue passes `max_queue` is dropped, as Binance does."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable, Iterable

from aiohttp import WSMsgType, web

_SUFFIXES = ("@depth@100ms", "@depth", "@trade", "@bookTicker", "@aggTrade")
_PARTIAL = ("5", "10", "20")


def parse_stream(name: str) -> tuple[str, str] | None:
    """'btcusdc@depth@100ms' -> ('BTCUSDC', 'depth@100ms'); None if not a stream we serve."""
    if "@" not in name:
        return None
    sym, _, kind = name.partition("@")
    if not sym or sym != sym.lower():
        return None
    if kind in ("depth@100ms", "depth", "trade", "bookTicker"):
        return sym.upper(), kind
    for n in _PARTIAL:
        if kind in (f"depth{n}", f"depth{n}@100ms"):
            return sym.upper(), kind
    return None


class Connection:
    __slots__ = ("ws", "queue", "streams", "combined", "task", "closed", "incoming", "incoming_window", "kind")

    def __init__(self, ws: web.WebSocketResponse, combined: bool, kind: str = "market") -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.streams: set[str] = set()
        self.combined = combined
        self.task: asyncio.Task | None = None
        self.closed = False
        self.incoming = 0
        self.incoming_window = 0
        self.kind = kind

    def send(self, text: str) -> None:
        if not self.closed:
            self.queue.put_nowait(text)

    async def run_sender(self) -> None:
        ws, q = self.ws, self.queue
        try:
            while True:
                msg = await q.get()
                if msg is None:
                    break
                await ws.send_str(msg)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True


class MarketStreams:
    def __init__(self, known_symbols: Iterable[str], *, max_queue: int, max_incoming_per_s: int,
                 max_streams: int) -> None:
        self.known = set(known_symbols)
        self.subs: dict[str, set[Connection]] = {}  # stream name -> connections
        self.connections: set[Connection] = set()
        self.max_queue = max_queue
        self.max_incoming_per_s = max_incoming_per_s
        self.max_streams = max_streams
        self.messages_sent = 0
        self.on_subscribe: Callable[[str], None] | None = None

    # ------------------------------------------------------------------ publishing
    def has(self, stream: str) -> bool:
        return bool(self.subs.get(stream))

    def publish(self, stream: str, payload: dict[str, Any] | str) -> None:
        conns = self.subs.get(stream)
        if not conns:
            return
        raw = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        wrapped = None
        for c in list(conns):
            if c.combined:
                if wrapped is None:
                    wrapped = '{"stream":"%s","data":%s}' % (stream, raw)
                c.send(wrapped)
            else:
                c.send(raw)
            if c.queue.qsize() > self.max_queue:
                self._drop(c)
        self.messages_sent += len(conns)

    def _drop(self, c: Connection) -> None:
        self._forget(c)
        c.closed = True
        c.queue.put_nowait(None)
        asyncio.ensure_future(c.ws.close(code=1008, message=b"slow consumer"))

    def _forget(self, c: Connection) -> None:
        for s in c.streams:
            conns = self.subs.get(s)
            if conns is not None:
                conns.discard(c)
                if not conns:
                    del self.subs[s]
        c.streams.clear()
        self.connections.discard(c)

    def _subscribe(self, c: Connection, streams: Iterable[str]) -> None:
        for s in streams:
            if parse_stream(s) is None:
                continue
            c.streams.add(s)
            self.subs.setdefault(s, set()).add(c)

    async def drop_all(self, abrupt: bool = False) -> int:
        """Fault injection: close every market-data connection (abrupt = no close frame, like a network cut)."""
        conns = list(self.connections)
        for c in conns:
            self._forget(c)
            c.closed = True
            if abrupt and c.ws._req is not None and c.ws._req.transport is not None:  # noqa: SLF001
                c.ws._req.transport.close()  # noqa: SLF001
            else:
                await c.ws.close(code=1001, message=b"dropped by simulator")
            c.queue.put_nowait(None)
        return len(conns)

    async def shutdown(self) -> None:
        for c in list(self.connections):
            c.send(json.dumps({"e": "serverShutdown", "E": int(time.time() * 1000)}))
        await self.drop_all()

    # ------------------------------------------------------------------ connections
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=1 << 20)
        await ws.prepare(request)
        combined = request.path.startswith("/stream")
        c = Connection(ws, combined)
        self.connections.add(c)
        initial: list[str] = []
        if combined:
            initial = [s for s in request.query.get("streams", "").split("/") if s]
        else:
            tail = request.match_info.get("tail", "")
            initial = [s for s in tail.split("/") if s]
        self._subscribe(c, initial[: self.max_streams])
        c.task = asyncio.ensure_future(c.run_sender())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                if not self._admit_incoming(c):
                    # answers already queued go out first, then the connection is closed (Binance: disconnect)
                    self._forget(c)
                    c.queue.put_nowait(None)
                    if c.task is not None:
                        await c.task
                    await ws.close(code=1008, message=b"too many messages")
                    break
                self._control(c, msg.data)
        finally:
            self._forget(c)
            c.closed = True
            c.queue.put_nowait(None)
        return ws

    def _admit_incoming(self, c: Connection) -> bool:
        second = int(time.monotonic())
        if second != c.incoming_window:
            c.incoming_window, c.incoming = second, 0
        c.incoming += 1
        return c.incoming <= self.max_incoming_per_s

    def _control(self, c: Connection, text: str) -> None:
        try:
            req = json.loads(text)
            method = req.get("method")
            rid = req.get("id")
            params = req.get("params") or []
        except (ValueError, AttributeError):
            c.send(json.dumps({"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}}))
            return
        if method == "SUBSCRIBE":
            bad = [p for p in params if not isinstance(p, str) or parse_stream(p) is None]
            if bad:
                c.send(json.dumps({"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0]!s}"},
                                   "id": rid}))
                return
            if len(c.streams | set(params)) > self.max_streams:
                c.send(json.dumps({"error": {"code": 2, "msg": "Invalid request: too many streams"}, "id": rid}))
                return
            # Ack first, then register: the ack is queued ahead of any event of these streams.
            c.send(json.dumps({"result": None, "id": rid}))
            self._subscribe(c, params)
            if self.on_subscribe is not None:
                for p in params:
                    self.on_subscribe(p)
        elif method == "UNSUBSCRIBE":
            for p in params:
                c.streams.discard(p)
                conns = self.subs.get(p)
                if conns is not None:
                    conns.discard(c)
                    if not conns:
                        del self.subs[p]
            c.send(json.dumps({"result": None, "id": rid}))
        elif method == "LIST_SUBSCRIPTIONS":
            c.send(json.dumps({"result": sorted(c.streams), "id": rid}))
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            c.send(json.dumps({"result": None if method == "SET_PROPERTY" else False, "id": rid}))
        else:
            c.send(json.dumps({"error": {"code": 2, "msg": f"Invalid request: unknown method {method!s}"},
                               "id": rid}))
