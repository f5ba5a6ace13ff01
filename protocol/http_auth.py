"""Signed HTTP requests: the FIX/JSON signature scheme (§10.2: EIP-191 over canonical JSON) applied to a request.

A client proves who it is with three headers:

    X-IndexMaker-Address:   0x... (EIP-55), the user
    X-IndexMaker-Timestamp: 2026-01-01T12:00:00.000Z (RFC 3339 UTC, like a frame's header timestamp)
    X-IndexMaker-Signature: 0x + 65 bytes r||s||v, EIP-191 over request_payload(...)

The signed payload is canonical JSON (sorted keys, compact, UTF-8) of
`{"address", "kind": "http_request", "method", "target", "timestamp"}`, where `target` is the request-target
exactly as sent (path and query string, e.g. `/invoices?user=0x...`). So the method, the path, the query and the
time are all covered; the `kind` field keeps a request signature from ever being mistaken for a signed frame (a
frame's canonical form has `standard_header` and no `kind`). A request is fresh for `max_skew_ms` either side of
the server's clock (the same window as frames); within it the same request can be replayed, which for a read-only
GET only returns again what the signer was already shown.

Failures are `HttpAuthError` with HTTP status 401 and a stable code (MISSING_AUTH, BAD_ADDRESS, BAD_TIMESTAMP,
STALE_TIMESTAMP, BAD_SIGNATURE); whether the signer may see what it asks for (403) is the service's business.
"""
from __future__ import annotations

from typing import Mapping

from protocol.codec import dumps_sorted
from protocol.signature import SignatureError, Signer, address_hex_of, recover_public_key
from protocol.wire_types import check_address, format_timestamp, timestamp_ms

HEADER_ADDRESS = "X-IndexMaker-Address"
HEADER_TIMESTAMP = "X-IndexMaker-Timestamp"
HEADER_SIGNATURE = "X-IndexMaker-Signature"
KIND = "http_request"


class HttpAuthError(Exception):
    """The request is not authenticated; `status` is the HTTP status to answer, `code` a stable reason."""

    def __init__(self, code: str, text: str, status: int = 401) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.status = status


def request_payload(method: str, target: str, address: str, timestamp: str) -> bytes:
    """The exact bytes a request signature covers."""
    return dumps_sorted({"address": address, "kind": KIND, "method": method.upper(), "target": target,
                         "timestamp": timestamp})


def sign_request(signer: Signer, method: str, target: str, now_ms: int) -> dict[str, str]:
    """The three auth headers for `method target` sent now by `signer` (the client side)."""
    timestamp = format_timestamp(now_ms)
    signature = signer.sign(request_payload(method, target, signer.address, timestamp))
    return {HEADER_ADDRESS: signer.address, HEADER_TIMESTAMP: timestamp, HEADER_SIGNATURE: signature}


def verify_request(method: str, target: str, headers: Mapping[str, str], now_ms: int, max_skew_ms: int) -> str:
    """The signer's address (EIP-55, as sent) if the headers authenticate `method target` now; else HttpAuthError.
    Checks in order: headers present, address well-formed, timestamp well-formed and fresh, signature by that
    address over this method, target and timestamp."""
    address, timestamp, signature = (headers.get(HEADER_ADDRESS), headers.get(HEADER_TIMESTAMP),
                                     headers.get(HEADER_SIGNATURE))
    missing = [h for h, v in ((HEADER_ADDRESS, address), (HEADER_TIMESTAMP, timestamp),
                              (HEADER_SIGNATURE, signature)) if not v]
    if missing:
        raise HttpAuthError("MISSING_AUTH", f"sign the request: missing header(s) {', '.join(missing)}")
    assert address is not None and timestamp is not None and signature is not None
    try:
        check_address(address)
    except ValueError as exc:
        raise HttpAuthError("BAD_ADDRESS", f"{HEADER_ADDRESS}: {exc}") from None
    try:
        sent_ms = timestamp_ms(timestamp)
    except ValueError as exc:
        raise HttpAuthError("BAD_TIMESTAMP", f"{HEADER_TIMESTAMP}: {exc}") from None
    skew = sent_ms - now_ms
    if abs(skew) > max_skew_ms:
        raise HttpAuthError("STALE_TIMESTAMP", f"{HEADER_TIMESTAMP} is {skew} ms off the server clock "
                                               f"(allowed +-{max_skew_ms})")
    try:
        public_key = recover_public_key(request_payload(method, target, address, timestamp), signature)
    except SignatureError as exc:
        raise HttpAuthError("BAD_SIGNATURE", f"{HEADER_SIGNATURE}: {exc}") from None
    if address_hex_of(public_key) != address[2:].lower():
        raise HttpAuthError("BAD_SIGNATURE", "the signature is not the address's over this method, target and "
                                             "timestamp (another key, or the request changed after signing)")
    return address
