"""Contract ABIs and creation code, read from the npm package `@across-protocol/contracts`.

Why from npm and not copied into the repo: the artifacts are the audited build of the real Across contracts (and
UMA's ExpandedERC20); reading them where `npm ci` puts them keeps us on exactly the version package-lock.json pins.
Each artifact is `{"abi": [...], "bytecode": "0x..."}` with no link placeholders (spec/chain.md §3).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_utils import keccak

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Overridable so that an installed copy of the package (outside the repo) can point at its own node_modules.
ARTIFACTS_ENV = "INDEXMAKER_ACROSS_ARTIFACTS"
DEFAULT_ARTIFACTS = REPO_ROOT / "node_modules" / "@across-protocol" / "contracts" / "dist" / "evm" / "artifacts"


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def artifacts_dir() -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV, DEFAULT_ARTIFACTS))


@lru_cache(maxsize=None)
def load_artifact(name: str) -> Artifact:
    """`name` is the contract name, e.g. "ExpandedERC20", "Arbitrum_SpokePool", "OP_SpokePool", "ERC1967Proxy"."""
    path = artifacts_dir() / f"{name}.sol" / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"artifact {name} not found at {path}: run `npm ci --ignore-scripts` in the project root "
            f"(package.json pins @across-protocol/contracts)")
    data = json.loads(path.read_text())
    return Artifact(name, data["abi"], data["bytecode"])


def _canonical_type(param: dict[str, Any]) -> str:
    kind = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple'):]}"
    return kind


def error_selectors(abi: list[dict[str, Any]]) -> dict[str, str]:
    """'0x' + 4-byte selector -> error name, to turn a custom-error revert into words (spec/chain.md §5)."""
    out: dict[str, str] = {}
    for entry in abi:
        if entry.get("type") == "error":
            signature = f"{entry['name']}({','.join(_canonical_type(p) for p in entry.get('inputs', []))})"
            out["0x" + keccak(text=signature)[:4].hex()] = entry["name"]
    return out
