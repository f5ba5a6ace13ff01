"""The FIX/JSON websocket gateway: sessions, checks, store, ACK/NAK, and the plugin that gives messages meaning.

Every inbound frame goes through the checks listed below in order; the first that fails answers a NAK (seq_num 0)
and nothing else happens: nothing moves, nothing is stored. The hot path never waits for a socket or the store
(a Logon excepted). The gateway knows nothing of index orders: the plugin brings those bodies."""
# The checks, in order (a failure answers the NAK code named):
#   1. global + session rate   RATE_LIMITED    every frame counts, garbage too; with retry_after_ms
#   2. size                 TOO_LARGE          (frames above the hard limit cannot be read: websockets closes, 1009)
#   3. JSON                 BAD_JSON           one object in a text frame; no duplicate keys, no NaN, <= 64 containers
#   4. msg_type, fields     UNKNOWN_MSG_TYPE / BAD_FIELD (strict models; chain_id must be one we serve)
#    -- Heartbeat / TestRequest are session frames: handled here, never sequenced
#   5. session state        NOT_LOGGED_ON / ALREADY_LOGGED_ON / WRONG_USER (a session speaks for one user only)
#   6. signature            BAD_SIGNATURE      EIP-191 over the canonical body; recovered address == address
#   7. user rate (weighted)    RATE_LIMITED
#   8. sequence             BAD_SEQUENCE       expected_seq_num says what is expected (replays land here)
#   9. timestamp            STALE_TIMESTAMP    outside max_clock_skew_ms
#  10. Logon only           TOO_MANY_SESSIONS / BAD_RESUME / RESUME_TOO_OLD
#  11. plugin precheck      (the plugin's code, e.g. UNSUPPORTED)
#  12. store backlog        SERVER_BUSY
#  13. accepted: the request and its ACK are queued for the store (group commit); once durable the ACK goes to the
#      user's sessions and the request to the plugin. The next frame is read meanwhile: the hot path never waits for
#      a socket or the store, except a Logon, which reads the user's state first.

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from http import HTTPStatus
from typing import Any, Callable, Coroutine

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.frames import DATA_OPCODES, Opcode

from core.clock import Clock, SystemClock
from protocol.codec import Decoded, FrameError, ack_frame, canonical, decode, encode, header, parse_frame, peek
from protocol.envelope import Body, UserRef
from core.config import GatewayConfig
from protocol.group_commit import GroupCommitter
from protocol.plugin import Inbound, Plugin
from protocol.rate_limit import TokenBucket
from protocol.reason_codes import NakCode
from protocol.report_store import ReportStore, StreamWrite
from protocol.session import CLOSE_IDLE, CLOSE_LOGON_TIMEOUT, CLOSE_RESEND_FAILED, Session
from protocol.session_messages import (CLIENT_SESSION_BODIES, SESSION_FRAME_TYPES, Heartbeat, Logon, Logout, Nak,
                                       TestRequest)
from protocol.signature import SignatureError, Signer, address_hex_of, recover_public_key
from protocol.user_stream import UserStream
from protocol.wire_types import ZERO_ADDRESS, format_timestamp, timestamp_ms
from store.retry import RetryPolicy

log = logging.getLogger(__name__)

