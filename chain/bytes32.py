"""Across 5.x passes addresses as bytes32 (12 zero bytes + the 20 address bytes): conversions both ways."""
from __future__ import annotations

from eth_utils import to_checksum_address


def address_to_bytes32(address: str) -> bytes:
    raw = bytes.fromhex(address[2:] if address.startswith("0x") else address)
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address}")
    return b"\x00" * 12 + raw


def bytes32_to_address(value: bytes) -> str:
    if len(value) != 32:
        raise ValueError(f"not 32 bytes: {value!r}")
    if any(value[:12]):
        raise ValueError(f"bytes32 {value.hex()} is not an EVM address (upper 12 bytes set)")
    return to_checksum_address(value[12:])
