"""The WebSocket API at /ws-api/v3, as far as ccxt uses it: `userDataStream.subscribe.signature` (HMAC over the
sorted params, timestamp window checked), `userDataStream.unsubscribe`, `ping`, `time`. Subscribed sessions get
the account's events wrapped `{"subscriptionId":N,"event":{...}}` (spec §f)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from aiohttp import WSMsgType, web

from exchange.simulator import auth
from exchange.simulator.market_streams import Connection


class UserStreams:
    def __init__(self, lookup_secret: Callable[[str], str | None], now_ms: Callable[[], int],
                 rate_limits: Callable[[str], list[dict[str, Any]]], charge: Callable[[str, int], None]) -> None:
        self._secret = lookup_secret
        self._now = now_ms
        self._rate_limits = rate_limits
        self._charge = charge
        self.by_key: dict[str, list[tuple[Connection, int]]] = {}
        self.connections: set[Connection] = set()
        self._next_sub: dict[Connection, int] = {}
        #: Set on every new subscription (tests wait on it rather than sleeping).
        self.subscribed = asyncio.Event()

    def push(self, api_key: str, event: dict[str, Any]) -> None:
        subs = self.by_key.get(api_key)
        if not subs:
            return
        body = json.dumps(event, separators=(",", ":"))
        for conn, sub_id in subs:
            conn.send('{"subscriptionId":%d,"event":%s}' % (sub_id, body))

    async def drop_all(self, abrupt: bool = False) -> int:
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

    def _forget(self, c: Connection) -> None:
        for key in list(self.by_key):
            self.by_key[key] = [(cc, sid) for cc, sid in self.by_key[key] if cc is not c]
            if not self.by_key[key]:
                del self.by_key[key]
        self.connections.discard(c)
        self._next_sub.pop(c, None)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        c = Connection(ws, combined=False, kind="ws-api")
        self.connections.add(c)
        self._next_sub[c] = 0
        c.task = asyncio.ensure_future(c.run_sender())
        ip = request.remote or "?"
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    c.send(json.dumps(self._request(c, ip, msg.data), separators=(",", ":")))
        finally:
            self._forget(c)
            c.closed = True
            c.queue.put_nowait(None)
        return ws

    def _error(self, rid: Any, status: int, code: int, msg: str) -> dict[str, Any]:
        return {"id": rid, "status": status, "error": {"code": code, "msg": msg}}

    def _request(self, c: Connection, ip: str, text: str) -> dict[str, Any]:
        try:
            req = json.loads(text)
            rid, method, params = req.get("id"), req.get("method"), req.get("params") or {}
        except (ValueError, AttributeError):
            return self._error(None, 400, -1100, "Illegal characters found in a parameter.")
        if method == "ping":
            return {"id": rid, "status": 200, "result": {}, "rateLimits": self._rate_limits(ip)}
        if method == "time":
            return {"id": rid, "status": 200, "result": {"serverTime": self._now()}, "rateLimits": self._rate_limits(ip)}
        if method == "userDataStream.subscribe.signature":
            return self._subscribe(c, ip, rid, params)
        if method == "userDataStream.unsubscribe":
            sub_id = params.get("subscriptionId")
            for key in list(self.by_key):
                self.by_key[key] = [(cc, sid) for cc, sid in self.by_key[key]
                                    if not (cc is c and (sub_id is None or sid == sub_id))]
                if not self.by_key[key]:
                    del self.by_key[key]
            return {"id": rid, "status": 200, "result": {}}
        if method == "session.subscriptions":
            result = [{"subscriptionId": sid} for subs in self.by_key.values() for cc, sid in subs if cc is c]
            return {"id": rid, "status": 200, "result": result}
        return self._error(rid, 400, -1100, f"Unknown method '{method}'.")

    def _subscribe(self, c: Connection, ip: str, rid: Any, params: dict[str, Any]) -> dict[str, Any]:
        self._charge(ip, 2)
        for name in ("apiKey", "timestamp", "signature"):
            if params.get(name) in (None, ""):
                return self._error(rid, 400, -1102,
                                   f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        api_key = str(params["apiKey"])
        secret = self._secret(api_key)
        if secret is None:
            return self._error(rid, 401, -2015, "Invalid API-key, IP, or permissions for action.")
        try:
            ts = int(params["timestamp"])
            window = int(params.get("recvWindow", 5000))
        except (TypeError, ValueError):
            return self._error(rid, 400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
        if not auth.valid(secret, auth.ws_payload(params), str(params["signature"])):
            return self._error(rid, 400, -1022, "Signature for this request is not valid.")
        now = self._now()
        if ts >= now + 1000:
            return self._error(rid, 400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > window:
            return self._error(rid, 400, -1021, "Timestamp for this request is outside of the recvWindow.")
        sub_id = self._next_sub[c]
        self._next_sub[c] = sub_id + 1
        self.by_key.setdefault(api_key, []).append((c, sub_id))
        self.subscribed.set()
        return {"id": rid, "status": 200, "result": {"subscriptionId": sub_id}, "rateLimits": self._rate_limits(ip)}
