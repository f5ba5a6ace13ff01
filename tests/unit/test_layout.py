"""The boundaries ARCHITECTURE.md states, checked on the source: which folder may import which, and the one
importer of ccxt. A new import across a boundary fails here, not in review.

store/ has two layers: its base (the record machinery, the hand-off, the retry policy) sits right above core and
serves protocol and chain; its record kinds (`*_records.py`, `schemas.py`) describe what the actors store, protocol's
messages included, so they sit above protocol."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: A folder may import itself and these of ours (ARCHITECTURE.md, Boundaries).
ALLOWED = {
    "core": set(),
    "store": {"core"},
    "protocol": {"core", "store"},
    "chain": {"core", "store"},
    "exchange": {"core"},
    "actors": {"core", "store", "protocol", "chain", "exchange"},
    "world": {"core", "store", "protocol", "chain", "exchange", "actors"},
}
OURS = set(ALLOWED) | {"cli", "bench", "tests", "notebooks"}
STORE_BASE = {"store", "store.records", "store.handoff", "store.retry", "store.streams"}


def _allowed(path: Path, folder: str, module: str) -> bool:
    top = module.split(".")[0]
    if top not in OURS or top == folder:
        return True
    if folder == "store" and top == "protocol":  # the record kinds may describe protocol's messages
        return path.stem.endswith("_records") or path.stem == "schemas"
    if top == "store" and folder in ("protocol", "chain"):  # the base only: the kinds sit above them
        return module in STORE_BASE or folder == "chain"
    return top in ALLOWED[folder]


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_every_folder_imports_only_what_it_may() -> None:
    crossing = []
    for folder in ALLOWED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            crossing += [f"{path.relative_to(ROOT)} imports {m}" for m in _imports(path) if not _allowed(path, folder, m)]
    assert crossing == []


def test_ccxt_is_imported_by_the_exchange_gateway_only() -> None:
    importers = [str(p.relative_to(ROOT)) for folder in [*ALLOWED, "bench"] for p in (ROOT / folder).rglob("*.py")
                 if any(m.split(".")[0] == "ccxt" for m in _imports(p))]
    importers += [f for f in ("cli.py",) if any(m.split(".")[0] == "ccxt" for m in _imports(ROOT / f))]
    assert importers == ["exchange/gateway.py"]
