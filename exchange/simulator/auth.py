"""Binance request signatures (HMAC-SHA256, hex), checked on the raw bytes as sent.

REST: the signed payload is the query string followed by the body (no separator) without the `signature`
parameter; parsing and re-encoding would change what was signed. WebSocket API: the params except `signature`,
sorted by name and joined `k=v&...`.
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Any, Mapping


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _strip(raw: str) -> tuple[str, str | None]:
    if not raw or "signature=" not in raw:
        return raw, None
    kept, sig = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            sig = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), sig


def split_signed(query: str, body: str) -> tuple[str, str | None]:
    """(payload that was signed, signature or None)."""
    q, sig_q = _strip(query)
    b, sig_b = _strip(body)
    return q + b, sig_q if sig_q is not None else sig_b


def valid(secret: str, payload: str, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, payload), signature.lower())


def ws_payload(params: Mapping[str, Any]) -> str:
    def text(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)
    return "&".join(f"{k}={text(params[k])}" for k in sorted(params) if k != "signature")
