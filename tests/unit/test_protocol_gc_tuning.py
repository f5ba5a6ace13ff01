"""The gateway's GC settings: collections become rarer, none are switched off, start-up objects are frozen."""
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
