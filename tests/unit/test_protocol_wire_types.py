"""Wire field types: decimal strings, checksummed addresses, timestamps, sides, ids — what passes and what is refused."""
from __future__ import annotations

import calendar
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from core.side import Side
from protocol.wire_types import (Address, DecimalStr, Id, Timestamp, WireSide, format_decimal, format_timestamp,
                                 timestamp_ms)

DEC = TypeAdapter(DecimalStr)
ADDR = TypeAdapter(Address)
TS = TypeAdapter(Timestamp)
SIDE = TypeAdapter(WireSide)
ID = TypeAdapter(Id)


@settings(max_examples=300, deadline=None)
@given(st.decimals(min_value=0, max_value=Decimal("1e25"), places=12, allow_nan=False, allow_infinity=False))
def test_any_plain_decimal_string_round_trips_exactly(value: Decimal) -> None:
    text = format_decimal(value)
    parsed = DEC.validate_python(text)
    assert parsed == value
    assert DEC.dump_python(parsed) == text  # out exactly as it came in: the signature covers the string


@pytest.mark.parametrize("bad", ["1e3", "1E-7", "-1", "+1", "01", "00.5", ".5", "5.", "1,5", " 1", "1 ", "", "NaN",
                                 "Infinity", "0x10", "1" * 31, "0." + "1" * 31, "١", "10\n", "1.5\n"])
def test_decimal_strings_that_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        DEC.validate_python(bad)


@pytest.mark.parametrize("bad", [1, 1.5, True, None, [1], {"v": "1"}])
def test_amounts_must_be_strings(bad: object) -> None:
    with pytest.raises(ValidationError):
        DEC.validate_python(bad)


def test_tiny_decimals_are_written_without_an_exponent() -> None:
    assert str(Decimal("1E-7")) == "1E-7"  # what str() would put on the wire ...
    assert format_decimal(Decimal("1E-7")) == "0.0000001"  # ... and what we put there instead
    assert DEC.dump_python(Decimal("1E-7")) == "0.0000001"


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=20, max_size=20))
def test_only_the_checksummed_spelling_of_an_address_is_accepted(raw: bytes) -> None:
    checksummed = to_checksum_address(raw)
    assert ADDR.validate_python(checksummed) == checksummed
    for other in (checksummed.lower(), "0x" + checksummed[2:].upper()):
        if other != checksummed:  # an address with no letters is the same in every case
            with pytest.raises(ValidationError):
                ADDR.validate_python(other)


@pytest.mark.parametrize("bad", ["0x123", "2b5ad5c4795c026514f8317c7a215e218dccd6cf00", 42, None])
def test_malformed_addresses_are_refused(bad: object) -> None:
    with pytest.raises(ValidationError):
        ADDR.validate_python(bad)


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_timestamps_convert_to_the_epoch_milliseconds_datetime_gives(moment: datetime) -> None:
    moment = moment.replace(tzinfo=timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    expected = calendar.timegm(moment.timetuple()) * 1000 + moment.microsecond // 1000
    assert timestamp_ms(TS.validate_python(text)) == expected
    assert format_timestamp(expected) == text


@pytest.mark.parametrize("bad", ["2025-10-01T12:00:00", "2025-10-01T12:00:00+00:00", "2025-02-30T12:00:00Z",
                                 "2025-10-01 12:00:00Z", "2025-13-01T12:00:00Z", "2025-10-01T24:00:00Z",
                                 "2025-10-01T12:00:00.1234567890Z", "yesterday", "2025-10-01T12:00:00Z\n",
                                 "٢٠٢٥-10-01T12:00:00Z", "2025-10-01T12:00:00.٥Z"])
def test_timestamps_that_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        TS.validate_python(bad)


def test_second_fractions_are_truncated_to_milliseconds() -> None:
    assert timestamp_ms("1970-01-01T00:00:01Z") == 1000
    assert timestamp_ms("1970-01-01T00:00:01.5Z") == 1500
    assert timestamp_ms("1970-01-01T00:00:01.999999Z") == 1999


@pytest.mark.parametrize("text,side", [("1", Side.BUY), ("2", Side.SELL), ("BUY", Side.BUY), ("sell", Side.SELL),
                                       ("Buy", Side.BUY)])
def test_side_accepts_fix_codes_and_spelled_names(text: str, side: Side) -> None:
    assert SIDE.validate_python(text) is side
    assert SIDE.dump_python(side) == ("1" if side is Side.BUY else "2")


@pytest.mark.parametrize("bad", ["bid", "ask", "b", "S", "3", "", 1, None])
def test_side_is_a_closed_set(bad: object) -> None:
    with pytest.raises(ValidationError):
        SIDE.validate_python(bad)


@pytest.mark.parametrize("bad", ["", "a b", "x" * 65, "é", "a/b", 7])
def test_ids_are_short_and_printable(bad: object) -> None:
    with pytest.raises(ValidationError):
        ID.validate_python(bad)
