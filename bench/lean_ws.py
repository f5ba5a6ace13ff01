"""A lean RFC 6455 websocket client for the load side of bench/gateway.py.

The `websockets` client costs ~45-60 us of CPU per order, taken on a 2-core box from the gateway being measured.
This one is an asyncio Protocol: no task per connection, frames masked before the timed section, replies sent in
one write, server frames only split. It keeps the client's side of RFC 6455 and connects to loopback only."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import socket
import os
import struct
import time
from collections import deque
from typing import Callable

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA_OPS = frozenset((OP_TEXT, OP_BINARY))
_CONTROL_OPS = frozenset((OP_CLOSE, OP_PING, OP_PONG))
_MAX_HANDSHAKE = 16 * 1024


class WsProtocolError(Exception):
    """The server broke RFC 6455 (or the handshake failed): the connection is failed, not limped along."""

    def __init__(self, text: str, close_code: int = 1002) -> None:
        super().__init__(text)
        self.close_code = close_code


def mask_frame(payload: bytes, opcode: int = OP_TEXT, key: bytes | None = None, fin: bool = True) -> bytes:
    """One client frame: FIN (unless `fin` is False), `opcode`, the MASK bit, the length in its shortest form, the
    4-byte masking key (random unless given: tests only) and the payload XORed with it (§5.2, §5.3)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 1 << 16:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    key = os.urandom(4) if key is None else key
    if len(key) != 4:
        raise ValueError("a masking key is 4 bytes")
    if not n:
        return head + key
    # XOR as one big integer: a C loop over the bytes instead of a Python loop (frames are masked before timing).
    repeated = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
    return head + key + masked


def text_frame(text: str) -> bytes:
    return mask_frame(text.encode("utf-8"), OP_TEXT)


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    return mask_frame(struct.pack("!H", code) + reason.encode("utf-8")[:123], OP_CLOSE)


class FrameReader:
    """Splits the server's bytes into messages and control frames: `feed(data)` returns [(opcode, payload)], with
    fragments already joined (the opcode is the first fragment's) and each frame checked as the module says."""

    __slots__ = ("max_size", "_buf", "_frag_op", "_frags", "_frag_len")

    def __init__(self, max_size: int = 1 << 22) -> None:
        self.max_size = max_size
        self._buf = b""
        self._frag_op = 0
        self._frags: list[bytes] | None = None
        self._frag_len = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self._buf:
            data = self._buf + data
            self._buf = b""
        out: list[tuple[int, bytes]] = []
        pos = 0
        n = len(data)
        while n - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            if b1 & 0x80:
                raise WsProtocolError("the server masked a frame (§5.1)")
            if b0 & 0x70:
                raise WsProtocolError("reserved bits set, no extension was negotiated (§5.2)")
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                head = 4
                if length < 126:
                    raise WsProtocolError("length not in its shortest form (§5.2)")
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                head = 10
                if length >> 63 or length < 1 << 16:
                    raise WsProtocolError("bad 64-bit length (§5.2)")
            if length > self.max_size:
                raise WsProtocolError(f"frame of {length} bytes is over {self.max_size}", 1009)
            end = pos + head + length
            if end > n:
                break
            payload = data[pos + head:end]
            pos = end
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode in _DATA_OPS:
                if self._frags is not None:
                    raise WsProtocolError("a new message began inside a fragmented one (§5.4)")
                if fin:
                    out.append((opcode, payload))
                else:
                    self._frag_op, self._frags, self._frag_len = opcode, [payload], length
            elif opcode == OP_CONT:
                if self._frags is None:
                    raise WsProtocolError("continuation frame with no message to continue (§5.4)")
                self._frags.append(payload)
                self._frag_len += length
                if self._frag_len > self.max_size:
                    raise WsProtocolError(f"message over {self.max_size} bytes", 1009)
                if fin:
                    out.append((self._frag_op, b"".join(self._frags)))
                    self._frags = None
            elif opcode in _CONTROL_OPS:
                if not fin or length > 125:
                    raise WsProtocolError("control frames are not fragmented and carry <= 125 bytes (§5.5)")
                out.append((opcode, payload))
            else:
                raise WsProtocolError(f"unknown opcode {opcode:#x} (§5.2)")
        if pos < n:
            self._buf = data[pos:]
        return out


def _accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


