"""What the actors' inspect() snapshots mean for an operator: metric values and the health verdict.

Pure (no Ray, no I/O). Metrics come from the difference between two polls of the actors' own counts, one call per
actor per poll instead of one per order; a count that went DOWN means a restart, and the new value is the
increment. Durations come from the actors' timestamps, observed once per id, never estimated from polling."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from actors.metrics import Metrics
from core.circuit_breaker import ACCOUNT, describe

#: Route stages after which a route does not move any more (core.collateral_route.FINAL_STAGES, by value).
FINAL_ROUTE_STAGES = ("credited", "failed")
#: The gateway's counts (actors/gateway.py) behind indexmaker_index_orders{outcome}.
INDEX_ORDER_OUTCOMES = {"orders_accepted": "accepted", "orders_rejected": "rejected", "orders_failed": "failed",
                        "orders_filled": "filled", "orders_cancelled": "cancelled", "invoices": "minted"}
#: The sender's counts behind indexmaker_exchange_orders{outcome}.
EXCHANGE_ORDER_OUTCOMES = ("sent", "answered", "rejected", "rate_limited", "unknown", "resent")


@dataclass(frozen=True)
class HealthLimits:
    """Beyond these the system is unhealthy (/health answers 503)."""

    #: p99 of a market shard's recent book update lags.
    max_book_lag_ms: float = 5_000
    #: Symbols without a fresh book, per market shard.
    max_stale_symbols: int = 0
    #: Reports a shard stored and the gateway has not taken.
    max_undelivered_reports: int = 10_000
    #: Gateway store writes queued.
    max_pending_writes: int = 50_000
    #: Solver decisions stored and not carried out.
    max_solver_outbox: int = 1_000


@dataclass(frozen=True, slots=True)
class Observation:
    """One actor's answer to one poll: `data` is its inspect() (None if it did not answer, then `error` says why)."""

    data: Mapping[str, Any] | None
    seconds: float = 0.0
    error: str | None = None


def _kind(name: str) -> str:
    """`market-3` -> `market`; `orders-0` -> `orders`; other names are their own kind."""
    head, _, tail = name.rpartition("-")
    return head if head and tail.isdigit() else name


def _shard(name: str, data: Mapping[str, Any]) -> str:
    return str(data.get("shard", name.rpartition("-")[2]))


