"""`monitor`: polls every actor's inspect() every few seconds, turns the answers into metrics and a health verdict.

A poller because the actors already count in plain integers: a few calls per interval cost nothing next to a
metric call per order on the hot paths. The meaning of the snapshots is actors/system_view.py's; a reserves
difference makes the verdict unhealthy. An actor silent past `inspect_timeout_s` is down for that poll. No durable
state: a restart starts new counter series."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import ray

from actors.logs import setup_logging
from actors.metrics import Metrics
from actors.reserves_probe import ReservesOptions, check_reserves
from actors.system_view import HealthLimits, Observation, SystemView
from core.reserves import ReserveRow, problems

MONITOR_NAME = "monitor"


def _reason(exc: BaseException) -> str:
    """One short line for why an actor did not answer (a RayTaskError's text holds the remote traceback: its
    cause, the exception raised in the actor, is what matters)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


class _ReservesVerdict:
    """The last reserves check's outcome, as /health, `status` and inspect() show it."""

    def __init__(self) -> None:
        self.checks = 0
        self.rows: list[ReserveRow] = []
        self.problems: list[str] = []
        self.checked_ms: int | None = None
        self.took_ms: float | None = None
        self.last_error: str | None = None

    def checked(self, rows: list[ReserveRow], now_ms: int, took_s: float) -> None:
        self.checks += 1
        self.rows, self.problems, self.checked_ms = rows, problems(rows), now_ms
        self.took_ms, self.last_error = round(took_s * 1000, 1), None

    def failed(self, reason: str) -> None:
        """A check that could not read every part: the last verdict stands (a difference is not forgotten because
        a part is restarting), with the reason beside it."""
        self.checks += 1
        self.last_error = reason

    def view(self) -> dict[str, Any]:
        return {"checks": self.checks, "checked_ms": self.checked_ms, "took_ms": self.took_ms,
                "problems": list(self.problems), "last_error": self.last_error,
                "rows": [r.to_dict() for r in self.rows]}


