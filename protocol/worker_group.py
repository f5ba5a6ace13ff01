"""Several gateway processes on one port: each user belongs to one process, and a connection moves to it at Logon.

Why: one Python event loop verifies, stores and answers ~5,000 orders/s at 100% of a core, which is where the ACK
latency explodes; N processes sharing the port (SO_REUSEPORT: the kernel spreads new connections over them) each
carry 1/N of the users.

Why users, not connections, are split: a user's stream (both sequence numbers, the numbering of every report, the
per-user limits and session count) must have exactly one owner, or two processes would number the same stream. So
`owner_of(user)` is a fixed hash of the user's key, and a connection that the kernel gave to another process is
handed to the owner when its Logon arrives: the socket itself (SCM_RIGHTS over a Unix socket), the Logon frame,
and every byte the first process read after it (`bytes_after`), so nothing the client sent is lost or read twice.
From then on the owner alone reads and writes that socket; the client sees one connection. Everything a user's
requests cause (the application's reports included) therefore happens in the owner process, and a report for a user
is emitted by the process that owns it (`GatewayServer.owns`).

Before the Logon a connection is anonymous: Heartbeat/TestRequest/garbage are answered by whichever process holds it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import zlib
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

#: A handoff message: the Logon frame and the bytes read after it; above this the connection is not moved
#: (closed 1013, the client logs on again). The pre-Logon read log is bounded by the same figure. Kept under the
#: default Unix socket buffer (~208 KiB), which bounds one SOCK_SEQPACKET message.
MAX_HANDOFF_BYTES = 128 * 1024
_HEADER = struct.Struct("!IIq")  # len(logon frame utf-8), len(bytes after), session bucket milli-tokens


@dataclass(frozen=True)
class WorkerGroup:
    """This process's place among `count` gateway processes listening on one port."""

    index: int
    count: int
    #: A directory private to the group: process k receives handed-over connections on `<dir>/handoff-<k>.sock`.
    handoff_dir: str

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"worker index {self.index} not in [0, {self.count})")

    def owner_of(self, user_key: str) -> int:
        """The process that owns a user: stable across restarts and processes (crc32, not Python's salted hash)."""
        return zlib.crc32(user_key.encode("utf-8")) % self.count

    def path(self, index: int) -> str:
        return os.path.join(self.handoff_dir, f"handoff-{index}.sock")


def bytes_after(log_bytes: bytes, messages: int, has_http: bool = True) -> bytes | None:
    """The client's bytes after its `messages`-th data message (the Logon), given everything read from the socket
    since the connection opened (the HTTP upgrade request first, if `has_http`). Frames are split by their headers
    only (RFC 6455 §5.2); fragments count as one message; control frames count as none. None if `log_bytes` does
    not hold that many messages (cannot happen for a log recorded without gaps)."""
    pos = 0
    if has_http:
        start = log_bytes.find(b"\r\n\r\n")
        if start < 0:
            return None
        pos = start + 4
    n = len(log_bytes)
    seen = 0
    while seen < messages:
        if n - pos < 2:
            return None
        b0, b1 = log_bytes[pos], log_bytes[pos + 1]
        length = b1 & 0x7F
        head = 2
        if length == 126:
            if n - pos < 4:
                return None
            length = int.from_bytes(log_bytes[pos + 2:pos + 4], "big")
            head = 4
        elif length == 127:
            if n - pos < 10:
                return None
            length = int.from_bytes(log_bytes[pos + 2:pos + 10], "big")
            head = 10
        if b1 & 0x80:
            head += 4  # masking key
        end = pos + head + length
        if end > n:
            return None
        opcode = b0 & 0x0F
        if opcode < 0x8 and b0 & 0x80:  # FIN of a data frame or of the last continuation: one message complete
            seen += 1
        pos = end
    return log_bytes[pos:]


def pack(frame: str, after: bytes, tokens_milli: int) -> bytes:
    data = frame.encode("utf-8")
    return _HEADER.pack(len(data), len(after), tokens_milli) + data + after


