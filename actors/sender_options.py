"""The order sender's options: one account's exchange, store and pace, taken from the settings.

Tests build them by hand; the system takes them from core.config (`[exchange]`, `[sender]`, `[exchange_guards]`,
the store's retry policy) through `from_settings`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from store.retry import RetryPolicy


@dataclass(frozen=True)
class SenderOptions:
    rest_url: str | None
    ws_url: str | None
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    #: The store (the settings' `redis_url`; None only before a local world has started its own).
    redis_url: str | None = None
    #: Redis key prefix (one sender per account).
    account: str = "main"
    #: Fraction of each exchange limit the sender allows itself.
    rate_limit_safety: Decimal = Decimal("0.95")
    recv_window_ms: int = 10_000
    #: A REST request unanswered after this long is a StatusUnknown (then resolved by a query).
    request_timeout_ms: int = 5_000
    #: Clock offset and stamping allowance on top of recvWindow before a "not found" is final.
    resolve_margin_ms: int = 1_000
    #: Requests outstanding at once: one batch's orders (up to Binance's 100 orders per 10 s) go out in one wave.
    max_in_flight: int = 128
    #: While a wave is started, yield to the event loop after every this many requests so that the first ones reach
    #: their sockets before the rest are built (0: start the whole wave, then write; see OrderSender._launch).
    launch_yield_every: int = 16
    time_in_force: str = "IOC"
    #: Request weights (Binance: POST order 1, GET order 4, GET myTrades with orderId 5, exchangeInfo 20); these
    #: defaults serve tests that build options by hand: the system takes them from core.config's [sender].
    order_weight: int = 1
    query_weight: int = 4
    trades_weight: int = 5
    info_weight: int = 20
    account_weight: int = 20
    #: Idle REST connections are kept this long: batches minutes apart still go out over open connections.
    http_keepalive_s: float = 300.0
    #: A final order whose fills have not all arrived by the stream after this long is asked for its trades.
    missing_fills_grace_ms: int = 2_000
    #: Back-off after a 429 that carried no Retry-After.
    default_retry_after_s: int = 1
    #: The store and the exchange's queries and streams are waited out with this.
    retry: RetryPolicy = field(default_factory=RetryPolicy.default)
    #: Guards (core.config.ExchangeGuardsConfig): the average price's age limit and request weight, the breaker.
    avg_price_max_age_ms: int = 60_000
    avg_price_weight: int = 2
    avg_price_refresh_ms: int = 15_000
    avg_price_keep_ms: int = 1_800_000
    breaker_threshold: int = 3
    breaker_cool_off_ms: int = 300_000
    status_poll_ms: int = 60_000
    closed_poll_ms: int = 5_000
    #: The exchange's WebSocket API (user data) where it is not `ws_url`/ws-api/v3, and ccxt's sandbox (testnet).
    ws_api_url: str | None = None
    sandbox: bool = False

    @classmethod
    def from_settings(cls, settings: Any, api_key: str, secret: str, **overrides: Any) -> "SenderOptions":
        x = settings.exchange
        values: dict[str, Any] = {"rest_url": x.rest_url, "ws_url": x.ws_url, "ws_api_url": x.ws_api_url,
                                  "sandbox": x.sandbox, "api_key": api_key, "secret": secret,
                                  "redis_url": settings.redis_url,
                                  "rate_limit_safety": x.rate_limit_safety, "recv_window_ms": x.recv_window_ms}
        values.update(settings.sender.model_dump())  # pace, weights, waits: the [sender] section
        g = settings.exchange_guards
        values.update(avg_price_max_age_ms=g.avg_price_max_age_ms, avg_price_weight=g.avg_price_weight,
                      avg_price_refresh_ms=g.avg_price_refresh_ms, avg_price_keep_ms=g.avg_price_keep_ms,
                      breaker_threshold=g.breaker_threshold, breaker_cool_off_ms=g.breaker_cool_off_ms,
                      status_poll_ms=g.status_poll_ms, closed_poll_ms=g.closed_poll_ms)
        values["retry"] = RetryPolicy.from_settings(settings)
        values.update(overrides)
        return cls(**values)
