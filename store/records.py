"""Versioned stored records: each value the house writes to Redis is a record of one kind, with a pydantic schema and
a schema version, so that a restart after a code change reads what older code wrote.

Stored as `{"schema", "schema_version", "data"}`; an older version runs its migrations step by step, plain JSON
without the envelope is version 0, a newer version is refused. Schemas forbid unknown fields: a renamed attribute
fails the fixture test (tests/unit/test_store_fixtures.py), not a restart.
"""
from __future__ import annotations

import json
from typing import Any, Callable, ClassVar, Mapping, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

#: A migration takes the plain data of version n and returns the plain data of version n + 1.
Migration = Callable[[dict[str, Any]], dict[str, Any]]

R = TypeVar("R", bound="Record")


class RecordError(ValueError):
    """A stored value that cannot be read as its kind (corrupt, another kind, or written by a newer version)."""


class Record(BaseModel):
    """One stored kind. Subclasses set KIND and VERSION, and MIGRATIONS[n] for every n < VERSION they can read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    KIND: ClassVar[str]
    VERSION: ClassVar[int]
    MIGRATIONS: ClassVar[Mapping[int, Migration]] = {}

    def dump(self) -> str:
        """The stored form: the envelope with this kind's current version."""
        return dump_record(self)

    @classmethod
    def load(cls: type[R], raw: bytes | str | Mapping[str, Any]) -> R:
        return load_record(cls, raw)


class Part(BaseModel):
    """A nested part of a record: strict about its fields like the record itself, with no version of its own (it
    changes with the record that holds it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_KINDS: dict[str, type[Record]] = {}


def record_kind(cls: type[R]) -> type[R]:
    """Register a record class under its KIND (one class per kind: two would make stored values ambiguous)."""
    other = _KINDS.get(cls.KIND)
    if other is not None and other is not cls:
        raise TypeError(f"record kind {cls.KIND!r} is defined twice: {other.__qualname__} and {cls.__qualname__}")
    if cls.VERSION < 1:
        raise TypeError(f"{cls.__qualname__}: VERSION starts at 1 (0 is a value written before records)")
    missing = [n for n in range(1, cls.VERSION) if n not in cls.MIGRATIONS]
    if missing:
        raise TypeError(f"{cls.__qualname__}: no migration from version(s) {missing}")
    _KINDS[cls.KIND] = cls
    return cls


def kinds() -> dict[str, type[Record]]:
    """Every registered kind (the fixture test walks them all)."""
    return dict(_KINDS)


def dump_record(record: Record) -> str:
    # The data is serialised by pydantic's own JSON encoder: a third of the cost of model_dump + json.dumps, which
    # counts on the hot commits (a shard rewrites every touched user's snapshot).
    return (f'{{"schema":{json.dumps(record.KIND)},"schema_version":{int(record.VERSION)},'
            f'"data":{record.model_dump_json()}}}')


def _parse(raw: bytes | str | Mapping[str, Any]) -> Any:
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise RecordError(f"not JSON: {exc}") from exc


def load_record(cls: type[R], raw: bytes | str | Mapping[str, Any]) -> R:
    value = _parse(raw)
    if isinstance(value, dict) and "schema_version" in value and "schema" in value:
        if value["schema"] != cls.KIND:
            raise RecordError(f"a {value['schema']!r} record where a {cls.KIND!r} was expected")
        version, data = int(value["schema_version"]), value["data"]
    else:
        version, data = 0, value
    if version > cls.VERSION:
        raise RecordError(f"{cls.KIND} record of version {version}, newer than this code's {cls.VERSION}")
    for n in range(version, cls.VERSION):
        step = cls.MIGRATIONS.get(n)
        if step is None:
            raise RecordError(f"{cls.KIND}: no migration from version {n} (that layout cannot be read)")
        data = step(data)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise RecordError(f"{cls.KIND} record (version {version}) does not fit its schema: {exc}") from exc


def held_in(field: str) -> Migration:
    """The migration of a kind whose version 0 was a bare value (a list, a number, a mapping) that its first
    version holds in `field`."""
    return lambda data: {field: data}


def same_data(data: dict[str, Any]) -> dict[str, Any]:
    """The migration of a kind whose first version keeps the layout stored before records (version 0)."""
    return data
