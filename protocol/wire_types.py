"""The field types of the FIX/JSON wire, strict: what a field may hold is decided here, once, for every message.

Every byte of a client message is signed and may move money, so what a lenient parser would "fix" (a float amount,
an exponent, a lower-case address) is refused with BAD_FIELD instead. Amounts travel as plain decimal strings and
become `Decimal` without passing through a float."""
from __future__ import annotations

import calendar
import re
import time
from functools import lru_cache
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from eth_utils import is_checksum_address
from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, StringConstraints

from core.side import Side

U32_MAX = 2**32 - 1
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

#: Non-negative integers that fit FIX/JSON's u32 (sequence numbers, chain ids). Strict: "1", 1.0 and true are refused.
U32 = Annotated[int, Field(strict=True, ge=0, le=U32_MAX)]
#: Client order / quote ids and test request ids: printable, no spaces, so that logs and keys stay unambiguous.
Id = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9._:\-]{1,64}$")]
#: Ids made by our own components (exchange lot ids ...): printable ASCII without spaces.
LooseId = Annotated[str, StringConstraints(strict=True, pattern=r"^[!-~]{1,128}$")]
#: Index symbols (SY100) and asset symbols (BTC).
Symbol = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Z0-9]{1,20}$")]
CompId = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9._\-]{1,32}$")]
#: Free text from the server (reasons); bounded so that a NAK can never become a large frame.
Text = Annotated[str, StringConstraints(strict=True, max_length=512)]
#: Uncompressed SEC1 public key (65 bytes, 0x04 prefix) and recoverable signature r||s||v (65 bytes), 0x-hex.
PublicKeyHex = Annotated[str, StringConstraints(strict=True, pattern=r"^0x04[0-9a-fA-F]{128}$")]
SignatureHex = Annotated[str, StringConstraints(strict=True, pattern=r"^0x[0-9a-fA-F]{130}$")]
TxHash = Annotated[str, StringConstraints(strict=True, pattern=r"^0x[0-9a-fA-F]{64}$")]

# --- decimal strings --------------------------------------------------------------------------------------------

# \Z, not $: "$" also matches before a final newline, and Decimal() would then accept "10\n".
_DECIMAL_RE = re.compile(r"^(0|[1-9][0-9]{0,29})(\.[0-9]{1,30})?\Z")


def _parse_decimal(value: Any, signed: bool = False) -> Decimal:
    if isinstance(value, Decimal):  # built by our own code (server reports): must still be a sane amount
        if not value.is_finite() or (value < 0 and not signed):
            raise ValueError(f"amount must be a finite non-negative decimal, got {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"amounts are decimal strings like \"12.5\", not {type(value).__name__}")
    if signed and value.startswith("-") and value != "-0":
        return -_parse_decimal(value[1:])
    if _DECIMAL_RE.match(value) is None:
        raise ValueError(f"{value[:40]!r} is not a plain decimal string (digits, one optional point, no sign, "
                         f"no exponent, no leading zeros, at most 30 digits on each side)")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover  (the pattern admits only valid decimals)
        raise ValueError(f"{value!r} is not a decimal") from None


def format_decimal(value: Decimal) -> str:
    """Plain notation, never an exponent (str(Decimal("1e-7")) would give "1E-7", which the wire refuses)."""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


#: A non-negative amount on the wire: a string in, a Decimal in Python, the same plain string out.
DecimalStr = Annotated[Decimal, BeforeValidator(_parse_decimal), PlainSerializer(format_decimal, return_type=str)]
#: A signed number on the wire (a shortfall in bps: negative is a price improvement): a DecimalStr, or "-" and one.
SignedDecimalStr = Annotated[Decimal, BeforeValidator(lambda v: _parse_decimal(v, signed=True)),
                             PlainSerializer(format_decimal, return_type=str)]

# --- enums ------------------------------------------------------------------------------------------------------

#: Closed string enums: the value must be one of the enum's values (strict mode alone would demand an instance).
EnumValue = Field(strict=False)

# --- side -------------------------------------------------------------------------------------------------------

#: FIX tag 54 values and their spelled-out forms; nothing else ("bid", "b", ... of the reference are refused).
_SIDES = {"1": Side.BUY, "2": Side.SELL, "BUY": Side.BUY, "SELL": Side.SELL, "buy": Side.BUY, "sell": Side.SELL,
          "Buy": Side.BUY, "Sell": Side.SELL}


def _parse_side(value: Any) -> Side:
    if isinstance(value, Side):
        return value
    if isinstance(value, str) and value in _SIDES:
        return _SIDES[value]
    raise ValueError(f"side must be one of {sorted(_SIDES)}, got {str(value)[:20]!r}")


def _side_out(side: Side) -> str:
    return "1" if side is Side.BUY else "2"


WireSide = Annotated[Side, BeforeValidator(_parse_side), PlainSerializer(_side_out, return_type=str)]

# --- addresses --------------------------------------------------------------------------------------------------

_checked: dict[str, None] = {}  # addresses already proven checksummed: the check costs ~19 us, a dict hit ~50 ns
_CHECKED_MAX = 200_000


def check_address(value: str) -> str:
    """`value` if it is an EIP-55 checksummed address, else ValueError (results are cached)."""
    if value in _checked:
        return value
    if len(value) != 42 or not value.startswith("0x") or not is_checksum_address(value):
        raise ValueError(f"address must be a 20-byte EIP-55 checksummed hex address, got {value[:44]!r}")
    if len(_checked) >= _CHECKED_MAX:
        _checked.clear()  # bounded memory; the next hits simply pay the check again
    _checked[value] = None
    return value


Address = Annotated[str, StringConstraints(strict=True), AfterValidator(check_address)]

# --- timestamps -------------------------------------------------------------------------------------------------

# ASCII digits only (\d would take any Unicode digit, and int() reads them) and \Z (no final newline).
_TS_RE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z\Z")


@lru_cache(maxsize=4096)  # validation and the skew check both need it: the second call is a hit
def timestamp_ms(value: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 UTC timestamp ("2025-10-01T12:00:00.000Z"); ValueError if not
    one. Sub-millisecond digits are truncated (time only compares against a window of seconds)."""
    m = _TS_RE.match(value)
    if m is None:
        raise ValueError(f"timestamp must be RFC 3339 UTC like 2025-10-01T12:00:00.000Z, got {value[:40]!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1] and hour < 24 and minute < 60
            and second < 60):
        raise ValueError(f"timestamp {value!r} is not a valid date and time")
    frac = m.group(7) or ""
    millis = int((frac + "000")[:3])
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) * 1000 + millis


def _check_timestamp(value: str) -> str:
    timestamp_ms(value)
    return value


_last_formatted: list = [None, ""]  # [ms, text]: many frames are stamped within the same millisecond


def format_timestamp(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, the form every frame of ours carries."""
    if _last_formatted[0] == ms:
        return _last_formatted[1]
    seconds, millis = divmod(ms, 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
    _last_formatted[0], _last_formatted[1] = ms, text
    return text


#: Kept as the string that was sent (it is covered by the signature); `timestamp_ms` converts it.
Timestamp = Annotated[str, StringConstraints(strict=True, max_length=40), AfterValidator(_check_timestamp)]
