"""The boundaries ARCHITECTURE.md states, checked on the source: which folder may import which, and the one
importer of ccxt. A new import across a boundary fails here, not in review."""
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
    for folder, allowed in ALLOWED.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in _imports(path):
                top = module.split(".")[0]
                if top in OURS and top != folder and top not in allowed:
                    crossing.append(f"{path.relative_to(ROOT)} imports {module}")
    assert crossing == []


def test_ccxt_is_imported_by_the_exchange_gateway_only() -> None:
    importers = [str(p.relative_to(ROOT)) for folder in [*ALLOWED, "bench"] for p in (ROOT / folder).rglob("*.py")
                 if any(m.split(".")[0] == "ccxt" for m in _imports(p))]
    importers += [f for f in ("cli.py",) if any(m.split(".")[0] == "ccxt" for m in _imports(ROOT / f))]
    assert importers == ["exchange/gateway.py"]
