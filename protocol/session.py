"""One websocket connection: its limits, its binding to a user, and the ordered delivery of that user's stream.

The cursor is the next stream seq_num owed: a message below it is dropped (sent already), one above it waits for
the gap, so each arrives once and in order however resend and live traffic interleave. Frames leave through one
queue written once per loop turn (a task wake per frame cost more); a client not reading is closed (4001)."""
from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from protocol.rate_limit import TokenBucket

if TYPE_CHECKING:
    from protocol.user_stream import UserStream

log = logging.getLogger(__name__)

CLOSE_IDLE = 4000
CLOSE_SLOW_CONSUMER = 4001
CLOSE_LOGON_TIMEOUT = 4002
CLOSE_RESEND_FAILED = 4003

_ids = itertools.count(1)

_SMALL_HEADS = [bytes((0x81, n)) for n in range(126)]  # FIN + text, unmasked, 7-bit length


def text_frame_bytes(data: bytes) -> bytes:
    """One unfragmented, unmasked text frame (RFC 6455 §5.2) as websockets' serializer writes it for a server
    without extensions (tests/unit/test_protocol_session_delivery.py compares them): header + payload."""
    n = len(data)
    if n < 126:
        return _SMALL_HEADS[n] + data
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + data
    return b"\x81\x7f" + n.to_bytes(8, "big") + data


