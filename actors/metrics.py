"""The system's Prometheus metrics: one catalogue (name, kind, tags, buckets) and the object that records them.

`ray.util.metrics` values are reported by each worker to its node's metrics agent, which serves them at
`http://<node ip>:<MetricsExportPort>/metrics` (prefixed `ray_`, up to `metrics_report_interval_ms` late). The
`monitor` actor sets gauges from the actors' inspect() every few seconds, so no hot path pays per event; batch
handlers observe histograms. Values are also kept in dicts for inspect() and the tests."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

PREFIX = "indexmaker_"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: str  # "counter" | "gauge" | "histogram"
    description: str
    tags: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()


_SECONDS_SHORT = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
#: Shortfall in bps; a calm market's buy costs about half the spread plus the fee (~10-15). Ray takes only positive
#: boundaries: a price improvement (<= 0) counts in the first bucket, and shows in the sum.
_BPS = (1.0, 2.0, 5.0, 10.0, 12.5, 15.0, 20.0, 30.0, 50.0, 100.0, 200.0, 500.0)
_SECONDS_LONG = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

CATALOGUE: dict[str, MetricSpec] = {s.name: s for s in (
    # --- liveness (the monitor's poll)
    MetricSpec("indexmaker_actor_up", "gauge", "1 if the actor answered inspect() on the last poll", ("actor",)),
    MetricSpec("indexmaker_actor_inspect_seconds", "gauge", "time the actor took to answer inspect()", ("actor",)),
    MetricSpec("indexmaker_healthy", "gauge", "1 if /health would answer 200"),
    MetricSpec("indexmaker_paper_mode", "gauge",
               "1 in paper mode: orders matched locally, nothing sent to the exchange"),
    # --- index orders (gateway: every application response it delivered, counted per batch)
    MetricSpec("indexmaker_index_orders", "counter",
               "index orders by outcome: accepted, rejected (at entry), failed (late rejection), filled, cancelled, "
               "minted", ("outcome",)),
    MetricSpec("indexmaker_index_fill_reports", "counter", "IndexOrderFill reports sent to users"),
    MetricSpec("indexmaker_open_index_orders", "gauge", "open index orders per index-order shard", ("shard",)),
    MetricSpec("indexmaker_reports_undelivered", "gauge", "reports stored by a shard, not yet at the gateway",
               ("shard",)),
    # --- gateway
    MetricSpec("indexmaker_gateway_frames", "counter", "inbound websocket frames"),
    MetricSpec("indexmaker_gateway_naks", "counter", "NAKs by reason code", ("code",)),
    MetricSpec("indexmaker_gateway_sessions", "gauge", "websocket sessions: open, logged_on", ("state",)),
    MetricSpec("indexmaker_gateway_pending_writes", "gauge", "gateway store writes queued (group commit)"),
    # --- exchange orders (sender) and fills (solver)
    MetricSpec("indexmaker_exchange_orders", "counter",
               "exchange orders by outcome: sent, answered, rejected, rate_limited, unknown, resent", ("outcome",)),
    MetricSpec("indexmaker_exchange_orders_open", "gauge", "exchange orders: queued, in_flight, resolving",
               ("state",)),
    MetricSpec("indexmaker_fills", "counter", "exchange fills taken by the solver"),
    MetricSpec("indexmaker_rate_limit_used_ratio", "gauge",
               "used / capacity of each exchange rate-limit window (capacity includes the safety fraction)",
               ("window",)),
    MetricSpec("indexmaker_rate_limit_blocked", "gauge", "1 while the exchange asked us to back off"),
    MetricSpec("indexmaker_circuit_breakers_open", "gauge",
               "circuit breakers open in the sender (a symbol, or the whole account): nothing is sent there"),
    # --- market data
    MetricSpec("indexmaker_market_book_lag_ms", "gauge",
               "book update lag (receipt - exchange event time) over the shard's recent samples", ("shard", "stat")),
    MetricSpec("indexmaker_market_symbols", "gauge", "symbols per market shard: owned, ready, stale",
               ("shard", "state")),
    MetricSpec("indexmaker_market_diffs", "counter", "depth diffs applied", ("shard",)),
    MetricSpec("indexmaker_market_gaps", "counter", "depth sequence gaps (book resynced)", ("shard",)),
    MetricSpec("indexmaker_market_reconnects", "counter", "market data feed reconnects", ("shard",)),
    # --- batches (solver)
    MetricSpec("indexmaker_batches", "counter", "batches planned"),
    MetricSpec("indexmaker_solver_batches_in_flight", "gauge", "batches planned and not completed"),
    MetricSpec("indexmaker_solver_outbox", "gauge", "solver decisions stored and not yet carried out"),
    MetricSpec("indexmaker_batch_seconds", "histogram", "batch time, planned to completed", (), _SECONDS_SHORT),
    # --- execution quality (index-order shards: each Mint Invoice's shortfall against the order's arrival value)
    MetricSpec("indexmaker_shortfall_bps", "histogram",
               "implementation shortfall of each minted order against its arrival value, in basis points",
               ("index",), _BPS),
    # --- collateral routes (router)
    MetricSpec("indexmaker_routes", "gauge", "collateral routes by stage", ("stage",)),
    MetricSpec("indexmaker_route_deposits_pending", "gauge", "deposits waiting for a route"),
    MetricSpec("indexmaker_route_seconds", "histogram", "route time, created to its final stage", ("stage",),
               _SECONDS_LONG),
    # --- mints
    MetricSpec("indexmaker_mints", "counter", "index token mints that landed"),
    MetricSpec("indexmaker_mints_owed", "gauge", "finished orders waiting for their mint"),
    MetricSpec("indexmaker_mint_seconds", "histogram", "one mint call to the chain actor (a batch of mints)", (),
               _SECONDS_SHORT),
)}


def _key(tags: Mapping[str, str] | None) -> str:
    """A series' tags as one plain string key ("a=1,b=2"; "" without tags): inspect() output stays JSON."""
    return ",".join(f"{k}={v}" for k, v in sorted((tags or {}).items()))


