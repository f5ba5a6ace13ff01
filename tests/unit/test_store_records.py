"""store/records.py: the envelope, versions, migrations and refusals."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import ClassVar

import pytest

from store.records import Record, RecordError, load_record, record_kind


def _v1_to_v2(data: dict) -> dict:
    return {"amount": data["amt"], "owner": data.get("owner", "nobody")}


def _v0_to_v1(data: dict) -> dict:
    return {"amt": data["value"]}


@record_kind
class _Thing(Record):
    KIND: ClassVar[str] = "test.thing"
    VERSION: ClassVar[int] = 2
    MIGRATIONS = {0: _v0_to_v1, 1: _v1_to_v2}

    amount: Decimal
    owner: str


def test_a_record_round_trips_exactly() -> None:
    t = _Thing(amount=Decimal("0.000001"), owner="a")
    raw = t.dump()
    assert json.loads(raw)["schema"] == "test.thing" and json.loads(raw)["schema_version"] == 2
    assert json.loads(raw)["data"]["amount"] == "0.000001"  # money stays a string, never a float
    assert _Thing.load(raw) == t
    assert _Thing.load(raw.encode()) == t


def test_older_versions_are_migrated_step_by_step() -> None:
    v1 = json.dumps({"schema": "test.thing", "schema_version": 1, "data": {"amt": "5"}})
    assert _Thing.load(v1) == _Thing(amount=Decimal(5), owner="nobody")
    assert _Thing.load(json.dumps({"value": "7"})) == _Thing(amount=Decimal(7), owner="nobody")  # before records


def test_newer_other_kind_and_bad_data_are_refused_with_the_reason() -> None:
    newer = json.dumps({"schema": "test.thing", "schema_version": 3, "data": {}})
    with pytest.raises(RecordError, match="newer"):
        _Thing.load(newer)
    with pytest.raises(RecordError, match="'other'"):
        _Thing.load(json.dumps({"schema": "other", "schema_version": 1, "data": {}}))
    with pytest.raises(RecordError, match="does not fit"):
        _Thing.load(json.dumps({"schema": "test.thing", "schema_version": 2, "data": {"amount": "1", "x": 1}}))
    with pytest.raises(RecordError, match="not JSON"):
        load_record(_Thing, b"\x80\x04")


def test_a_kind_needs_every_migration_and_one_class() -> None:
    with pytest.raises(TypeError, match="no migration"):
        @record_kind
        class _Gap(Record):
            KIND: ClassVar[str] = "test.gap"
            VERSION: ClassVar[int] = 3
            MIGRATIONS = {0: _v0_to_v1}
    with pytest.raises(TypeError, match="twice"):
        @record_kind
        class _Again(Record):
            KIND: ClassVar[str] = "test.thing"
            VERSION: ClassVar[int] = 1