class Session:
    __slots__ = ("id", "ws", "bucket", "user", "cursor", "_pending", "_out", "_wake", "_drained", "max_queue",
                 "opened", "last_rx", "last_tx", "test_req_id", "close_after", "closed", "_loop", "resending",
                 "_direct", "_flush_scheduled", "_sender_busy", "received")

    def __init__(self, ws: Any, bucket: TokenBucket, max_queue: int, now: float) -> None:
        self.id = f"S-{next(_ids)}"
        self.ws = ws
        self.bucket = bucket
        self.user: UserStream | None = None
        self.cursor = 0  # next stream seq_num owed to the client; set at Logon
        self._pending: dict[int, str] = {}  # stream messages above the cursor, waiting for the gap to fill
        self._out: deque[tuple[int, str]] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self.max_queue = max_queue
        self.opened = now
        self.last_rx = now
        self.last_tx = now
        self.test_req_id: str | None = None  # our TestRequest still unanswered
        self.close_after = 0  # stream seq_num after which to close (the ACK of a Logout)
        self.closed = False
        self.resending = False
        self.received = 0  # messages read from the websocket (a Logon handed to another process is found by it)
        self._loop = asyncio.get_running_loop()
        # A websockets connection is written to directly (see the module docstring); anything else (test doubles)
        # only through its `send`, by the sender task.
        self._direct = (hasattr(ws, "send_data") and hasattr(ws, "transport") and hasattr(ws, "paused")
                        and hasattr(getattr(ws, "protocol", None), "send_text"))
        self._flush_scheduled = False
        self._sender_busy = False  # the sender task is writing (and maybe waiting for the socket to drain)

    # --- delivery ---------------------------------------------------------------------------------------------------

    def deliver(self, seq: int, frame: str) -> None:
        """A stored stream message of this session's user."""
        if self.closed or seq < self.cursor:
            return
        if seq > self.cursor:
            self._pending[seq] = frame
            self._check_queue()
            return
        self._enqueue(seq, frame)
        self.cursor = seq + 1
        pending = self._pending
        while pending and self.cursor in pending:
            self._enqueue(self.cursor, pending.pop(self.cursor))
            self.cursor += 1

    def skip_gap(self, below: int) -> None:
        """After a resend: stream messages below `below` that neither the store nor live delivery produced are gone
        (the store lost them); deliver what is waiting instead of waiting for ever."""
        while self.cursor < below and self.cursor not in self._pending and self._pending:
            log.error("%s: stream message %d of %s is missing from the store; skipped", self.id, self.cursor,
                      self.user.key if self.user else "?")
            self.cursor = min(self._pending)
            self.deliver(self.cursor, self._pending.pop(self.cursor))

    def send_session_frame(self, frame: str) -> None:
        """NAK / Heartbeat / TestRequest: not part of the stream, sent as they come."""
        if not self.closed:
            self._enqueue(0, frame)

    def _enqueue(self, seq: int, frame: str) -> None:
        self._out.append((seq, frame))
        self._drained.clear()
        if self._direct:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
        else:
            self._wake.set()
        self._check_queue()

    def _flush(self) -> None:
        """Write everything queued in one go, unless the socket pushes back: then the sender task does it."""
        self._flush_scheduled = False
        out = self._out
        if self.closed or not out:
            return
        ws = self.ws
        if self._sender_busy or ws.paused or ws.protocol.state is not State.OPEN:
            self._wake.set()  # flow control (or closing): the sender task waits for the socket
            return
        protocol = ws.protocol
        close_now = False
        try:
            if protocol.extensions:  # (none is negotiated: compression is off) websockets frames them
                while out:
                    seq, frame = out.popleft()
                    protocol.send_text(frame.encode())
                    if self.close_after and seq == self.close_after:
                        close_now = True
                        break
                ws.send_data()
            else:
                # Frames built here and written in one call: websockets' per-frame send path cost ~5 us a frame.
                ws.send_data()  # what websockets itself has queued (a Pong) goes first
                frames = []
                while out:
                    seq, frame = out.popleft()
                    frames.append(text_frame_bytes(frame.encode()))
                    if self.close_after and seq == self.close_after:
                        close_now = True
                        break
                ws.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
        except Exception as exc:  # the socket failed under us: the connection is gone, the client resumes later
            log.info("%s: write failed (%s); closing", self.id, exc)
            self.detach()
            ws.transport.abort()
            return
        self.last_tx = self._loop.time()
        if not out:
            self._drained.set()
        if close_now:
            self.close(1000, "logout")

    def _check_queue(self) -> None:
        if len(self._out) + len(self._pending) > self.max_queue:
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer: too many frames queued; log on again to resume")

    def flush_now(self) -> bool:
        """Write what is queued now (before the socket is handed to another process); True if all of it left."""
        if self._direct:
            self._flush()
        return not self._out and not self._sender_busy

    @property
    def queued(self) -> int:
        return len(self._out)

    async def drained(self) -> None:
        """Wait until everything queued so far has been written to the socket (resend flow control)."""
        await self._drained.wait()

    async def run_sender(self) -> None:
        out = self._out
        ws = self.ws
        # Frames queued together leave in one socket write: websockets' documented way to write several frames
        # from user code is `async with connection.send_context(): connection.protocol.send_text(...)`.
        batch_send = hasattr(ws, "send_context") and hasattr(getattr(ws, "protocol", None), "send_text")
        try:
            while not self.closed:
                if not out:
                    self._drained.set()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                self._sender_busy = True
                if batch_send and len(out) > 1:
                    close_now = False
                    async with ws.send_context():
                        while out:
                            seq, frame = out.popleft()
                            ws.protocol.send_text(frame.encode())
                            if self.close_after and seq == self.close_after:
                                close_now = True
                                break
                else:
                    seq, frame = out.popleft()
                    await ws.send(frame)
                    close_now = bool(self.close_after) and seq == self.close_after
                self._sender_busy = False
                self.last_tx = self._loop.time()
                if close_now:
                    self.close(1000, "logout")
        except ConnectionClosed:
            self.closed = True
        finally:
            self._drained.set()

    # --- closing ----------------------------------------------------------------------------------------------------

    def detach(self) -> None:
        """The connection is gone: stop the sender, deliver nothing more."""
        self.closed = True
        self._wake.set()
        self._drained.set()

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._wake.set()
        self._drained.set()
        self._loop.create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self.ws.close(code, reason)
        except Exception:  # already gone: nothing to tell the client
            pass
