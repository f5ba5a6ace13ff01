"""protocol/http_auth.py: a signed request proves its address over method, target and time, and nothing else does."""
from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from protocol.http_auth import (HEADER_ADDRESS, HEADER_SIGNATURE, HEADER_TIMESTAMP, HttpAuthError, request_payload,
                                sign_request, verify_request)
from protocol.signature import Signer

NOW = 1_767_268_800_000  # 2026-01-01T12:00:00Z
SKEW = 60_000
ALICE = Signer("0x" + "11" * 32)
BOB = Signer("0x" + "22" * 32)


def code_of(method: str, target: str, headers: dict, now: int = NOW) -> str:
    with pytest.raises(HttpAuthError) as info:
        verify_request(method, target, headers, now, SKEW)
    assert info.value.status == 401
    return info.value.code


def test_a_signed_request_verifies_to_its_address() -> None:
    headers = sign_request(ALICE, "get", "/invoices?user=" + ALICE.address, NOW)
    assert verify_request("GET", "/invoices?user=" + ALICE.address, headers, NOW + SKEW, SKEW) == ALICE.address


def test_the_signature_is_plain_eip191_over_the_payload() -> None:
    """Any EVM wallet can sign it: eth-account recovers the same address from the same bytes."""
    headers = sign_request(ALICE, "GET", "/invoices/C-1", NOW)
    payload = request_payload("GET", "/invoices/C-1", ALICE.address, headers[HEADER_TIMESTAMP])
    assert payload == (b'{"address":"' + ALICE.address.encode() + b'","kind":"http_request","method":"GET",'
                       b'"target":"/invoices/C-1","timestamp":"2026-01-01T12:00:00.000Z"}')
    assert Account.recover_message(encode_defunct(primitive=payload),
                                   signature=headers[HEADER_SIGNATURE]) == ALICE.address


def test_every_part_of_the_request_is_covered() -> None:
    headers = sign_request(ALICE, "GET", "/invoices/C-1", NOW)
    assert code_of("GET", "/invoices/C-2", headers) == "BAD_SIGNATURE"  # another path
    assert code_of("GET", "/invoices/C-1?user=x", headers) == "BAD_SIGNATURE"  # another query
    assert code_of("POST", "/invoices/C-1", headers) == "BAD_SIGNATURE"  # another method
    later = {**headers, HEADER_TIMESTAMP: "2026-01-01T12:00:01.000Z"}
    assert code_of("GET", "/invoices/C-1", later) == "BAD_SIGNATURE"  # another time
    as_bob = {**headers, HEADER_ADDRESS: BOB.address}
    assert code_of("GET", "/invoices/C-1", as_bob) == "BAD_SIGNATURE"  # claiming another address


def test_freshness_window() -> None:
    headers = sign_request(ALICE, "GET", "/invoices", NOW)
    assert verify_request("GET", "/invoices", headers, NOW - SKEW, SKEW) == ALICE.address
    assert code_of("GET", "/invoices", headers, NOW + SKEW + 1) == "STALE_TIMESTAMP"
    assert code_of("GET", "/invoices", headers, NOW - SKEW - 1) == "STALE_TIMESTAMP"


def test_malformed_headers_get_their_own_codes() -> None:
    headers = sign_request(ALICE, "GET", "/invoices", NOW)
    assert code_of("GET", "/invoices", {}) == "MISSING_AUTH"
    assert code_of("GET", "/invoices", {k: v for k, v in headers.items() if k != HEADER_SIGNATURE}) == "MISSING_AUTH"
    assert code_of("GET", "/invoices", {**headers, HEADER_ADDRESS: ALICE.address.lower()}) == "BAD_ADDRESS"
    assert code_of("GET", "/invoices", {**headers, HEADER_TIMESTAMP: "yesterday"}) == "BAD_TIMESTAMP"
    assert code_of("GET", "/invoices", {**headers, HEADER_SIGNATURE: "0x1234"}) == "BAD_SIGNATURE"
    high_s = headers[HEADER_SIGNATURE][:66] + "f" * 64 + headers[HEADER_SIGNATURE][-2:]
    assert code_of("GET", "/invoices", {**headers, HEADER_SIGNATURE: high_s}) == "BAD_SIGNATURE"
