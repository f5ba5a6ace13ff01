"""Garbage-collector settings for a latency-critical process: the gateway, and the actors on the order path (sender,
solver, order-book and market-data shards: each one a Ray worker process of its own). Called once, after start-up.

Why: every request allocates a few dozen short-lived objects (dicts, models, futures), so with the default gen-0
threshold (700) the collector runs every few requests, and each older-generation pass walks everything the process
holds (1,000 sessions, users, the application's books; ccxt's markets in the sender). Measured with
bench/gateway.py, 1,000 sessions: ~270 us of CPU per order with the defaults, ~200 us with these settings (~180 us
with the collector off). In the order sender, one full collection with the defaults took 95 ms (bench/flow.py
caught one in the middle of a batch: its orders left ~90 ms late). Nothing is turned off: cycles are still
collected, only less often; `gc.freeze()` moves what start-up built (modules, pydantic schemas, configuration,
markets) out of the collector's sight for good. A library must not change process-wide settings, so GatewayServer
does not call this itself: the process's owner (a main, an actor) does.
"""
from __future__ import annotations

import gc

#: gen-0 collections after this many net allocations; older generations after 20 (gen 1) and 100 (gen 2) of the
#: younger one (the defaults are 700, 10, 10).
THRESHOLDS = (20_000, 20, 100)

_tuned = False


def tune_gc(thresholds: tuple[int, int, int] = THRESHOLDS) -> None:
    global _tuned
    gc.freeze()
    gc.set_threshold(*thresholds)
    _tuned = True


def tune_gc_once(thresholds: tuple[int, int, int] = THRESHOLDS) -> None:
    """tune_gc the first time in this process (an actor whose start-up may run more than once)."""
    if not _tuned:
        tune_gc(thresholds)