class Metrics:
    """Records metrics of the catalogue, in memory always and through Ray's metrics export when `export`.

    Unknown names and wrong tag keys raise ValueError: a typo must fail a test, not vanish from a dashboard."""

    def __init__(self, export: bool = True) -> None:
        self.export = export
        self._ray: dict[str, Any] = {}
        self.gauges: dict[str, dict[str, float]] = {}
        self.counters: dict[str, dict[str, float]] = {}
        self.histograms: dict[str, dict[str, dict[str, Any]]] = {}

    def _spec(self, name: str, kind: str, tags: Mapping[str, str] | None) -> MetricSpec:
        spec = CATALOGUE.get(name)
        if spec is None or spec.kind != kind:
            raise ValueError(f"{name} is not a {kind} of the metrics catalogue (actors/metrics.py)")
        if set(tags or ()) != set(spec.tags):
            raise ValueError(f"{name} takes tags {spec.tags}, got {tuple(tags or ())}")
        return spec

    def _ray_metric(self, spec: MetricSpec) -> Any:
        metric = self._ray.get(spec.name)
        if metric is None:
            from ray.util import metrics as rm

            if spec.kind == "counter":
                metric = rm.Counter(spec.name, description=spec.description, tag_keys=spec.tags)
            elif spec.kind == "gauge":
                metric = rm.Gauge(spec.name, description=spec.description, tag_keys=spec.tags)
            else:
                metric = rm.Histogram(spec.name, description=spec.description, boundaries=list(spec.boundaries),
                                      tag_keys=spec.tags)
            self._ray[spec.name] = metric
        return metric

    def set(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        spec = self._spec(name, "gauge", tags)
        self.gauges.setdefault(name, {})[_key(tags)] = value
        if self.export:
            self._ray_metric(spec).set(value, tags=dict(tags) if tags else None)

    def inc(self, name: str, value: float = 1, tags: Mapping[str, str] | None = None) -> None:
        if value < 0:
            raise ValueError(f"{name}: a counter only goes up (got {value})")
        spec = self._spec(name, "counter", tags)
        series = self.counters.setdefault(name, {})
        series[_key(tags)] = series.get(_key(tags), 0) + value
        if self.export and value > 0:  # Ray's Counter refuses 0
            self._ray_metric(spec).inc(value, tags=dict(tags) if tags else None)

    def observe(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        spec = self._spec(name, "histogram", tags)
        h = self.histograms.setdefault(name, {}).setdefault(
            _key(tags), {"count": 0, "sum": 0.0, "buckets": [0] * (len(spec.boundaries) + 1)})
        h["count"] += 1
        h["sum"] += value
        h["buckets"][next((i for i, b in enumerate(spec.boundaries) if value <= b), len(spec.boundaries))] += 1
        if self.export:
            self._ray_metric(spec).observe(value, tags=dict(tags) if tags else None)

    def snapshot(self) -> dict[str, Any]:
        """Every value recorded, as plain data (series keyed by their tags, "" for none)."""
        return {"gauges": {n: dict(s) for n, s in self.gauges.items()},
                "counters": {n: dict(s) for n, s in self.counters.items()},
                "histograms": {n: {k: {"count": h["count"], "sum": h["sum"], "buckets": list(h["buckets"])}
                                   for k, h in s.items()} for n, s in self.histograms.items()}}


_process_metrics: Metrics | None = None


def process_metrics() -> Metrics:
    """This process's exporting Metrics (an actor that observes a histogram where it handles a batch)."""
    global _process_metrics
    if _process_metrics is None:
        _process_metrics = Metrics(export=True)
    return _process_metrics