class SystemView:
    def __init__(self, metrics: Metrics, limits: HealthLimits | None = None) -> None:
        self.metrics = metrics
        self.limits = limits or HealthLimits()
        self._last: dict[tuple[str, str, str], float] = {}  # (actor, metric, series) -> last counter value
        self._routes_seen: set[str] = set()
        self._batches_seen: set[str] = set()
        #: orders shard -> (its instance's epoch, the last shortfall seq observed of it)
        self._shortfalls_seen: dict[str, tuple[Any, int]] = {}
        self.last_health: dict[str, Any] | None = None
        #: This poll's stale books (symbol -> orders the solver left waiting for it) and how many problems they
        #: made: a system whose only problems are stale books is "degraded" (some indexes wait), not "unhealthy".
        self._stale_books: dict[str, int] = {}
        self._stale_problems = 0
        #: Money the operator must look at (users in debt, deposits reversed by a reorg): the verdict is "degraded"
        #: (still 200: the system works) and each is named. Filled during one update.
        self._money_warnings: list[str] = []

    # ------------------------------------------------------------------ counters from counts
    def _count(self, actor: str, name: str, value: Any, tags: Mapping[str, str] | None = None) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        key = (actor, name, ",".join(f"{k}={v}" for k, v in sorted((tags or {}).items())))
        last = self._last.get(key)
        delta = value if last is None or value < last else value - last  # first sight, or a restart: all of it
        self._last[key] = value
        if delta:
            self.metrics.inc(name, delta, tags)

    # ------------------------------------------------------------------ one poll
    def update(self, polled: Mapping[str, Observation], now_ms: int) -> dict[str, Any]:
        """Take one poll of every actor (name -> Observation); set the metrics; return (and keep) the health."""
        m = self.metrics
        problems: list[str] = []
        self._money_warnings = []
        actors: dict[str, Any] = {}
        lags: dict[str, Any] = {}
        self._stale_books, self._stale_problems = {}, 0
        for name in sorted(polled):
            obs = polled[name]
            up = obs.data is not None
            actors[name] = {"up": up, "inspect_ms": round(obs.seconds * 1000, 3), "error": obs.error}
            m.set("indexmaker_actor_up", 1 if up else 0, {"actor": name})
            if not up:
                problems.append(f"{name}: not answering ({obs.error})")
                continue
            m.set("indexmaker_actor_inspect_seconds", obs.seconds, {"actor": name})
            handler = getattr(self, f"_on_{_kind(name)}", None)
            if handler is not None:
                try:
                    handler(name, obs.data, problems, lags)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a changed inspect() shape
                    problems.append(f"{name}: inspect() not understood ({type(exc).__name__}: {exc})")
        healthy = not problems
        m.set("indexmaker_healthy", 1 if healthy else 0)
        if healthy:
            status = "degraded" if self._money_warnings else "ok"
        else:
            status = "degraded" if len(problems) == self._stale_problems else "unhealthy"
        self.last_health = {"status": status, "healthy": healthy, "checked_ms": now_ms,
                            "problems": problems, "actors": actors, "lags": lags,
                            "stale_books": dict(sorted(self._stale_books.items())),
                            "warnings": list(self._money_warnings)}
        return self.last_health

    # ------------------------------------------------------------------ per kind
    def _on_market(self, name: str, d: Mapping[str, Any], problems: list[str], lags: dict[str, Any]) -> None:
        m, shard = self.metrics, _shard(name, d)
        for stat in ("p50", "p99", "max"):
            value = d.get(f"lag_{stat}_ms")
            if value is not None:
                m.set("indexmaker_market_book_lag_ms", float(value), {"shard": shard, "stat": stat})
        stale = d.get("stale") or []
        owned, ready = int(d.get("symbols", 0)), int(d.get("ready", 0))
        for state, value in (("owned", owned), ("ready", ready), ("stale", len(stale))):
            m.set("indexmaker_market_symbols", value, {"shard": shard, "state": state})
        for field, metric in (("diffs", "indexmaker_market_diffs"), ("gaps", "indexmaker_market_gaps"),
                              ("reconnects", "indexmaker_market_reconnects")):
            self._count(name, metric, d.get(field), {"shard": shard})
        p99 = d.get("lag_p99_ms")
        lags.setdefault("market_book_lag_p99_ms", {})[name] = p99
        lags.setdefault("market_stale_symbols", {})[name] = len(stale)
        if not d.get("running", True):
            problems.append(f"{name}: feed not running ({d.get('last_error')})")
        if ready < owned:  # not there yet, or being rebuilt after a gap or a reconnect: stale books too
            problems.append(f"{name}: {owned - ready} of {owned} books without a snapshot")
            self._stale_problems += 1
        for symbol in stale:
            self._stale_books.setdefault(symbol, 0)
        if len(stale) > self.limits.max_stale_symbols:
            problems.append(f"{name}: {len(stale)} stale symbols {sorted(stale)[:5]} (indexes needing them wait)")
            self._stale_problems += 1
        if p99 is not None and p99 > self.limits.max_book_lag_ms:
            problems.append(f"{name}: book lag p99 {p99} ms > {self.limits.max_book_lag_ms} ms")

    def _on_orders(self, name: str, d: Mapping[str, Any], problems: list[str], lags: dict[str, Any]) -> None:
        shard = _shard(name, d)
        undelivered = int(d.get("undelivered", 0))
        self.metrics.set("indexmaker_open_index_orders", len(d.get("open_orders", ())), {"shard": shard})
        self.metrics.set("indexmaker_reports_undelivered", undelivered, {"shard": shard})
        lags.setdefault("reports_undelivered", {})[name] = undelivered
        if undelivered > self.limits.max_undelivered_reports:
            problems.append(f"{name}: {undelivered} reports not delivered to the gateway")
        # Each invoice's shortfall once: numbered by the shard instance (a restarted one starts again under a new
        # epoch); an answer older than one already taken (polls may overlap) brings nothing new.
        shortfalls = d.get("shortfalls") or {}
        epoch, recent = shortfalls.get("epoch"), shortfalls.get("recent") or ()  # recent: [seq, index, bps]
        last_epoch, seen = self._shortfalls_seen.get(name, (epoch, 0))
        if last_epoch != epoch:
            seen = 0
        for seq, index, bps in recent:
            if seq > seen:
                self.metrics.observe("indexmaker_shortfall_bps", float(bps), {"index": index})
        self._shortfalls_seen[name] = (epoch, max([seen] + [seq for seq, _, _ in recent]))
        for user, debt in sorted((d.get("debts") or {}).items()):
            self._money_warnings.append(f"{name}: user {user} owes {debt} USDC (new orders refused)")
        for r in d.get("reversed_deposits") or ():
            self._money_warnings.append(f"{name}: deposit {r['deposit']} of {r['user']} ({r['amount']} USDC) "
                                        f"reversed by a chain reorg, {r['debt_added']} left as debt")

    def _on_gateway(self, name: str, d: Mapping[str, Any], problems: list[str], lags: dict[str, Any]) -> None:
        m, counts, server = self.metrics, d.get("counts", {}), d.get("server", {})
        for field, outcome in INDEX_ORDER_OUTCOMES.items():
            self._count(name, "indexmaker_index_orders", counts.get(field), {"outcome": outcome})
        self._count(name, "indexmaker_index_fill_reports", counts.get("fill_reports"))
        self._count(name, "indexmaker_gateway_frames", server.get("frames"))
        for code, n in (server.get("naks_by_code") or {}).items():
            self._count(name, "indexmaker_gateway_naks", n, {"code": code})
        m.set("indexmaker_gateway_sessions", int(server.get("sessions", 0)), {"state": "open"})
        m.set("indexmaker_gateway_sessions", int(server.get("logged_on", 0)), {"state": "logged_on"})
        pending = int(server.get("pending_writes", 0))
        m.set("indexmaker_gateway_pending_writes", pending)
        lags["gateway_pending_writes"] = pending
        if not d.get("url"):
            problems.append(f"{name}: not listening")
        if pending > self.limits.max_pending_writes:
            problems.append(f"{name}: {pending} store writes queued")

    def _on_sender(self, name: str, d: Mapping[str, Any], problems: list[str], lags: dict[str, Any]) -> None:
        m, counts = self.metrics, d.get("counts", {})
        for outcome in EXCHANGE_ORDER_OUTCOMES:
            self._count(name, "indexmaker_exchange_orders", counts.get(outcome), {"outcome": outcome})
        queued = d.get("queued") or 0
        for state, value in (("queued", queued), ("in_flight", d.get("in_flight") or 0),
                             ("resolving", len(d.get("resolving") or ()))):
            m.set("indexmaker_exchange_orders_open", value, {"state": state})
        lags["exchange_orders_queued"] = queued
        limits = d.get("rate_limits")
        if limits:
            m.set("indexmaker_rate_limit_blocked", 1 if limits.get("blocked") else 0)
            worst = 0.0
            for w in limits.get("windows", ()):
                capacity = w.get("capacity") or 0
                ratio = float(w.get("used", 0)) / float(capacity) if capacity else 0.0
                worst = max(worst, ratio)
                m.set("indexmaker_rate_limit_used_ratio", ratio,
                      {"window": f"{w.get('kind')}/{w.get('interval_ms')}ms"})
            lags["rate_limit_used_ratio_max"] = round(worst, 4)
        if not d.get("started", True):
            problems.append(f"{name}: not started (exchange unreachable or loading)")
        breakers = d.get("breakers") or []
        m.set("indexmaker_circuit_breakers_open", len(breakers))
        held = d.get("held") or {}
        for trip in breakers:  # sending is stopped there until `indexmaker resume` or the cool-off
            n = sum(held.values()) if trip["key"] == ACCOUNT else held.get(trip["key"], 0)
            problems.append(f"{name}: circuit breaker open for {describe(trip)}, {n} orders held")

    def _on_solver(self, name: str, d: Mapping[str, Any], problems: list[str], lags: dict[str, Any]) -> None:
        m, counts = self.metrics, d.get("counts", {})
        self._count(name, "indexmaker_batches", counts.get("batches"))
        self._count(name, "indexmaker_fills", counts.get("fills"))
        outbox = len(d.get("outbox") or ())
        m.set("indexmaker_solver_batches_in_flight", len(d.get("batches_in_flight") or ()))
        m.set("indexmaker_solver_outbox", outbox)
        lags["solver_outbox"] = outbox
        waiting = d.get("waiting_on_stale_books") or {}
        for symbol, n in waiting.items():
            self._stale_books[symbol] = int(n)
        lags["orders_waiting_on_stale_books"] = sum(int(n) for n in waiting.values())
        history = d.get("history") or ()
        for entry in history:
            batch_id, start, end = entry.get("batch_id"), entry.get("planned_ms"), entry.get("completed_ms")
            if batch_id is None or start is None or end is None or batch_id in self._batches_seen:
                continue
            self._batches_seen.add(batch_id)
            m.observe("indexmaker_batch_seconds", max(0, end - start) / 1000)
        self._batches_seen &= {e.get("batch_id") for e in history}  # bounded by what the solver still shows
        if outbox > self.limits.max_solver_outbox:
            problems.append(f"{name}: {outbox} decisions not carried out")

    def _on_router(self, name: str, d: Mapping[str, Any], problems: list[str], lags: dict[str, Any]) -> None:
        m = self.metrics
        for stage, n in (d.get("by_stage") or {}).items():
            m.set("indexmaker_routes", n, {"stage": stage})
        pending = len(d.get("pending") or ())
        m.set("indexmaker_route_deposits_pending", pending)
        lags["route_deposits_pending"] = pending
        routes = d.get("routes") or ()
        for r in routes:
            route_id, stage = r.get("route_id"), r.get("stage")
            if stage in FINAL_ROUTE_STAGES and route_id not in self._routes_seen:
                self._routes_seen.add(route_id)
                m.observe("indexmaker_route_seconds", max(0, r["updated_ms"] - r["created_ms"]) / 1000,
                          {"stage": stage})
        self._routes_seen &= {r.get("route_id") for r in routes}
        for key, r in sorted((d.get("reversed_after_routing") or {}).items()):
            self._money_warnings.append(f"{name}: deposit {key} of {r['user']} ({r['amount']} USDC) reversed by a "
                                        f"reorg after {r['route']} moved it out of custody: the house is short of it")

    def _on_chain(self, name: str, d: Mapping[str, Any], problems: list[str], lags: dict[str, Any]) -> None:
        if not d.get("listening", True):
            problems.append(f"{name}: deposit listener not running")
        if d.get("last_error"):
            problems.append(f"{name}: {d['last_error']}")

    def _on_minter(self, name: str, d: Mapping[str, Any], problems: list[str], lags: dict[str, Any]) -> None:
        self._count(name, "indexmaker_mints", (d.get("counts") or {}).get("minted"))
        owed = int(d.get("owed") or 0)  # queued or in flight at the minter
        self.metrics.set("indexmaker_mints_owed", owed)
        lags["mints_owed"] = owed
