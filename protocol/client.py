"""An asyncio client of the gateway, for users, tools and tests: sign, send, await the ACK, iterate reports,
reconnect and resume.

It guarantees: every stream message seen once and in order across reconnects; a request gets its ACK or raises
`NakError`, and one in flight when the connection drops is resent only if the server never took it; a fresh client
learns its sequence from the server's BAD_SEQUENCE NAK; with `server_address`, reports are checked against the
server's key."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Mapping

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from core.clock import Clock, SystemClock
from protocol.codec import Decoded, FrameError, canonical, decode, encode, header, parse_frame
from protocol.envelope import Body, UserRef
from protocol.indexmaker_messages import (INDEXMAKER_REPORTS, CancelIndexOrder, GetMintInvoice, NewIndexOrder,
                                          NewQuoteRequest, WithdrawCollateral)
from protocol.reason_codes import NakCode
from protocol.session_messages import SERVER_SESSION_BODIES, Ack, Heartbeat, Logon, Logout, Nak, TestRequest
from protocol.signature import Signer, signer_matches
from protocol.wire_types import format_timestamp
from store.retry import RetryPolicy

log = logging.getLogger(__name__)


class NakError(Exception):
    """The server refused a request; `nak` is the NAK body (reason_code, reason, retry_after_ms ...)."""

    def __init__(self, nak: Nak) -> None:
        super().__init__(f"{nak.reason_code.value}: {nak.reason}")
        self.nak = nak
        self.code = nak.reason_code


class ProtocolViolation(Exception):
    """The server sent something this client must not accept (a report not signed by the server's key)."""


class GatewayClient:
    def __init__(self, url: str, key: Signer | str | bytes, chain_id: int = 8453, *,
                 server_address: str | None = None, reports: Mapping[str, type[Body]] = INDEXMAKER_REPORTS,
                 clock: Clock | None = None, next_seq: int = 1, last_seen: int | None = None,
                 sender_comp_id: str = "CLIENT", target_comp_id: str = "SERVER", ack_timeout_s: float = 10.0,
                 reconnect: bool = True, retry: RetryPolicy | None = None, idle_timeout_s: float = 35.0,
                 max_frame_bytes: int = 2**22) -> None:
        """`retry`: the pace of reconnect attempts (store/retry.py; the [store] defaults when None)."""
        self.url = url
        self.signer = key if isinstance(key, Signer) else Signer(key)
        self.user = UserRef(chain_id, self.signer.address)
        self.server_address = server_address
        self._bodies: dict[str, type[Body]] = {**SERVER_SESSION_BODIES, **reports}
        self.clock = clock or SystemClock()
        self.next_seq = next_seq
        #: Last stream seq_num processed; None: none yet, and the first Logon asks for live messages only.
        self.last_seen = last_seen
        self.comp_ids = (sender_comp_id, target_comp_id)
        self.ack_timeout_s = ack_timeout_s
        self.reconnect_enabled = reconnect
        self._reconnect_pacer = (retry or RetryPolicy.default()).pacer()  # starts over once a connection held
        self.idle_timeout_s = idle_timeout_s
        self.max_frame_bytes = max_frame_bytes
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, tuple[Body, asyncio.Future[Ack]]] = {}
        self._reports: asyncio.Queue[Decoded | BaseException] = asyncio.Queue()
        self.naks: asyncio.Queue[Nak] = asyncio.Queue()  # NAKs that match no pending request (flood, garbage)
        self._connected = asyncio.Event()
        self._closing = False
        self.duplicates = 0  # stream messages received again (resend overlap) and dropped
        self.reconnects = 0

    @property
    def address(self) -> str:
        return self.user.address

    # --- connection -------------------------------------------------------------------------------------------------

    async def connect(self) -> "GatewayClient":
        """Open the connection and log on (resuming after `last_seen` when known)."""
        self._closing = False
        await self._open_and_logon()
        return self

    async def _open_and_logon(self) -> None:
        self._ws = await websockets.connect(self.url, max_size=self.max_frame_bytes, ping_interval=None,
                                            compression=None, open_timeout=self.ack_timeout_s)
        self._reader = asyncio.get_running_loop().create_task(self._read(self._ws), name="client-reader")
        unsent: list[tuple[Body, asyncio.Future[Ack]]] = []
        for attempt in range(3):
            try:
                await self._request(Logon(last_server_seq_num=self.last_seen))
                break
            except NakError as exc:
                expected = exc.nak.expected_seq_num
                if exc.code is NakCode.BAD_SEQUENCE and expected and attempt < 2:
                    # The server knows our count better. Requests numbered from `expected` on were never taken:
                    # they are sent again after the Logon. Those below it were taken; their ACKs are in the resend.
                    for seq in sorted(s for s in self._pending if s >= expected):
                        unsent.append(self._pending.pop(seq))
                    self.next_seq = expected
                    continue
                await self._ws.close()
                raise
        self._connected.set()
        for body, future in unsent:
            if future.done():
                continue
            seq = self.next_seq
            self.next_seq += 1
            self._pending[seq] = (body, future)
            await self._ws.send(self._frame(body, seq))

    async def _reconnect(self) -> None:
        while not self._closing:
            try:
                await self._open_and_logon()
                self.reconnects += 1
                return
            except (OSError, ConnectionClosed, InvalidHandshake, asyncio.TimeoutError, NakError) as exc:
                # InvalidHandshake: a server restarting may take the connection and close it before answering
                delay = self._reconnect_pacer.next_delay()
                log.info("reconnect failed (%s); retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)  # back-off between reconnect attempts, not synchronisation

    async def drop_connection(self) -> None:
        """Close the socket without logging out (tests: what a network failure looks like to the server)."""
        if self._ws is not None:
            self._connected.clear()
            await self._ws.close()

    async def logout(self) -> None:
        try:
            await self._request(Logout())
        finally:
            await self.close()

    async def close(self) -> None:
        self._closing = True
        self._connected.clear()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await self._reader
            except Exception:
                pass

    async def __aenter__(self) -> "GatewayClient":
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- requests ---------------------------------------------------------------------------------------------------

    def _frame(self, body: Body, seq: int) -> str:
        hdr = header(body.MSG_TYPE, self.comp_ids[0], self.comp_ids[1], seq, format_timestamp(self.clock.now_ms()))
        return encode(hdr, self.user.chain_id, self.user.address, body, self.signer)

    def sign(self, body: Body, seq: int | None = None) -> str:
        """A signed frame for `body` (with the next seq_num unless given), without sending it (benchmarks, tests)."""
        return self._frame(body, self.next_seq if seq is None else seq)

    async def _request(self, body: Body) -> Ack:
        if self._ws is None:
            raise ConnectionError("not connected")
        seq = self.next_seq
        self.next_seq += 1
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._pending[seq] = (body, future)
        try:
            await self._ws.send(self._frame(body, seq))
        except ConnectionClosed:
            pass  # the reconnect sends it again unless the server took it
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.ack_timeout_s)
        finally:
            for key, (_, f) in list(self._pending.items()):  # it may have been renumbered by a resume
                if f is future:
                    del self._pending[key]

    async def request(self, body: Body) -> int:
        """Send a signed request and wait for its ACK; returns its seq_num. Raises NakError."""
        if not self._connected.is_set():
            await asyncio.wait_for(self._connected.wait(), self.ack_timeout_s)
        ack = await self._request(body)
        return ack.ref_seq_num

    async def new_order(self, client_order_id: str, symbol: str, amount: str, side: str = "1",
                        min_usdc: str | None = None) -> int:
        """Side "1" buys for `amount` USDC; "2" sells `amount` index units for at least `min_usdc` (if given)."""
        return await self.request(NewIndexOrder.model_validate(
            {"client_order_id": client_order_id, "symbol": symbol, "side": side, "amount": amount,
             "min_usdc": min_usdc}))  # None: absent on the wire (bodies are written without None fields)

    async def cancel_order(self, client_order_id: str, symbol: str, amount: str | None = None) -> int:
        fields: dict[str, Any] = {"client_order_id": client_order_id, "symbol": symbol}
        if amount is not None:
            fields["amount"] = amount
        return await self.request(CancelIndexOrder.model_validate(fields))

    async def quote(self, client_quote_id: str, symbol: str, amount: str, side: str = "1") -> int:
        return await self.request(NewQuoteRequest.model_validate(
            {"client_quote_id": client_quote_id, "symbol": symbol, "side": side, "amount": amount}))

    async def get_invoice(self, client_order_id: str) -> int:
        return await self.request(GetMintInvoice(client_order_id=client_order_id))

    async def withdraw(self, withdrawal_id: str, amount: str, destination: str, destination_chain_id: int,
                       max_fee: str | None = None) -> int:
        fields: dict[str, Any] = {"withdrawal_id": withdrawal_id, "amount": amount, "destination": destination,
                                  "destination_chain_id": destination_chain_id}
        if max_fee is not None:
            fields["max_fee"] = max_fee
        return await self.request(WithdrawCollateral.model_validate(fields))

    async def send_raw(self, frame: str | bytes) -> None:
        """Send anything (tests of the server's refusals)."""
        assert self._ws is not None
        await self._ws.send(frame)

    # --- reports ----------------------------------------------------------------------------------------------------

    async def next_report(self, timeout: float | None = None) -> Decoded:
        """The next application message of the stream (not ACKs), in order."""
        item = await asyncio.wait_for(self._reports.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    async def reports(self, timeout: float | None = None) -> AsyncIterator[Decoded]:
        while True:
            yield await self.next_report(timeout)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            while True:
                frame = await asyncio.wait_for(ws.recv(), self.idle_timeout_s)
                try:
                    self._on_frame(ws, frame)
                except FrameError as exc:  # a frame we cannot read is a server bug: log it, keep the session
                    log.error("unreadable frame from the server: %s", exc)
        except asyncio.TimeoutError:  # the server went silent (it heartbeats when idle): give up on this socket
            await ws.close()
        except ConnectionClosed:
            pass
        finally:
            if ws is self._ws:
                self._connected.clear()
                if not self._closing and self.reconnect_enabled:
                    asyncio.get_running_loop().create_task(self._reconnect(), name="client-reconnect")

    def _on_frame(self, ws: ClientConnection, frame: str | bytes) -> None:
        raw = parse_frame(frame, self.max_frame_bytes, max_containers=100_000)  # invoices list many lots
        d = decode(raw, self._bodies)
        body = d.body
        seq = d.seq_num
        if seq == 0:  # session frame
            if isinstance(body, Nak):
                pending = self._pending.get(body.ref_seq_num)
                if pending is not None and not pending[1].done():
                    pending[1].set_exception(NakError(body))
                    pending[1].exception()  # retrieved by _request; avoids "never retrieved" noise on timeouts
                else:
                    self.naks.put_nowait(body)
            elif isinstance(body, TestRequest):
                hdr = header(Heartbeat.MSG_TYPE, self.comp_ids[0], self.comp_ids[1], 0,
                             format_timestamp(self.clock.now_ms()))
                asyncio.get_running_loop().create_task(ws.send(encode(
                    hdr, self.user.chain_id, self.user.address, Heartbeat(test_req_id=body.test_req_id), None)))
            return
        if self.last_seen is not None and seq <= self.last_seen:
            self.duplicates += 1
            return
        self.last_seen = seq
        if isinstance(body, Ack):
            pending = self._pending.get(body.ref_seq_num)
            if pending is not None and not pending[1].done():
                pending[1].set_result(body)
            return
        if self.server_address is not None and not self._from_server(d):
            self._reports.put_nowait(ProtocolViolation(f"{d.msg_type} seq {seq} is not signed by the server "
                                                       f"{self.server_address}"))
            return
        self._reports.put_nowait(d)

    def _from_server(self, d: Decoded) -> bool:
        signature = d.envelope.signature
        return signature is not None and signer_matches(canonical(d.raw), signature, self.server_address or "")
