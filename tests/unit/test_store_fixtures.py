"""Committed fixtures of every stored record kind: what this code writes today must load tomorrow.

tests/fixtures/records/<kind>.v<version>.json holds a value written by the code of that version. Every fixture must
load with the current code (older versions through their migrations), and the current version's fixture must be
exactly what the current code writes. A change that breaks either fails here, in CI, not at an operator's restart.
To add the fixture of a new kind or version: INDEXMAKER_WRITE_FIXTURES=1 pytest tests/unit/test_store_fixtures.py
(it writes only missing files; an existing fixture is never rewritten)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import store.schemas  # noqa: F401  (registers every kind)
from store.records import kinds
from tests.unit.store_examples import EXAMPLES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "records"
WRITE = os.environ.get("INDEXMAKER_WRITE_FIXTURES") == "1"


def _fixture(kind: str, version: int) -> Path:
    return FIXTURES / f"{kind}.v{version}.json"


def _pretty(raw: str) -> str:
    return json.dumps(json.loads(raw), indent=1, sort_keys=True) + "\n"


@pytest.mark.parametrize("kind", sorted(k for k in kinds() if not k.startswith("test.")))
def test_every_kind_has_an_example_and_a_fixture_of_its_current_version(kind: str) -> None:
    cls = kinds()[kind]
    assert kind in EXAMPLES, f"tests/unit/store_examples.py has no example of {kind!r}"
    written = EXAMPLES[kind]().dump()
    path = _fixture(kind, cls.VERSION)
    if WRITE and not path.exists():
        path.write_text(_pretty(written))
    assert path.exists(), f"no fixture {path.name}: write it with INDEXMAKER_WRITE_FIXTURES=1"
    assert _pretty(written) == path.read_text(), (
        f"{kind} v{cls.VERSION} is no longer written as its fixture says: a change of layout needs a new VERSION "
        f"and a migration from the old one")


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
def test_every_committed_fixture_still_loads(path: Path) -> None:
    kind = path.name.rsplit(".v", 1)[0]
    assert kind in kinds(), f"fixture of an unknown kind {kind!r}: a kind must never disappear while stores hold it"
    record = kinds()[kind].load(path.read_text())
    assert record.VERSION == kinds()[kind].VERSION