def unpack(payload: bytes) -> tuple[str, bytes, int]:
    n_frame, n_after, tokens_milli = _HEADER.unpack_from(payload)
    body = payload[_HEADER.size:]
    if len(body) != n_frame + n_after:
        raise ValueError("truncated handoff message")
    return body[:n_frame].decode("utf-8"), body[n_frame:], tokens_milli


class HandoffReceiver:
    """Process k's end: a Unix SOCK_SEQPACKET listener; each message is one handed-over connection (one fd)."""

    def __init__(self, group: WorkerGroup, adopt: Callable[[socket.socket, str, bytes, int], None]) -> None:
        self.group = group
        self._adopt = adopt
        self._listener: socket.socket | None = None
        self._peers: list[socket.socket] = []
        self.received = 0

    def start(self) -> None:
        path = self.group.path(self.group.index)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(path)
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept)

    def _accept(self) -> None:
        try:
            peer, _ = self._listener.accept()  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        peer.setblocking(False)
        self._peers.append(peer)
        asyncio.get_running_loop().add_reader(peer.fileno(), self._read, peer)

    def _read(self, peer: socket.socket) -> None:
        while True:
            try:
                payload, fds, flags, _ = socket.recv_fds(peer, MAX_HANDOFF_BYTES + 32 * 1024, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("handoff peer failed (%s)", exc)
                self._drop(peer)
                return
            if not payload and not fds:
                self._drop(peer)  # the sending process went away
                return
            if len(fds) != 1 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                for fd in fds:
                    os.close(fd)
                log.error("malformed handoff message (%d fds, flags %#x): dropped", len(fds), flags)
                continue
            sock = socket.socket(fileno=fds[0])
            try:
                frame, after, tokens_milli = unpack(payload)
            except (ValueError, struct.error) as exc:
                log.error("malformed handoff message (%s): connection closed", exc)
                sock.close()
                continue
            self.received += 1
            self._adopt(sock, frame, after, tokens_milli)

    def _drop(self, peer: socket.socket) -> None:
        try:
            asyncio.get_running_loop().remove_reader(peer.fileno())
        except Exception:  # noqa: BLE001  (already gone)
            pass
        if peer in self._peers:
            self._peers.remove(peer)
        peer.close()

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for peer in list(self._peers):
            self._drop(peer)
        if self._listener is not None:
            loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
            try:
                os.unlink(self.group.path(self.group.index))
            except FileNotFoundError:
                pass


class HandoffSender:
    """This process's connections to its peers' receivers (opened on first use). Sending never blocks the event
    loop: a full peer socket is waited for (writable), at most `timeout_s`."""

    def __init__(self, group: WorkerGroup, timeout_s: float = 2.0) -> None:
        self.group = group
        self._timeout_s = timeout_s
        self._peers: dict[int, socket.socket] = {}
        self.sent = 0

    def _peer(self, index: int) -> socket.socket:
        peer = self._peers.get(index)
        if peer is None:
            peer = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                peer.connect(self.group.path(index))  # a local listener answers at once, or refuses
            except OSError:
                peer.close()
                raise
            peer.setblocking(False)
            self._peers[index] = peer
        return peer

    async def send(self, index: int, fd: int, frame: str, after: bytes, tokens_milli: int) -> None:
        """Hand socket `fd` to process `index`. Raises OSError (TimeoutError included) if the peer is unreachable
        or does not take it in time: the caller keeps the connection and closes it."""
        payload = pack(frame, after, tokens_milli)
        if len(payload) > MAX_HANDOFF_BYTES + 32 * 1024:
            raise OSError("handoff message too large")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        reconnected = False
        while True:
            peer = self._peer(index)
            try:
                socket.send_fds(peer, [payload], [fd])
                self.sent += 1
                return
            except BlockingIOError:
                writable = loop.create_future()
                loop.add_writer(peer.fileno(), lambda: writable.done() or writable.set_result(None))
                try:
                    await asyncio.wait_for(writable, max(0.0, deadline - loop.time()))
                finally:
                    loop.remove_writer(peer.fileno())
            except OSError:
                self._peers.pop(index, None)
                peer.close()
                if reconnected:
                    raise
                reconnected = True  # a peer that restarted gets one reconnect

    def close(self) -> None:
        for peer in self._peers.values():
            peer.close()
        self._peers.clear()
