"""The FIX/JSON envelope every message shares (spec/fix-json.md §2, §10.1): header, user identity, trailer.

A frame is one flat JSON object: the envelope fields below plus the body fields of its msg_type as siblings. The
codec validates the two halves separately (`Envelope` here, the body model of the msg_type elsewhere), so a body
model never repeats the envelope and the server can wrap any plugin's body without knowing what it means.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from protocol.wire_types import U32, Address, CompId, PublicKeyHex, SignatureHex, Timestamp

#: The keys that belong to the envelope; every other top-level key is a body field.
ENVELOPE_KEYS = frozenset({"standard_header", "chain_id", "address", "standard_trailer"})


class WireModel(BaseModel):
    """Strict and closed: wrong types are refused, not coerced; unknown fields are refused; instances are frozen."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Body(WireModel):
    """The body fields of one msg_type (siblings of the envelope on the wire); subclasses name their MSG_TYPE."""

    MSG_TYPE: ClassVar[str]


class StandardHeader(WireModel):
    msg_type: str = Field(min_length=1, max_length=64)
    sender_comp_id: CompId
    target_comp_id: CompId
    seq_num: U32
    timestamp: Timestamp


class StandardTrailer(WireModel):
    """Signature r||s||v over the canonical body (EIP-191); the public key is optional (the address is recovered)."""

    public_key: list[PublicKeyHex] = Field(default_factory=list, max_length=1)
    signature: list[SignatureHex] = Field(default_factory=list, max_length=1)


class Envelope(WireModel):
    standard_header: StandardHeader
    chain_id: U32
    address: Address
    standard_trailer: StandardTrailer | None = None

    @property
    def msg_type(self) -> str:
        return self.standard_header.msg_type

    @property
    def seq_num(self) -> int:
        return self.standard_header.seq_num

    @property
    def signature(self) -> str | None:
        trailer = self.standard_trailer
        return trailer.signature[0] if trailer is not None and trailer.signature else None

    @property
    def user(self) -> "UserRef":
        return UserRef(self.chain_id, self.address)


@dataclass(frozen=True, slots=True)
class UserRef:
    """A user is the pair (chain_id, address) (§2); `key` names it in stores, books and logs."""

    chain_id: int
    address: str

    @property
    def key(self) -> str:
        return f"{self.chain_id}:{self.address}"
