"""A solver state stored when the solver still relayed mints (a "mint_seq" and "mints" in the blob, a
solver:{name}:mints hash) loads: those keys are ignored, the rest of the state is the solver's as before, and the
next commit writes the blob without them. The orders they named are still mint-pending at their shards, and the
minter asks the shards when it starts."""
from __future__ import annotations

import asyncio
import json

from actors.solver import Solver
from core.batch_planner import PlannerLimits
from store.solver_records import SolverState
from tests.integration.test_solver_collect import order, plan_one_batch, solver_and_world  # noqa: F401

OLD_MINT = {"order_id": "0xuser9:c1", "user": "0xuser9", "index": "SY100.dev", "filled_units": "0.5",
            "token_decimals": 18}


def test_a_state_with_the_old_mint_keys_loads_without_them(solver_and_world, redis_server) -> None:  # noqa: F811
    solver, world = solver_and_world
    batch_id = plan_one_batch(solver, world)
    key = f"solver:{solver.o.name}:state"
    r = redis_server.client()
    try:
        stored = json.loads(r.get(key))  # a record (store/records.py): written back as version 1, with the mints
        data = stored["data"]
        data.update({"mint_seq": 7, "mints": [OLD_MINT]})
        data["counts"].update({"mints_owed": 1, "minted": 0})
        r.set(key, json.dumps({**stored, "schema_version": 1, "data": data}))
        r.hset(f"solver:{solver.o.name}:mints", OLD_MINT["order_id"], json.dumps({"seq": 7, "mint": OLD_MINT}))

        again = Solver.__ray_metadata__.modified_class(solver.o, solver.engine.baskets, solver.engine.filters,
                                                       PlannerLimits())
        assert batch_id in again.engine.batches and again.engine.snapshot() == solver.engine.snapshot()
        assert again.cycle.cursor == solver.cycle.cursor and len(again.cycle.outbox) == len(solver.cycle.outbox)
        view = asyncio.run(again.inspect())
        assert "mints_owed" not in view and batch_id in view["batches_in_flight"]

        async def commit() -> None:
            await again._commit()  # noqa: SLF001
            await again._redis.aclose()  # noqa: SLF001
        asyncio.run(commit())
        rewritten = json.loads(r.get(key))
        assert rewritten["schema_version"] == SolverState.VERSION
        assert "mint_seq" not in rewritten["data"] and "mints" not in rewritten["data"]
        assert rewritten["data"]["engine"] == data["engine"]
    finally:
        r.close()


def test_fills_completions_and_give_ups_an_older_outbox_held_go_to_the_shards_hand_offs(solver_and_world,
                                                                                          redis_server) -> None:  # noqa: F811
    """Older code drove a batch's fill deltas and completion as calls from its outbox: a state stored with them
    pending loads with them queued as steps for their shards, appended at the next commit (the shard's own keys
    make a step it had applied already a replay)."""
    from store.solver_records import step_data
    from store.streams import solver_steps
    from tests.unit.store_examples import solver_world

    solver, _ = solver_and_world
    key = f"solver:{solver.o.name}:state"
    r = redis_server.client()
    try:
        _, outbox = solver_world()
        old = SolverState.model_validate({"engine": {"batch_seq": 0, "inventory": {}, "batches": []}, "cursor": 3,
                                          "outbox": [step_data(a) for a in outbox], "step_seqs": {},
                                          "counts": {}, "errors": []}).model_dump(mode="json")
        del old["step_seqs"]
        r.set(key, json.dumps({"schema": SolverState.KIND, "schema_version": 2, "data": old}))
        again = Solver.__ray_metadata__.modified_class(solver.o, solver.engine.baskets, solver.engine.filters,
                                                       PlannerLimits())
        assert [a.kind for a in again.cycle.outbox] == ["engage", "submit"]
        assert [s.seq for s in again.cycle.steps_out[0]] == [1, 2, 3]  # (complete, fills, reject)

        async def commit() -> None:
            await again._commit()  # noqa: SLF001
            await again._redis.aclose()  # noqa: SLF001
        asyncio.run(commit())
        kinds = [json.loads(fields[b"r"])["data"]["step"]["kind"]
                 for _, fields in r.xrange(solver_steps(solver.o.shard_prefix, 0).key)]
        assert kinds == ["complete", "fills", "reject"]
        assert SolverState.load(r.get(key)).step_seqs == {0: 3}
    finally:
        r.close()
