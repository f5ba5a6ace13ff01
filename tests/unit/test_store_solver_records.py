"""store/solver_records.py: the solver's state blob as older code wrote it (version 0: JSON with the outbox pickled
inside base64) loads to the same engine and the same outbox actions; what it writes now holds no pickle."""
from __future__ import annotations

import base64
import json
import pickle

from core.solver_cycle import call_of
from core.batch_planner import PlannerLimits
from core.solver_engine import SolverEngine
from store.solver_records import SolverHistoryEntry, SolverState, step_data
from tests.unit.store_examples import ALICE, history_entry, mint_requests, solver_world


def _restored(engine: SolverEngine, state: SolverState) -> SolverEngine:
    fresh = SolverEngine(engine.baskets, engine.filters, PlannerLimits())
    fresh.restore(state.engine.model_dump(mode="json"))
    return fresh


def test_a_version_0_state_loads_to_the_same_engine_and_outbox() -> None:
    engine, outbox = solver_world()
    old = json.dumps({"engine": engine.snapshot(), "cursor": 41,
                      "outbox": base64.b64encode(pickle.dumps(outbox)).decode(), "mint_seq": 3,
                      "counts": {"ticks": 9}, "errors": ["e"]})
    state = SolverState.load(old)
    assert _restored(engine, state).snapshot() == engine.snapshot()
    assert [call_of(s) for s in state.outbox] == outbox
    assert [s.kind for s in state.outbox] == ["complete", "engage", "submit", "fills", "reject"]
    assert (state.cursor, state.counts, state.errors) == (41, {"ticks": 9}, ["e"])
    assert "mint_seq" not in SolverState.model_fields and "mints" not in SolverState.model_fields  # version 2 let go
    assert "pickle" not in state.dump() and SolverState.load(state.dump()) == state


def test_an_older_version_0_state_gets_the_defaults_its_loader_applied() -> None:
    """Before counts and errors were kept, with the mints owed inside (the minter asks the shards for those now),
    and with lots written before they had a timestamp and a consumed count."""
    engine, _ = solver_world()
    snap = engine.snapshot()
    for b in snap["batches"]:
        for lot in [l for r in b["rounds"] for l in r] + b["pending_lots"]:
            assert lot.pop("consumed") == 0 and lot.pop("timestamp_ms") >= 0
    old = {"engine": snap, "cursor": 7, "outbox": base64.b64encode(pickle.dumps([])).decode(),
           "mints": [m.to_dict() for m in mint_requests()]}
    state = SolverState.load(json.dumps(old))
    assert (state.cursor, state.counts, state.errors, state.outbox) == (7, {}, [], [])
    rounds = [l for b in state.engine.batches for r in b.rounds for l in r]
    assert rounds and all(l.consumed == 0 and l.timestamp_ms == 0 for l in rounds)
    restored = _restored(engine, state).snapshot()
    assert restored["batches"][0]["engagements"] == engine.snapshot()["batches"][0]["engagements"]


def test_every_step_kind_round_trips_to_the_same_action() -> None:
    _, outbox = solver_world()
    for action in outbox:
        state = SolverState.model_validate({"engine": {"batch_seq": 0, "inventory": {}, "batches": []}, "cursor": 0,
                                            "outbox": [step_data(action)], "step_seqs": {}, "counts": {},
                                            "errors": []})
        assert [call_of(s) for s in SolverState.load(state.dump()).outbox] == [action]


def test_a_version_0_history_entry_loads_to_the_same_entry() -> None:
    entry = history_entry()
    assert SolverHistoryEntry.load(json.dumps(entry)).model_dump(mode="json") == entry
    assert SolverHistoryEntry.load(SolverHistoryEntry.model_validate(entry).dump()).deferred == [
        (f"{ALICE}:c9", "NO_LIQUIDITY:XRPUSDC")]


def test_a_version_0_outbox_pickled_under_the_old_class_name_loads_to_the_same_calls() -> None:
    """Older code pickled its outbox as actors.solver._Action, a name that no longer exists: those load as
    OutboxCall with the same fields."""
    engine, outbox = solver_world()
    raw = pickle.dumps(outbox, protocol=2)  # names classes as text: "c<module>\n<name>\n"
    old_raw = raw.replace(b"ccore.solver_cycle\nOutboxCall\n", b"cactors.solver\n_Action\n")
    assert old_raw != raw and b"OutboxCall" not in old_raw
    old = json.dumps({"engine": engine.snapshot(), "cursor": 5, "outbox": base64.b64encode(old_raw).decode()})
    assert [call_of(s) for s in SolverState.load(old).outbox] == outbox
