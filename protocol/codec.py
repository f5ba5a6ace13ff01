"""The JSON codec: frame text <-> (envelope, body), the canonical form that is signed, and the NAK-able errors.

Decoding is strict and in a fixed order so each failure maps to one code: TOO_LARGE, BAD_JSON, UNKNOWN_MSG_TYPE,
BAD_FIELD. The raw dict is kept: the signature covers what the client sent. Canonical form (§10.2): no trailer,
sorted keys, no spaces, UTF-8. orjson is used where it provably gives the same bytes (~10x faster; see
`_fast_parse`)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from pydantic import ValidationError

from protocol.envelope import ENVELOPE_KEYS, Body, Envelope
from protocol.reason_codes import NakCode
from protocol.signature import Signer
from protocol.wire_types import U32_MAX, ZERO_ADDRESS, check_address

_COMPACT = (",", ":")


def _dumps_sorted_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=_COMPACT, ensure_ascii=False).encode("utf-8")


try:
    import orjson

    _ORJSON_SORT = orjson.OPT_SORT_KEYS
    _orjson_loads: Any = orjson.loads
    _orjson_dumps: Any = orjson.dumps

    def dumps_sorted(obj: Any) -> bytes:
        """Canonical JSON bytes of `obj` (see the module docstring)."""
        return orjson.dumps(obj, option=_ORJSON_SORT)

except ImportError:  # pragma: no cover  (orjson is a dependency of ccxt)
    dumps_sorted = _dumps_sorted_json
    _orjson_loads = _orjson_dumps = None


class FrameError(Exception):
    """A frame that cannot be taken, with what could still be read of it for the NAK."""

    def __init__(self, code: NakCode, text: str, seq_num: int = 0, chain_id: int = 0,
                 address: str = ZERO_ADDRESS, *, retry_after_ms: int | None = None,
                 expected_seq_num: int | None = None) -> None:
        super().__init__(f"{code.value}: {text}")
        self.code = code
        self.text = text[:500]
        self.seq_num = seq_num
        self.chain_id = chain_id
        self.address = address
        self.retry_after_ms = retry_after_ms
        self.expected_seq_num = expected_seq_num
        self.comp_ids: tuple[str, str] | None = None  # (our sender, our target), swapped from the frame's header


@dataclass(slots=True, frozen=True)
class Decoded:
    raw: dict[str, Any]
    envelope: Envelope
    body: Body

    @property
    def msg_type(self) -> str:
        return self.envelope.standard_header.msg_type

    @property
    def seq_num(self) -> int:
        return self.envelope.standard_header.seq_num


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate key {dup[:40]!r}")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)


def _fast_parse(frame: str) -> Any:
    """orjson's parse (~5x faster), or None when it cannot be proven to give what `_DECODER` gives; the caller then
    parses with `_DECODER`, which also words the errors.

    orjson silently keeps the last duplicate key and reads big integers as floats, so its result is taken only if
    writing it back gives the frame byte for byte: then no key was dropped and every number reads as written. Our
    client writes frames that way; others take the strict path."""
    if _orjson_loads is None:
        return None
    try:
        raw = _orjson_loads(frame)
    except ValueError:
        return None
    try:
        if _orjson_dumps(raw) != frame.encode("utf-8"):
            return None
    except (TypeError, UnicodeEncodeError):  # pragma: no cover  (a str with a lone surrogate: orjson refused it)
        return None
    return raw


#: Requests hold a handful of objects and arrays; more than this many is refused before parsing, which bounds the
#: nesting depth: the C JSON parser recurses per level and, with a raised recursion limit (hypothesis raises it),
#: a frame of 8,000 "[" overflows the C stack and kills the process.
MAX_CONTAINERS = 64


def parse_frame(frame: str | bytes, max_bytes: int, max_containers: int = MAX_CONTAINERS) -> dict[str, Any]:
    """The frame as a dict. TOO_LARGE above `max_bytes` (UTF-8), BAD_JSON for binary frames, for more than
    `max_containers` objects and arrays, and for anything that is not exactly one JSON object."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        raise FrameError(NakCode.BAD_JSON, "binary frames are not accepted: send JSON as a text frame")
    if len(frame) > max_bytes or (len(frame) * 4 > max_bytes and len(frame.encode("utf-8")) > max_bytes):
        raise FrameError(NakCode.TOO_LARGE, f"frame exceeds {max_bytes} bytes")
    if frame.count("[") + frame.count("{") > max_containers:  # counts brackets in strings too: harmless here
        raise FrameError(NakCode.BAD_JSON, f"more than {max_containers} objects and arrays")
    raw = _fast_parse(frame)
    if raw is None:
        try:
            raw = _DECODER.decode(frame)
        except (ValueError, RecursionError) as exc:
            raise FrameError(NakCode.BAD_JSON, f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise FrameError(NakCode.BAD_JSON, f"a frame must be one JSON object, got {type(raw).__name__}")
    return raw


def peek(raw: Mapping[str, Any]) -> tuple[int, int, str]:
    """(seq_num, chain_id, address) as far as they can be read from an unvalidated frame; 0 / zero address if not.
    NAKs carry them so that a client can match the NAK to what it sent (§10.4)."""
    header = raw.get("standard_header")
    seq = header.get("seq_num") if isinstance(header, dict) else None
    seq = seq if type(seq) is int and 0 <= seq <= U32_MAX else 0
    chain_id = raw.get("chain_id")
    chain_id = chain_id if type(chain_id) is int and 0 <= chain_id <= U32_MAX else 0
    address = raw.get("address")
    try:
        address = check_address(address) if isinstance(address, str) else ZERO_ADDRESS
    except ValueError:
        address = ZERO_ADDRESS
    return seq, chain_id, address


def _field_errors(exc: ValidationError, prefix: str = "") -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        parts.append(f"{prefix}{loc}: {err['msg']}")
    more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def decode(raw: dict[str, Any], bodies: Mapping[str, type[Body]]) -> Decoded:
    """Validate a parsed frame against the envelope and the body model of its msg_type."""
    header = raw.get("standard_header")
    msg_type = header.get("msg_type") if isinstance(header, dict) else None
    if not isinstance(msg_type, str):
        seq, chain_id, address = peek(raw)
        raise FrameError(NakCode.BAD_FIELD, "standard_header.msg_type is missing or not a string", seq, chain_id,
                         address)
    body_cls = bodies.get(msg_type)
    if body_cls is None:
        seq, chain_id, address = peek(raw)
        raise FrameError(NakCode.UNKNOWN_MSG_TYPE, f"unknown msg_type {msg_type[:64]!r}", seq, chain_id, address)
    envelope_part = {}
    body_part = {}
    for key, value in raw.items():
        if key in ENVELOPE_KEYS:
            envelope_part[key] = value
        else:
            body_part[key] = value
    try:
        envelope = Envelope.model_validate(envelope_part)
        body = body_cls.model_validate(body_part)
    except ValidationError as exc:
        seq, chain_id, address = peek(raw)
        raise FrameError(NakCode.BAD_FIELD, _field_errors(exc), seq, chain_id, address) from None
    return Decoded(raw, envelope, body)


def canonical(raw: Mapping[str, Any]) -> bytes:
    """The signed bytes of a message: everything but the trailer, sorted keys, compact, UTF-8 (§10.2)."""
    return dumps_sorted({k: v for k, v in raw.items() if k != "standard_trailer"})


def body_dict(body: Body) -> dict[str, Any]:
    """Body fields as JSON values; absent optionals are left out (they decode back to None)."""
    return body.model_dump(mode="json", exclude_none=True)


def encode(header: Mapping[str, Any], chain_id: int, address: str, body: Body, signer: Signer | None) -> str:
    """One frame: envelope + body, signed with `signer` (EIP-191 over the canonical form) or with an empty trailer."""
    msg = {"standard_header": header, "chain_id": chain_id, "address": address}
    msg.update(body_dict(body))
    signed = dumps_sorted(msg)
    text = signed.decode("utf-8")
    if signer is None:
        trailer = '{"public_key":[],"signature":[]}'
    else:
        signature = signer.sign(signed)
        trailer = f'{{"public_key":["{signer.public_key_hex}"],"signature":["{signature}"]}}'
    return f'{text[:-1]},"standard_trailer":{trailer}}}'


def header(msg_type: str, sender_comp_id: str, target_comp_id: str, seq_num: int, timestamp: str) -> dict[str, Any]:
    return {"msg_type": msg_type, "sender_comp_id": sender_comp_id, "target_comp_id": target_comp_id,
            "seq_num": seq_num, "timestamp": timestamp}


def ack_frame(sender_comp_id: str, target_comp_id: str, seq_num: int, timestamp: str, chain_id: int, address: str,
              ref_seq_num: int) -> str:
    """encode(header("ACK", ...), chain_id, address, Ack(ref_seq_num), None), built from a template (keys in
    canonical order) because every request gets one. The inputs are already valid (comp ids and address were
    validated on the way in; the rest are ints and our own timestamp)."""
    return (f'{{"address":"{address}","chain_id":{chain_id},"ref_seq_num":{ref_seq_num},"standard_header":'
            f'{{"msg_type":"ACK","sender_comp_id":"{sender_comp_id}","seq_num":{seq_num},'
            f'"target_comp_id":"{target_comp_id}","timestamp":"{timestamp}"}},'
            f'"standard_trailer":{{"public_key":[],"signature":[]}}}}')
