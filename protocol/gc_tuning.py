"""Garbage-collector settings for a gateway process: called once by the process's main, after start-up.

Why: every request allocates a few dozen short-lived objects (dicts, models, futures), so with the default gen-0
threshold (700) the collector runs every few requests, and each older-generation pass walks everything the process
holds (1,000 sessions, users, the application's books). Measured with bench/gateway.py, 1,000 sessions: ~270 us of
CPU per order with the defaults, ~200 us with these settings (~180 us with the collector off). Nothing is turned
off: cycles are still collected, only less often; `gc.freeze()` moves what start-up built (modules, pydantic
schemas, configuration) out of the collector's sight for good. A library must not change process-wide settings, so
GatewayServer does not call this itself.
"""
from __future__ import annotations

import gc

#: gen-0 collections after this many net allocations; older generations after 20 (gen 1) and 100 (gen 2) of the
#: younger one (the defaults are 700, 10, 10).
THRESHOLDS = (20_000, 20, 100)


def tune_gc(thresholds: tuple[int, int, int] = THRESHOLDS) -> None:
    gc.freeze()
    gc.set_threshold(*thresholds)