class LeanWebSocket(asyncio.Protocol):
    """One client connection. Text messages go to `on_text(text, t)` (t: perf_counter when the bytes were read) if
    set, else to `recv()`. `send(frame)` takes a frame made by `mask_frame`; frames sent from `on_text` are written
    together once the read is handled."""

    def __init__(self, host: str, port: int, path: str = "/", max_size: int = 1 << 22) -> None:
        self.on_text: Callable[[str, float], None] | None = None
        self._host, self._port, self._path = host, port, path
        self._key = base64.b64encode(os.urandom(16))
        self._reader = FrameReader(max_size)
        self._transport: asyncio.Transport | None = None
        self._handshake = b""
        self._open = False
        self._in_read = False
        self._pending: list[bytes] = []
        self._inbox: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._close_sent = False
        self.close_code: int | None = None  # the server's close code, once it sent a Close
        self.error: BaseException | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    # --- asyncio.Protocol ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        request = (f"GET {self._path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n\r\n")
        transport.write(request.encode("ascii"))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        try:
            if not self._open:
                data = self._on_handshake(data)
                if not data:
                    return
            frames = self._reader.feed(data)
            if not frames:
                return
            self._in_read = True
            try:
                for opcode, payload in frames:
                    if opcode == OP_TEXT:
                        text = payload.decode("utf-8")  # RFC 6455 §8.1: invalid UTF-8 fails the connection
                        handler = self.on_text
                        if handler is not None:
                            handler(text, now)
                        else:
                            self._inbox.append(text)
                            self._wake()
                    elif opcode == OP_PING:
                        self.send(mask_frame(payload, OP_PONG))
                    elif opcode == OP_CLOSE:
                        self._on_close(payload)
                    elif opcode == OP_BINARY:
                        raise WsProtocolError("the gateway sends text frames only", 1003)
                    # OP_PONG: we send no pings; an unsolicited pong is allowed and ignored (§5.5.3)
            finally:
                self._in_read = False
                self._flush()
        except UnicodeDecodeError:
            self._fail(WsProtocolError("text message is not UTF-8 (§8.1)", 1007))
        except WsProtocolError as exc:
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = exc
        if not self.opened.done():
            self.opened.set_exception(self.error or ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake()

    # --- handshake ----------------------------------------------------------------------------------------------

    def _on_handshake(self, data: bytes) -> bytes:
        self._handshake += data
        end = self._handshake.find(b"\r\n\r\n")
        if end < 0:
            if len(self._handshake) > _MAX_HANDSHAKE:
                raise WsProtocolError("handshake response too long")
            return b""
        head, rest = self._handshake[:end].decode("latin-1"), self._handshake[end + 4:]
        self._handshake = b""
        lines = head.split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[0] != "HTTP/1.1" or status[1] != "101":
            raise WsProtocolError(f"handshake refused: {lines[0][:200]}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("upgrade", "").lower() != "websocket":
            raise WsProtocolError("handshake: no Upgrade: websocket")
        if "upgrade" not in (t.strip().lower() for t in headers.get("connection", "").split(",")):
            raise WsProtocolError("handshake: no Connection: Upgrade")
        if headers.get("sec-websocket-accept", "").encode() != _accept_key(self._key):
            raise WsProtocolError("handshake: wrong Sec-WebSocket-Accept")
        if headers.get("sec-websocket-extensions"):
            raise WsProtocolError("handshake: an extension we did not ask for")
        self._open = True
        self.opened.set_result(None)
        return rest

    # --- sending and receiving ----------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Send one frame built by `mask_frame`/`text_frame` (no copy, no masking here)."""
        if self._close_sent:
            raise ConnectionError("the connection is closing")
        if self._in_read:
            self._pending.append(frame)
        else:
            self._transport.write(frame)  # type: ignore[union-attr]

    def send_many(self, frames: list[bytes]) -> None:
        """Several frames in one write."""
        if self._close_sent:
            raise ConnectionError("the connection is closing")
        if self._in_read:
            self._pending.extend(frames)
        else:
            self._transport.write(b"".join(frames))  # type: ignore[union-attr]

    def _flush(self) -> None:
        pending = self._pending
        if pending and self._transport is not None and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
        pending.clear()

    async def recv(self, timeout: float | None = None) -> str:
        """The next text message (when no `on_text` is set); ConnectionError once closed and drained."""
        while not self._inbox:
            if self.closed.done():
                raise ConnectionError(f"closed (code {self.close_code})") from self.error
            self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self._waiter, timeout)
        return self._inbox.popleft()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- closing ------------------------------------------------------------------------------------------------

    def _on_close(self, payload: bytes) -> None:
        if len(payload) == 1:
            raise WsProtocolError("close payload of 1 byte (§5.5.1)")
        self.close_code = struct.unpack("!H", payload[:2])[0] if payload else 1005
        if not self._close_sent:  # echo the code, then the server closes TCP first (§7.1.1); we close if it does not
            self._pending.append(close_frame(self.close_code if payload else 1000))
            self._close_sent = True
        self._flush()
        asyncio.get_running_loop().call_later(1.0, self._abort)

    def _fail(self, exc: WsProtocolError) -> None:
        self.error = exc
        if self._transport is not None and not self._transport.is_closing():
            if self._open and not self._close_sent:
                self._close_sent = True
                self._transport.write(close_frame(exc.close_code))
            self._transport.close()
        if not self.opened.done():
            self.opened.set_exception(exc)

    def _abort(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    async def close(self, code: int = 1000, timeout: float = 2.0) -> None:
        """Send a Close, wait for the server's Close and its end of TCP, then make sure the socket is closed."""
        if self._transport is None:
            return
        if not self._close_sent and not self._transport.is_closing():
            self._close_sent = True
            self._pending.clear()
            self._transport.write(close_frame(code))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except asyncio.TimeoutError:
            pass
        self._abort()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: what it resolves to
        try:
            return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except (OSError, ValueError):
            return False


async def connect(host: str, port: int, path: str = "/", timeout: float = 30.0,
                  max_size: int = 1 << 22) -> LeanWebSocket:
    """Open a websocket to ws://host:port/path (loopback only) and complete the upgrade."""
    if not _is_loopback(host):
        raise ValueError(f"{host} is not a loopback address: the lean client is for local load tests only")
    loop = asyncio.get_running_loop()
    _, ws = await asyncio.wait_for(
        loop.create_connection(lambda: LeanWebSocket(host, port, path, max_size), host, port), timeout)
    await asyncio.wait_for(asyncio.shield(ws.opened), timeout)
    return ws
