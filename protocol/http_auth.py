"""Signed HTTP requests: the FIX/JSON signature scheme (§10.2: EIP-191 over canonical JSON) applied to a request.

Headers X-IndexMaker-Address, -Timestamp and -Signature; the signature covers canonical JSON of `{"address",
"kind": "http_request", "method", "target", "timestamp"}` (`target`: path and query as sent). `kind` keeps it
from passing as a signed frame. Fresh within `max_skew_ms`; a replay in that window only re-reads. Failures are
`HttpAuthError`, 401 with a stable code; 403 is the service's business."""
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
