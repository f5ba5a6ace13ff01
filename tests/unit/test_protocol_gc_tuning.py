"""GC settings of latency-critical processes: collections become rarer, none are switched off, start-up objects are
frozen."""
from __future__ import annotations

import gc

from protocol.gc_tuning import THRESHOLDS, tune_gc


def test_tune_gc_raises_thresholds_freezes_start_up_and_keeps_the_collector_on() -> None:
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        tune_gc()
        assert gc.get_threshold() == THRESHOLDS
        assert THRESHOLDS[0] > before[0]
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_tune_gc_once_tunes_a_process_once(monkeypatch) -> None:
    """An actor's start-up may run again (a failed start retried): the second call must not freeze again what the
    process built since (its live state), nor change thresholds an operator set meanwhile."""
    import protocol.gc_tuning as tuning

    before = gc.get_threshold()
    monkeypatch.setattr(tuning, "_tuned", False)
    try:
        gc.unfreeze()
        tuning.tune_gc_once()
        assert gc.get_threshold() == THRESHOLDS
        frozen = gc.get_freeze_count()
        kept = [{"state": i} for i in range(1000)]  # built after start-up: stays visible to the collector
        gc.set_threshold(1234, 5, 6)
        tuning.tune_gc_once()
        assert gc.get_freeze_count() == frozen and gc.get_threshold() == (1234, 5, 6)
        assert kept
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
