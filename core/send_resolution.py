"""When is "the exchange does not know this order" a final answer?

A send with an unknown outcome is resolved by querying its client order id before any resend. "Not found" is final
only once the request can no longer execute: Binance refuses it after `timestamp + recvWindow`, so after that
(plus a clock margin) it may go again under a new attempt id. The same id would not protect us: Binance refuses
duplicates only while open."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class NotFoundVerdict(str, Enum):
    RESEND = "RESEND"  # the original can no longer execute: send again under attempt + 1
    ASK_AGAIN = "ASK_AGAIN"  # the original may still arrive: query again at `at_ms`


@dataclass(frozen=True, slots=True)
class NotFoundDecision:
    verdict: NotFoundVerdict
    at_ms: int  # when the "not found" becomes conclusive


def conclusive_at(sent_at_ms: int, recv_window_ms: int, margin_ms: int) -> int:
    """The first instant at which the exchange must refuse a request stamped `sent_at_ms`."""
    if recv_window_ms < 0 or margin_ms < 0:
        raise ValueError("recv window and margin must be >= 0")
    return sent_at_ms + recv_window_ms + margin_ms


def on_not_found(sent_at_ms: int, now_ms: int, recv_window_ms: int, margin_ms: int) -> NotFoundDecision:
    """What a "not found" answer, received at `now_ms`, means for a send stamped `sent_at_ms`. The query must have
    been ISSUED after the conclusive instant, so callers pass the time they sent the query, not when it returned."""
    at = conclusive_at(sent_at_ms, recv_window_ms, margin_ms)
    return NotFoundDecision(NotFoundVerdict.RESEND if now_ms >= at else NotFoundVerdict.ASK_AGAIN, at)
