"""The group commit's one Redis command per batch, written and read without redis-py.

redis-py's asyncio client costs ~100-140 us of CPU per command, ~0.3 core at 5,000 orders/s; one dedicated
connection writing the EVALSHA as RESP bytes costs ~10 us. Only this command takes this path. Replies come in
request order, so requests may overlap; a broken connection fails every request in flight (the group commit
retries: the writes are idempotent)."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class RedisError(Exception):
    """An error reply (`-ERR ...`)."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self._buf = b""
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos = 0
        while True:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            kind, line = buf[pos:pos + 1], buf[pos + 1:end]
            pos = end + 2
            if kind == b":":
                value: Any = int(line)
            elif kind == b"+":
                value = line.decode()
            elif kind == b"-":
                value = RedisError(line.decode(errors="replace"))
            else:  # our commands answer integers, simple strings or errors only
                self._fail(ConnectionError(f"unexpected reply type {kind!r}"))
                return
            if not self.waiting:
                self._fail(ConnectionError("a reply nobody asked for"))
                return
            future = self.waiting.popleft()
            if not future.done():  # its caller may have given up (timeout): the reply is consumed all the same
                if isinstance(value, RedisError):
                    future.set_exception(value)
                else:
                    future.set_result(value)
        self._buf = buf[pos:]

    def _fail(self, exc: BaseException) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.connection_lost(exc)

    def connection_lost(self, exc: Exception | BaseException | None) -> None:
        error = exc if exc is not None else ConnectionError("connection to redis closed")
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError(f"redis connection lost: {error}"))
        if not self.lost.done():
            self.lost.set_result(None)


def command(*args: bytes) -> bytes:
    """One RESP request."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n" % len(a))
        out.append(a)
        out.append(b"\r\n")
    return b"".join(out)


class RawRedisConnection:
    """One connection to the Redis that `connection_kwargs` (redis-py's) name: TCP or Unix socket, with AUTH and
    SELECT when they are set. No TLS: `supported` says whether these kwargs can be served."""

    def __init__(self, connection_kwargs: dict[str, Any]) -> None:
        self._kw = connection_kwargs
        self._conn: _Connection | None = None
        self._opening: asyncio.Future[_Connection] | None = None

    @staticmethod
    def supported(connection_kwargs: dict[str, Any], connection_class: type) -> bool:
        name = connection_class.__name__
        return name in ("Connection", "UnixDomainSocketConnection") and not connection_kwargs.get("ssl")

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        kw = self._kw
        if kw.get("path"):
            _, conn = await loop.create_unix_connection(_Connection, kw["path"])
        else:
            if not kw.get("host"):
                raise ValueError("the store's URL names no host")
            _, conn = await loop.create_connection(_Connection, kw["host"], kw.get("port", 6379))
        setup = []
        if kw.get("password"):
            user = kw.get("username")
            setup.append(command(b"AUTH", *([user.encode()] if user else []), str(kw["password"]).encode()))
        if kw.get("db"):
            setup.append(command(b"SELECT", str(kw["db"]).encode()))
        for request in setup:
            await self._send(conn, request)
        return conn

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.lost.done():
            return conn
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        try:
            conn = await asyncio.shield(self._opening)
        finally:
            if self._opening is not None and self._opening.done():
                self._opening = None
        self._conn = conn
        return conn

    @staticmethod
    async def _send(conn: _Connection, request: bytes) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.waiting.append(future)
        conn.transport.write(request)  # type: ignore[union-attr]
        return await future

    async def execute(self, *args: bytes) -> Any:
        """Send one command, return its integer or simple-string reply; RedisError for an error reply,
        ConnectionError if the connection fails."""
        conn = await self._connection()
        return await self._send(conn, command(*args))

    def close(self) -> None:
        if self._conn is not None and self._conn.transport is not None:
            self._conn.transport.close()
        self._conn = None