_COMP_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def _comp_id(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 32 and set(value) <= _COMP_ID_CHARS else None


class _GatewayConnection(ServerConnection):
    """The gateway's websockets connection, with direct frames: once the session is logged on and nothing waits in the
    queue, a complete text frame goes to the gateway from `data_received` itself (a task wake per frame cost ~5 us of
    the ~180 us an order costs). Anything else is queued, and the handler turns direct delivery back on once caught
    up, so frames keep their order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direct: Callable[[str], None] | None = None

    def queue_empty(self) -> bool:
        return not len(self.recv_messages.frames)

    def process_event(self, event: Any) -> None:
        direct = self.direct
        if direct is not None and self.request is not None and event.opcode in DATA_OPCODES:
            if event.opcode is Opcode.TEXT and event.fin and self.queue_empty():
                try:
                    text = str(event.data, "utf-8")
                except UnicodeDecodeError:
                    pass  # websockets' queue fails the connection (1007), as for any client
                else:
                    direct(text)
                    return
            self.direct = None  # queued from here on, until the handler has caught up
        super().process_event(event)


class GatewayServer:
    def __init__(self, plugin: Plugin, store: ReportStore, signer: Signer, config: GatewayConfig | None = None,
                 clock: Clock | None = None, retry: RetryPolicy | None = None) -> None:
        """`retry`: how a store that fails is waited out (the [store] policy when None)."""
        self.config = cfg = config or GatewayConfig()
        self.plugin = plugin
        self.store = store
        self.signer = signer
        self.clock = clock or SystemClock()
        clash = set(plugin.requests) & set(CLIENT_SESSION_BODIES)
        if clash:
            raise ValueError(f"plugin redefines session messages {sorted(clash)}")
        self._bodies: dict[str, type[Body]] = {**CLIENT_SESSION_BODIES, **plugin.requests}
        self._weights = {**plugin.message_weights, **cfg.message_weights}
        for name, weight in self._weights.items():
            if not 1 <= weight <= cfg.user_burst:
                raise ValueError(f"weight of {name} must be in [1, user_burst={cfg.user_burst}], got {weight}")
        self._unsigned_ok = frozenset(plugin.unsigned_ok) if cfg.allow_unsigned_quotes else frozenset()
        self.retry = retry or RetryPolicy.default()
        self.committer = GroupCommitter(store, max_batch=cfg.commit_max_batch,
                                        write_timeout_s=cfg.commit_write_timeout_s, retry=self.retry)
        self._users: dict[str, UserStream] = {}
        self._sessions: set[Session] = set()
        self._global = TokenBucket(cfg.global_rate_per_s, cfg.global_burst, self.clock.now_ms())
        self._max_connections = cfg.max_connections
        self._loop_time: Callable[[], float] = lambda: asyncio.get_running_loop().time()
        self._dispatch_queue: list[Inbound] = []
        self._dispatch_wake = asyncio.Event()
        self._dispatch_idle = asyncio.Event()
        self._dispatch_idle.set()
        self._tasks: list[asyncio.Task[Any]] = []
        self._server: Server | None = None
        self._test_req_ids = itertools.count(1)
        self.port: int | None = None
        self._changed = asyncio.Condition()  # notified when sessions open, log on or close
        self.stats = {"frames": 0, "accepted": 0, "naks": 0, "emitted": 0}
        self.nak_counts: dict[str, int] = {}
        plugin.attach(self)

    # --- lifecycle --------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{self.config.path}"

    async def start(self) -> "GatewayServer":
        cfg = self.config
        if not cfg.host:  # None would listen on every interface: where to listen is the configuration's choice
            raise ValueError("gateway.host: no address to listen on (the launcher fills in the loopback)")
        loop = asyncio.get_running_loop()
        self.committer.start()
        self._tasks.append(loop.create_task(self._dispatcher(), name="gateway-dispatch"))
        self._tasks.append(loop.create_task(self._housekeeping(), name="gateway-housekeeping"))
        self._server = await serve(self._handler, cfg.host, cfg.port, max_size=cfg.hard_max_frame_bytes,
                                   max_queue=64, ping_interval=None, compression=None,
                                   process_request=self._process_request, create_connection=_GatewayConnection)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        log.info("gateway listening on %s", self.url)
        return self

    async def stop(self) -> None:
        """Stop accepting, close every session, write what is queued, hand the plugin what was accepted."""
        if self._server is not None:
            self._server.close(close_connections=False)
        for session in list(self._sessions):
            session.close(1001, "server shutting down")
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        await self.committer.stop(self.config.commit_write_timeout_s * 2)
        try:
            await asyncio.wait_for(self._dispatch_idle.wait(), self.config.commit_write_timeout_s)
        except asyncio.TimeoutError:
            log.error("stopping while the plugin still holds a batch")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.plugin.close()

    async def __aenter__(self) -> "GatewayServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def flush(self) -> None:
        """Wait until every write queued so far is stored and every accepted request was handed to the plugin."""
        await self.committer.flush()
        await self._dispatch_idle.wait()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until `predicate()` holds, re-checked whenever a session opens, logs on or closes."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path != self.config.path:
            return connection.respond(HTTPStatus.NOT_FOUND, f"the FIX/JSON endpoint is {self.config.path}\n")
        if len(self._sessions) >= self._max_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        return None

    # --- connections ------------------------------------------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        session = Session(ws, TokenBucket(cfg.session_rate_per_s, cfg.session_burst, self.clock.now_ms()),
                          cfg.max_outbound_queue, loop.time())
        self._sessions.add(session)
        self._notify()
        sender = loop.create_task(session.run_sender(), name=f"send-{session.id}")
        gateway_ws = ws if isinstance(ws, _GatewayConnection) else None
        direct = functools.partial(self._direct_frame, session)
        try:
            async for frame in ws:
                if session.closed:
                    break
                session.received += 1
                session.last_rx = loop.time()
                logon = self._on_frame(session, frame)
                if logon is not None:
                    await logon
                if session.closed:
                    break
                if gateway_ws is not None and session.user is not None and gateway_ws.queue_empty():
                    gateway_ws.direct = direct  # caught up: the next frames are taken as they are read
        except ConnectionClosed:
            pass
        finally:
            session.detach()
            self._sessions.discard(session)
            if session.user is not None:
                try:
                    session.user.sessions.remove(session)
                except ValueError:
                    pass
            self._notify()
            try:
                await asyncio.wait_for(sender, 1.0)
            except (asyncio.TimeoutError, Exception):
                sender.cancel()

    def _direct_frame(self, session: Session, frame: str) -> None:
        """A frame taken as it was read (see _GatewayConnection): the session is logged on, so no frame can need
        to wait for anything (only a first Logon does, and a logged-on session's Logon is refused at once)."""
        if session.closed:
            return
        session.received += 1
        session.last_rx = self._loop_time()
        pending = self._on_frame(session, frame)
        if pending is not None:  # pragma: no cover  (see the docstring)
            pending.close()
            log.error("%s: a frame needing to wait was taken directly; closing the session", session.id)
            session.close(1011, "internal error")

    def _on_frame(self, session: Session, frame: str | bytes) -> Coroutine[Any, Any, None] | None:
        self.stats["frames"] += 1
        try:
            return self._take(session, frame)
        except FrameError as exc:
            self._nak(session, exc)
        except Exception:
            log.exception("%s: frame handling failed", session.id)
            self._nak(session, FrameError(NakCode.INTERNAL_ERROR, "internal error; the frame was not taken"))
        return None

    # --- the pipeline -----------------------------------------------------------------------------------------------

    def _take(self, session: Session, frame: str | bytes) -> Coroutine[Any, Any, None] | None:
        cfg = self.config
        now = self.clock.now_ms()
        wait = self._global.take(1, now) or session.bucket.take(1, now)  # every frame counts, garbage too
        if wait:
            seq, chain_id, address = 0, 0, ZERO_ADDRESS
            try:  # name the refused frame if it can be read, so that the client can match the NAK
                seq, chain_id, address = peek(parse_frame(frame, cfg.max_frame_bytes))
            except FrameError:
                pass
            raise FrameError(NakCode.RATE_LIMITED, f"too many messages; retry in {wait} ms", seq, chain_id, address,
                             retry_after_ms=wait)
        raw = parse_frame(frame, cfg.max_frame_bytes)
        d = decode(raw, self._bodies)
        env = d.envelope
        msg_type = env.standard_header.msg_type
        if env.chain_id not in cfg.allowed_chain_ids:
            raise self._error(d, NakCode.BAD_FIELD, f"chain_id {env.chain_id} is not served here "
                                                    f"(served: {sorted(cfg.allowed_chain_ids)})")
        user = session.user
        if user is not None and (env.address != user.ref.address or env.chain_id != user.ref.chain_id):
            raise self._error(d, NakCode.WRONG_USER, f"this session is logged on as {user.ref.chain_id}:"
                                                     f"{user.ref.address}")
        if msg_type in SESSION_FRAME_TYPES:
            self._session_frame(session, d)
            return None
        if user is None and msg_type != Logon.MSG_TYPE:
            raise self._error(d, NakCode.NOT_LOGGED_ON, "send a signed Logon first")
        if user is not None and msg_type == Logon.MSG_TYPE:
            raise self._error(d, NakCode.ALREADY_LOGGED_ON, "this session is already logged on")
        self._authenticate(d, session)
        if msg_type == Logon.MSG_TYPE:
            return self._logon_safely(session, d, frame)  # type: ignore[arg-type]
        self._accept(session, user, d, frame, now)  # type: ignore[arg-type]
        return None

    def _authenticate(self, d: Decoded, session: Session) -> None:
        env = d.envelope
        signature = env.signature
        if signature is None:
            if env.standard_header.msg_type in self._unsigned_ok and session.user is not None:
                return  # the session's Logon proved the identity; quotes only, and only if configured
            raise self._error(d, NakCode.BAD_SIGNATURE, "message is not signed (standard_trailer.signature)")
        try:
            public_key = recover_public_key(canonical(d.raw), signature)
        except SignatureError as exc:
            raise self._error(d, NakCode.BAD_SIGNATURE, str(exc)) from None
        if address_hex_of(public_key) != env.address[2:].lower():
            raise self._error(d, NakCode.BAD_SIGNATURE, "signature does not match address (signed by another key, "
                                                        "or the message was changed after signing)")
        trailer = env.standard_trailer
        if trailer is not None and trailer.public_key and trailer.public_key[0][2:].lower() != public_key.hex():
            raise self._error(d, NakCode.BAD_SIGNATURE, "public_key is not the signer's key")

    def _check_sequenced(self, user: UserStream, d: Decoded, now: int) -> None:
        """Steps 7-9, shared by Logon and every other request."""
        hdr = d.envelope.standard_header
        wait = user.bucket.take(self._weights.get(hdr.msg_type, 1), now)
        if wait:
            raise self._error(d, NakCode.RATE_LIMITED, f"user rate limit; retry in {wait} ms", retry_after_ms=wait)
        expected = user.in_seq + 1
        if hdr.seq_num != expected:
            raise self._error(d, NakCode.BAD_SEQUENCE, f"seq_num {hdr.seq_num}, expected {expected}",
                              expected_seq_num=expected)
        skew = timestamp_ms(hdr.timestamp) - now
        if abs(skew) > self.config.max_clock_skew_ms:
            raise self._error(d, NakCode.STALE_TIMESTAMP,
                              f"timestamp is {skew} ms off the server clock (allowed +-{self.config.max_clock_skew_ms})")

    def _accept(self, session: Session, user: UserStream, d: Decoded, frame: str, now: int) -> None:
        self._check_sequenced(user, d, now)
        body = d.body
        if not isinstance(body, Logout):
            refusal = self.plugin.precheck(user.ref, body)
            if refusal is not None:
                raise self._error(d, refusal.code, refusal.text)
        seq, ack_seq, ack = self._sequence_and_ack(user, d, now)
        self.stats["accepted"] += 1
        if isinstance(body, Logout):
            session.close_after = ack_seq
            self.committer.submit(StreamWrite(user.key, (seq, frame), (ack_seq, ack)),
                                  lambda: user.publish(ack_seq, ack))
            return
        inbound = Inbound(user.ref, seq, body, now)

        def durable() -> None:
            user.publish(ack_seq, ack)
            self._dispatch(inbound)

        self.committer.submit(StreamWrite(user.key, (seq, frame), (ack_seq, ack)), durable)

    def _sequence_and_ack(self, user: UserStream, d: Decoded, now: int) -> tuple[int, int, str]:
        """A request past its checks (the store's backlog last): its seq_num becomes the user's inbound state and
        its ACK takes the next outbound one. Returns (seq_num, ACK seq_num, ACK frame)."""
        self._check_backlog(d)
        hdr = d.envelope.standard_header
        seq = hdr.seq_num
        user.in_seq = seq
        user.remember_comp_ids(hdr.sender_comp_id, hdr.target_comp_id)
        return (seq, *self._ack(user, seq, now))

    def _check_backlog(self, d: Decoded) -> None:
        if self.committer.pending >= self.config.max_pending_writes:
            raise self._error(d, NakCode.SERVER_BUSY, "the store is behind; nothing was taken", retry_after_ms=1000)

    def _ack(self, user: UserStream, ref_seq: int, now: int) -> tuple[int, str]:
        """The ACK frame, from a template: it is the one frame sent for every request, and what `encode` would
        produce for Ack(ref_seq_num) (tests/unit/test_protocol_codec.py checks they are the same)."""
        ack_seq = user.next_out()
        return ack_seq, ack_frame(user.server_comp_id, user.client_comp_id, ack_seq, format_timestamp(now),
                                  user.ref.chain_id, user.ref.address, ref_seq)

    # --- logon ------------------------------------------------------------------------------------------------------

    async def _logon_safely(self, session: Session, d: Decoded, frame: str) -> None:
        try:
            await self._logon(session, d, frame)
        except FrameError as exc:
            self._nak(session, exc)
        except Exception:
            log.exception("%s: logon failed", session.id)
            self._nak(session, self._error(d, NakCode.INTERNAL_ERROR, "internal error; the logon was not taken"))

    async def _logon(self, session: Session, d: Decoded, frame: str) -> None:
        cfg = self.config
        user = await self._loaded_user(d)
        resume_from = d.body.last_server_seq_num  # type: ignore[attr-defined]
        # Read before the checks: nothing awaits between them and the session's registration.
        first_kept = await self.store.first_outbound(user.key) if resume_from is not None else 0
        if session.closed:
            return
        now = self.clock.now_ms()
        if len(user.sessions) >= cfg.max_sessions_per_address:
            raise self._error(d, NakCode.TOO_MANY_SESSIONS,
                              f"{len(user.sessions)} sessions open for this user, limit {cfg.max_sessions_per_address}")
        self._check_sequenced(user, d, now)
        if resume_from is not None and resume_from > user.out_seq:
            raise self._error(d, NakCode.BAD_RESUME, f"last_server_seq_num {resume_from} is beyond the last message "
                                                     f"sent to this user ({user.out_seq})")
        if resume_from is not None and first_kept and resume_from + 1 < first_kept:
            raise self._error(d, NakCode.RESUME_TOO_OLD,
                              f"messages before seq {first_kept} are no longer kept; log on with last_server_seq_num "
                              f">= {first_kept - 1}, or without it for live messages only")
        seq, ack_seq, ack = self._sequence_and_ack(user, d, now)
        session.user = user
        user.sessions.append(session)
        self._notify()
        session.cursor = ack_seq if resume_from is None else resume_from + 1
        ack_durable = asyncio.Event()

        def durable() -> None:
            user.publish(ack_seq, ack)
            ack_durable.set()

        self.stats["accepted"] += 1
        self.committer.submit(StreamWrite(user.key, (seq, frame), (ack_seq, ack)), durable)
        if session.cursor < ack_seq:
            session.resending = True
            asyncio.get_running_loop().create_task(self._resend(session, user, ack_seq, ack_durable),
                                                   name=f"resend-{session.id}")

    async def _resend(self, session: Session, user: UserStream, until: int, ack_durable: asyncio.Event) -> None:
        """Stream messages from the session's cursor up to (not including) the Logon's ACK, from the store, in pages;
        live messages meanwhile wait in the session until the gap before them is filled."""
        try:
            after = session.cursor - 1
            while after < until - 1 and not session.closed:
                rows = await self.store.outbound_after(user.key, after, self.config.resend_page)
                rows = [row for row in rows if row[0] < until]
                if not rows:
                    break
                for seq, frame in rows:
                    session.deliver(seq, frame)
                after = rows[-1][0]
                await session.drained()  # flow control: never more than a page queued for a slow reader
            await ack_durable.wait()
            session.skip_gap(until)
        except Exception:
            log.exception("%s: resend failed", session.id)
            session.close(CLOSE_RESEND_FAILED, "resend failed; log on again")
        finally:
            session.resending = False

    def _user(self, ref: UserRef) -> UserStream:
        """The user's stream state; the first time the user is seen, it is created and loaded from the store
        (`loading` is set until then; stream messages emitted meanwhile wait in `waiting`)."""
        user = self._users.get(ref.key)
        if user is None:
            cfg = self.config
            user = UserStream(ref, TokenBucket(cfg.user_weight_per_s, cfg.user_burst, self.clock.now_ms()),
                              cfg.server_comp_id)
            loop = asyncio.get_running_loop()
            user.loading = loop.create_future()
            self._users[ref.key] = user
            loop.create_task(self._load(user), name=f"load-{ref.key}")
        return user

    async def _load(self, user: UserStream) -> None:
        pacer = self.retry.pacer()
        while True:
            try:
                user.in_seq, user.out_seq = await self.store.last_seqs(user.key)
                break
            except Exception as exc:
                delay = pacer.next_delay()
                log.warning("loading %s from the store failed (%s); retrying in %.2f s", user.key, exc, delay)
                await asyncio.sleep(delay)  # back-off before retrying the store, not synchronisation
        loading, user.loading = user.loading, None
        if loading is not None:
            loading.set_result(None)
        waiting, user.waiting = user.waiting, []
        for body in waiting:
            self._emit_now(user, body)

    async def _loaded_user(self, d: Decoded) -> UserStream:
        user = self._user(d.envelope.user)
        if user.loading is not None:
            try:
                await asyncio.wait_for(asyncio.shield(user.loading), self.config.commit_write_timeout_s)
            except asyncio.TimeoutError:
                raise self._error(d, NakCode.SERVER_BUSY, "the store does not answer; nothing was taken",
                                  retry_after_ms=1000) from None
        return user

    # --- session frames and NAKs ------------------------------------------------------------------------------------

    def _session_frame(self, session: Session, d: Decoded) -> None:
        if d.seq_num != 0:
            raise self._error(d, NakCode.BAD_FIELD, "Heartbeat and TestRequest are session frames: seq_num must be 0")
        body = d.body
        if isinstance(body, Heartbeat):
            if body.test_req_id is not None and body.test_req_id == session.test_req_id:
                session.test_req_id = None
        elif isinstance(body, TestRequest):
            self._send_session_frame(session, d.envelope.chain_id, d.envelope.address,
                                     Heartbeat(test_req_id=body.test_req_id))

    def _send_session_frame(self, session: Session, chain_id: int, address: str, body: Body,
                            comp_ids: tuple[str, str] | None = None) -> None:
        user = session.user
        if comp_ids is None:
            comp_ids = ((user.server_comp_id, user.client_comp_id) if user is not None
                        else (self.config.server_comp_id, "CLIENT"))
        hdr = header(body.MSG_TYPE, comp_ids[0], comp_ids[1], 0, format_timestamp(self.clock.now_ms()))
        session.send_session_frame(encode(hdr, chain_id, address, body, None))

    def _error(self, d: Decoded, code: NakCode, text: str, **extra: int) -> FrameError:
        env = d.envelope
        hdr = env.standard_header
        error = FrameError(code, text, hdr.seq_num, env.chain_id, env.address, **extra)
        error.comp_ids = (hdr.target_comp_id, hdr.sender_comp_id)
        return error

    def _nak(self, session: Session, exc: FrameError) -> None:
        self.stats["naks"] += 1
        self.nak_counts[exc.code.value] = self.nak_counts.get(exc.code.value, 0) + 1
        chain_id, address = exc.chain_id, exc.address
        if address == ZERO_ADDRESS and session.user is not None:
            chain_id, address = session.user.ref.chain_id, session.user.ref.address
        nak = Nak(ref_seq_num=exc.seq_num, reason_code=exc.code, reason=exc.text, retry_after_ms=exc.retry_after_ms,
                  expected_seq_num=exc.expected_seq_num)
        self._send_session_frame(session, chain_id, address, nak, exc.comp_ids)

    # --- outbox (the plugin's side) ---------------------------------------------------------------------------------

    def emit(self, user: UserRef, body: Body) -> None:
        stream = self._users.get(user.key)
        if stream is None:
            stream = self._user(user)
        if stream.loading is not None:
            stream.waiting.append(body)
            return
        self._emit_now(stream, body)

    def _emit_now(self, user: UserStream, body: Body) -> None:
        seq = user.next_out()
        hdr = header(body.MSG_TYPE, user.server_comp_id, user.client_comp_id, seq,
                     format_timestamp(self.clock.now_ms()))
        frame = encode(hdr, user.ref.chain_id, user.ref.address, body, self.signer)
        self.stats["emitted"] += 1
        self.committer.submit(StreamWrite(user.key, None, (seq, frame)), lambda: user.publish(seq, frame))

    # --- plugin dispatch --------------------------------------------------------------------------------------------

    def _dispatch(self, inbound: Inbound) -> None:
        self._dispatch_queue.append(inbound)
        self._dispatch_idle.clear()
        self._dispatch_wake.set()

    async def _dispatcher(self) -> None:
        while True:
            if not self._dispatch_queue:
                self._dispatch_idle.set()
                self._dispatch_wake.clear()
                await self._dispatch_wake.wait()
                continue
            chunk = self.config.dispatch_chunk
            batch, self._dispatch_queue = self._dispatch_queue[:chunk], self._dispatch_queue[chunk:]
            try:
                await self.plugin.on_requests(batch)
            except Exception:
                log.exception("plugin failed on a batch of %d requests", len(batch))
            if self._dispatch_queue:
                await asyncio.sleep(0)  # let reads, ACKs and store replies in before the next chunk

    # --- heartbeats and timeouts ------------------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        tick = max(0.005, min(cfg.heartbeat_interval_ms, cfg.logon_timeout_ms) / 4000)
        heartbeat, idle_timeout, logon_timeout = (cfg.heartbeat_interval_ms / 1000, cfg.idle_timeout_ms / 1000,
                                                  cfg.logon_timeout_ms / 1000)
        while True:
            await asyncio.sleep(tick)  # a periodic timer, not synchronisation
            now = loop.time()
            for session in list(self._sessions):
                if session.closed:
                    continue
                user = session.user
                if user is None and now - session.opened > logon_timeout:
                    session.close(CLOSE_LOGON_TIMEOUT, "no Logon in time")
                    continue
                silent = now - session.last_rx
                if silent > idle_timeout:
                    session.close(CLOSE_IDLE, "nothing heard in time (idle timeout)")
                    continue
                chain_id, address = (user.ref.chain_id, user.ref.address) if user else (0, ZERO_ADDRESS)
                if silent > heartbeat and session.test_req_id is None and user is not None:
                    session.test_req_id = f"T-{next(self._test_req_ids)}"
                    self._send_session_frame(session, chain_id, address, TestRequest(test_req_id=session.test_req_id))
                elif now - session.last_tx > heartbeat and session.queued == 0 and user is not None:
                    self._send_session_frame(session, chain_id, address, Heartbeat())
                    session.last_tx = now

    # --- views ------------------------------------------------------------------------------------------------------

    def inspect(self) -> dict[str, Any]:
        """Plain data for operators and notebooks."""
        return {
            "url": self.url if self.port else None,
            "sessions": len(self._sessions),
            "logged_on": sum(1 for s in self._sessions if s.user is not None),
            "users": len(self._users),
            "pending_writes": self.committer.pending,
            "commit_batches": self.committer.batches,
            "commit_writes": self.committer.writes,
            "commit_failures": self.committer.failures,
            "commit_write_ms_avg": round(1000 * self.committer.write_seconds / max(1, self.committer.batches), 3),
            "commit_write_ms_max": round(1000 * self.committer.max_write_seconds, 3),
            **self.stats,
            "naks_by_code": dict(self.nak_counts),
        }

