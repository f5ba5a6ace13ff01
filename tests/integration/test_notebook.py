"""The researchers' notebook (notebooks/attach.ipynb) against a running system, executed as a researcher would.

The system runs on the test session's Ray cluster (tests/conftest.py `ray_cluster`, started by this pytest process)
in a namespace of its own; the notebook's kernel is another process, so it attaches as a second driver to the same
cluster through the address and namespace it is given in its environment (INDEXMAKER_RAY_ADDRESS, the session
cluster's GCS address; INDEXMAKER_NAMESPACE). A short demo flow first gives it something to show.

Checked: every cell runs without error; its figures are real PNGs; its tables hold what the users and the chain
say independently (each order's filled units from the user's own Mint Invoice, each route's amount from the user's
deposit, one batch row per batch the solver counted, covering every order); and the notebook changed nothing (the
same actors, the same solver and minter counts). The fast tests pin where the notebook looks for the system and
that the committed notebook carries no outputs and no call that could start or stop anything.
"""
from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import re
import sys
import time
import uuid
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK = NOTEBOOKS / "attach.ipynb"


def _load(name: str):  # noqa: ANN202
    """A module of notebooks/ by path (the folder is not a package, and stays off sys.path)."""
    spec = importlib.util.spec_from_file_location(f"notebooks_{name}", NOTEBOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_attach = _load("attach_system")
ADDRESS_ENV, NAMESPACE_ENV, STATE_DIR_ENV = _attach.ADDRESS_ENV, _attach.NAMESPACE_ENV, _attach.STATE_DIR_ENV
find_target = _attach.find_target


# ============================================================================================== fast: no Ray, no kernel
def _run_file(tmp_path: Path, phase: str, address: str = "10.0.0.1:6380", namespace: str = "prod") -> Path:
    (tmp_path / "run.json").write_text(json.dumps({"phase": phase, "ray": {"address": address,
                                                                          "namespace": namespace}}))
    return tmp_path


def test_target_from_the_environment_first(tmp_path: Path) -> None:
    sd = _run_file(tmp_path, "up")
    t = find_target({ADDRESS_ENV: "ray://head:10001", NAMESPACE_ENV: "research", STATE_DIR_ENV: str(sd)})
    assert (t.address, t.namespace, t.source) == ("ray://head:10001", "research", f"${ADDRESS_ENV}")


def test_target_from_the_run_file_of_indexmaker_up(tmp_path: Path) -> None:
    sd = _run_file(tmp_path, "up")
    t = find_target({STATE_DIR_ENV: str(sd)})
    assert (t.address, t.namespace) == ("10.0.0.1:6380", "prod") and t.source.endswith("run.json")
    # the namespace from the environment still wins over the run file's
    assert find_target({STATE_DIR_ENV: str(sd), NAMESPACE_ENV: "other"}).namespace == "other"


@pytest.mark.parametrize("phase", ["down", "failed", "stopping"])
def test_a_stopped_system_run_file_is_ignored(tmp_path: Path, phase: str) -> None:
    t = find_target({STATE_DIR_ENV: str(_run_file(tmp_path, phase))})
    assert (t.address, t.namespace) == ("auto", "indexmaker")


def test_no_run_file_means_auto_and_the_default_namespace(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{not json")
    assert (find_target({STATE_DIR_ENV: str(tmp_path)}).address, find_target({}, state_dir=tmp_path / "x").namespace
            ) == ("auto", "indexmaker")


def test_the_committed_notebook_is_clean_and_read_only() -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    cells = "\n".join(c.source for c in code)
    for forbidden in ("ray.kill", ".stop.remote", "ray.shutdown", "ray.init", "subprocess", "os.system"):
        assert forbidden not in cells, forbidden
    # ray.init (in attach_system.connect) only ever with an address: never a new, empty cluster of its own
    inits = re.findall(r"ray\.init\(([^)]*)\)", (NOTEBOOKS / "attach_system.py").read_text())
    assert inits and all(args.strip().startswith("address=") for args in inits)


# ============================================================================================== slow: the real thing
class _Tables(HTMLParser):
    """The notebook's HTML tables as {caption: [row dicts]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self._caption = self._cell = None
        self._head: list[str] = []
        self._row: list[str] = []
        self._in = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:  # noqa: ARG002
        if tag in ("caption", "th", "td"):
            self._in, self._cell = tag, ""
        elif tag == "table":
            self._caption, self._head = None, []
        elif tag == "tr":
            self._row = []

    def handle_data(self, data: str) -> None:
        if self._in:
            self._cell += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption":
            self._caption = self._cell
            self.tables[self._caption] = []
        elif tag == "th":
            self._head.append(self._cell)
        elif tag == "td":
            self._row.append(self._cell)
        elif tag == "tr" and self._row:
            self.tables[self._caption].append(dict(zip(self._head, self._row)))
        if tag in ("caption", "th", "td"):
            self._in = ""


@pytest.fixture(scope="module")
def running(ray_cluster):  # noqa: ARG001  (the session's Ray cluster: the kernel attaches to it)
    import ray

    from world.demo import default_users, run_demo
    from world.launcher import LauncherOptions, LocalSystem

    system = LocalSystem(LauncherOptions(gateway_port=0, namespace=f"nb-{uuid.uuid4().hex[:8]}"))
    system.start()
    try:
        users = default_users()
        for u in users:
            # Bob's same-breath cancel is the demo's known engagement race (world/demo.py EngagementRace): left out,
            # so this flow always ends with every good order minted.
            u.cancel = None
        lines: list[str] = []
        try:
            result = asyncio.run(run_demo(system, users, out=lines.append))
        except Exception:
            print("\n".join(lines))
            raise
        assert ray.get(system.actor("solver").wait_quiet.remote(30.0))
        yield system, result
    finally:
        system.stop()


def _execute(system, timeout_s: int = 180):  # noqa: ANN001, ANN202
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {**os.environ, ADDRESS_ENV: system.ray_address, NAMESPACE_ENV: system.namespace,
           "MPLBACKEND": "Agg"}  # a headless server's backend: the figures must still come out
    env.pop(STATE_DIR_ENV, None)
    client = nbclient.NotebookClient(nb, timeout=timeout_s, startup_timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env)  # raises CellExecutionError on the first failing cell
    return nb


@pytest.mark.slow
def test_the_notebook_reads_and_plots_a_running_system(running) -> None:
    import ray

    system, result = running
    names = lambda: sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)  # noqa: E731
                           if a["namespace"] == system.namespace)
    actors_before = names()
    solver_before = ray.get(system.actor("solver").inspect.remote())["counts"]["batches"]
    minted_before = ray.get(system.actor("minter").inspect.remote())["counts"]["minted"]

    t0 = time.monotonic()
    nb = _execute(system)
    took = time.monotonic() - t0

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [base64.b64decode(o.data["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) >= 4  # books, batches, fills, routes
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and len(p) > 5_000 for p in pngs)  # drawn, not empty canvases
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"attached to {system.ray_address}" in text and repr(system.namespace) in text and "missing: none" in text

    parser = _Tables()
    for o in outputs:
        if "text/html" in o.get("data", {}):
            parser.feed(o.data["text/html"])
    tables = parser.tables

    # every actor answered inspect()
    actor_rows = tables[f"namespace {system.namespace}"]
    assert {r["actor"] for r in actor_rows} == set(actors_before) and all(r["answered"] == "True" for r in actor_rows)

    # each good order with the filled units of the user's own Mint Invoice (the stream, not the shard's view)
    rows = {r["order"]: r for r in tables["index orders"]}
    invoices = {d.body.client_order_id: d.body for u in result["users"] for d in u.reports
                if type(d.body).__name__ == "MintInvoice"}
    good = {cl for u in result["users"] for cl in u.good}
    assert set(invoices) == good and set(rows) == good  # the rejected c0 never entered a book
    for cl, inv in invoices.items():
        assert rows[cl]["status"] == "FILLED"
        assert Decimal(rows[cl]["filled units"]) == Decimal(inv.filled_quantity) > 0
        assert Decimal(rows[cl]["spent"]) == Decimal(inv.collateral_spent)

    # one batch row per batch the solver counted; together they engaged every good order
    batches = tables["solver history (latest batches)"]
    assert len(batches) == solver_before and sum(int(b["orders"]) for b in batches) == len(good)
    assert all(Decimal(b["notional at limits"]) > 0 and b["asset orders"] == str(len(next(iter(system.baskets.values())).assets))
               for b in batches)

    # one credited route per user's deposit, carrying that deposit
    routes = tables["routes"]
    assert sorted(Decimal(r["amount in"]) for r in routes) == sorted(u.deposit for u in result["users"])
    assert {r["stage"] for r in routes} == {"credited"}

    # read-only: nothing started, stopped or done meanwhile
    assert names() == actors_before
    assert ray.get(system.actor("solver").inspect.remote())["counts"]["batches"] == solver_before
    assert ray.get(system.actor("minter").inspect.remote())["counts"]["minted"] == minted_before
    print(f"notebook executed in {took:.1f} s, {len(pngs)} figures")