@dataclass(frozen=True)
class MonitorOptions:
    #: The actors to poll, by name (the launcher passes every actor it started).
    actors: tuple[str, ...]
    namespace: str | None = None
    name: str = MONITOR_NAME
    interval_s: float = 5.0
    inspect_timeout_s: float = 3.0
    limits: HealthLimits = field(default_factory=HealthLimits)
    #: Record through ray.util.metrics (off: values are kept in memory only).
    export: bool = True
    #: The reserves check every `reserves.interval_s` (None, or an interval of 0: no check).
    reserves: ReservesOptions | None = None
    #: "paper" in paper mode: the indexmaker_paper_mode gauge says so from the first scrape.
    trading_mode: str | None = None

    @classmethod
    def from_settings(cls, settings: Any, actors: tuple[str, ...], **overrides: Any) -> "MonitorOptions":
        m = settings.monitor
        limits = HealthLimits(max_book_lag_ms=m.max_book_lag_ms, max_stale_symbols=m.max_stale_symbols,
                              max_undelivered_reports=m.max_undelivered_reports,
                              max_pending_writes=m.max_pending_writes, max_solver_outbox=m.max_solver_outbox)
        return cls(actors, interval_s=m.interval_s, inspect_timeout_s=m.inspect_timeout_s, limits=limits,
                   **overrides)

    @property
    def stale_after_ms(self) -> int:
        """A verdict older than this is no verdict: the monitor itself is stuck or gone."""
        return int(1000 * (3 * self.interval_s + self.inspect_timeout_s))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class Monitor:
    def __init__(self, options: MonitorOptions) -> None:
        setup_logging(options.name)
        from loguru import logger

        self.log = logger.bind(actor=options.name)
        self.o = options
        self.metrics = Metrics(export=options.export)
        self.metrics.set("indexmaker_paper_mode", 1 if options.trading_mode == "paper" else 0)
        if options.trading_mode == "paper":
            self.log.info("PAPER mode: orders are matched by the paper exchange, nothing is sent to the exchange")
        self.view = SystemView(self.metrics, options.limits)
        self._handles: dict[str, Any] = {}
        self.polls = 0
        self._logged_problems: list[str] = []
        self.last_poll_ms: int | None = None
        self.last_poll_s: float | None = None
        self._polled = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._reserves_task: asyncio.Task | None = None
        self.reserves = _ReservesVerdict()
        try:
            asyncio.get_running_loop()
            self._task = asyncio.ensure_future(self._run())  # on creation and on every restart
            self._start_reserves()
        except RuntimeError:
            pass

    async def start(self) -> bool:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        self._start_reserves()
        return True

    async def stop(self) -> None:
        for task in (self._task, self._reserves_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def _start_reserves(self) -> None:
        r = self.o.reserves
        if r is not None and r.interval_s > 0 and (self._reserves_task is None or self._reserves_task.done()):
            self._reserves_task = asyncio.ensure_future(self._reserves_loop(r))

    async def _reserves_loop(self, r: ReservesOptions) -> None:
        while True:
            await self.check_reserves_now()
            await asyncio.sleep(r.interval_s)  # the checking period

    async def _call(self, name: str, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._handle(name), method).remote(*args)
        except Exception:
            self._handles.pop(name, None)  # restarted or gone: a fresh handle next time
            raise

    async def check_reserves_now(self) -> dict[str, Any]:
        """One reserves check (actors/reserves_probe.py); its verdict is what /health shows until the next."""
        r = self.o.reserves
        if r is None:
            return self.reserves.view()
        started = time.perf_counter()
        try:
            rows, _ = await check_reserves(self._call, r)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  (a part not answering: no verdict this time; liveness says why)
            self.reserves.failed(_reason(exc))
            self.log.warning("reserves check failed: {}", self.reserves.last_error)
        else:
            was = self.reserves.problems
            self.reserves.checked(rows, int(time.time() * 1000), time.perf_counter() - started)
            if self.reserves.problems != was:
                if self.reserves.problems:
                    self.log.warning("reserves differ: {}", "; ".join(self.reserves.problems))
                else:
                    self.log.info("reserves reconciled again")
        async with self._polled:
            self._polled.notify_all()
        return self.reserves.view()

    async def wait_reserves_checks(self, count: int, timeout_s: float = 30.0) -> bool:
        """True once at least `count` reserves checks have ended (tests)."""
        async with self._polled:
            try:
                await asyncio.wait_for(self._polled.wait_for(lambda: self.reserves.checks >= count), timeout_s)
            except asyncio.TimeoutError:
                return False
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (a bug in one poll must not stop the next)
                self.log.exception("poll failed: {}", exc)
            await asyncio.sleep(self.o.interval_s)  # the polling period

    def _handle(self, name: str) -> Any:
        h = self._handles.get(name)
        if h is None:
            h = ray.get_actor(name, namespace=self.o.namespace)
            self._handles[name] = h
        return h

    async def _observe(self, name: str) -> Observation:
        started = time.perf_counter()
        try:
            data = await asyncio.wait_for(self._handle(name).inspect.remote(), self.o.inspect_timeout_s)
        except asyncio.TimeoutError:
            return Observation(None, time.perf_counter() - started, f"no answer in {self.o.inspect_timeout_s} s")
        except ValueError:  # ray.get_actor: no such actor (not started yet, or killed for good)
            return Observation(None, time.perf_counter() - started, "not found")
        except Exception as exc:  # noqa: BLE001  (RayActorError: dead or restarting; an error in inspect())
            self._handles.pop(name, None)
            return Observation(None, time.perf_counter() - started, _reason(exc))
        return Observation(data, time.perf_counter() - started)

    async def poll(self) -> dict[str, Any]:
        """Poll every actor once (concurrently), update the metrics; returns the health verdict."""
        started = time.perf_counter()
        names = list(self.o.actors)
        observations = await asyncio.gather(*(self._observe(n) for n in names))
        now_ms = int(time.time() * 1000)
        health = self.view.update(dict(zip(names, observations)), now_ms)
        self.polls += 1
        self.last_poll_ms = now_ms
        self.last_poll_s = time.perf_counter() - started
        if health["problems"] != self._logged_problems:  # a line when the verdict changes, not every poll
            if health["problems"]:
                self.log.warning("unhealthy: {}", "; ".join(health["problems"])[:2000])
            else:
                self.log.info("healthy again")
            self._logged_problems = list(health["problems"])
        async with self._polled:
            self._polled.notify_all()
        return health

    async def wait_polls(self, count: int, timeout_s: float = 30.0) -> bool:
        """True once at least `count` polls have completed (tests; the launcher)."""
        async with self._polled:
            try:
                await asyncio.wait_for(self._polled.wait_for(lambda: self.polls >= count), timeout_s)
            except asyncio.TimeoutError:
                return False
        return True

    async def health(self) -> dict[str, Any]:
        """The last verdict, with its age; not healthy before the first poll or once it is too old."""
        now_ms = int(time.time() * 1000)
        last = self.view.last_health
        if last is None:
            return {"status": "starting", "healthy": False, "checked_ms": None, "age_ms": None,
                    "problems": ["monitor: no poll yet"], "actors": {}, "lags": {}}
        age = now_ms - last["checked_ms"]
        out = {**last, "age_ms": age, "problems": list(last["problems"])}
        if age > self.o.stale_after_ms:
            out.update(status="unhealthy", healthy=False)
            out["problems"].append(f"monitor: last poll {age} ms ago (limit {self.o.stale_after_ms} ms)")
        if self.reserves.problems:  # the last reserves check found a difference: named, asset by asset
            out.update(status="unhealthy", healthy=False)
            out["problems"] += self.reserves.problems
        if self.o.reserves is not None:
            out["reserves"] = self.reserves.view()
        return out

    async def inspect(self) -> dict[str, Any]:
        return {"actors": list(self.o.actors), "interval_s": self.o.interval_s, "polls": self.polls,
                # the WorkerId label of this monitor's series on the metrics endpoint (a restart starts new ones)
                "worker_id": ray.get_runtime_context().get_worker_id(),
                "last_poll_ms": self.last_poll_ms,
                "last_poll_ms_taken": None if self.last_poll_s is None else round(self.last_poll_s * 1000, 3),
                "healthy": None if self.view.last_health is None else (self.view.last_health["healthy"]
                                                                        and not self.reserves.problems),
                "metrics": self.metrics.snapshot(), "reserves": self.reserves.view()}


def start_monitor(options: MonitorOptions, *, detached: bool = False) -> Any:
    """Create (or get) the named monitor; it starts polling at once."""
    opts: dict[str, Any] = {"name": options.name, "get_if_exists": True}
    if options.namespace is not None:
        opts["namespace"] = options.namespace
    if detached:
        opts["lifetime"] = "detached"
    return Monitor.options(**opts).remote(options)
