"""Garbage-collector settings for a latency-critical process: the gateway, and the actors on the order path. Called
once after start-up by the process's owner (a library must not change them).

Every request allocates short-lived objects, so the default gen-0 threshold collects every few requests and older
passes walk everything held: ~270 us of CPU per order became ~200 us (bench/gateway.py). Nothing is turned off;
`gc.freeze()` hides start-up's objects."""
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
