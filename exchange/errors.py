"""The project's own exchange errors: what the actors catch instead of ccxt's classes (ccxt stays in gateway.py).

Each carries the exchange's own `code` and `msg`, so callers decide on the exchange's words. The split follows what
a caller must DO: `OrderRejected`, the order did not happen (fix or drop it); `RateLimited`, back off (`IpBanned`
follows an ignored 429); `StatusUnknown`, it may have executed: reconcile by client id before any resend."""
from __future__ import annotations


class ExchangeError(Exception):
    """Any error the exchange answered (or failed to answer). `code` is Binance's code when it sent one."""

    def __init__(self, msg: str, code: int | None = None, *, http_status: int | None = None) -> None:
        super().__init__(f"{code}: {msg}" if code is not None else msg)
        self.code = code
        self.msg = msg
        self.http_status = http_status

    def __reduce__(self):  # exceptions cross Ray boundaries pickled: keep the attributes
        return (_rebuild, (type(self), self.msg, self.code, self.http_status, dict(self.__dict__)))


def _rebuild(cls, msg, code, http_status, state):
    obj = cls.__new__(cls)
    ExchangeError.__init__(obj, msg, code, http_status=http_status)
    obj.__dict__.update(state)
    return obj


class OrderRejected(ExchangeError):
    """The exchange refused the order; nothing was placed."""


class FilterRejected(OrderRejected):
    """-1013 "Filter failure: <NAME>": `filter` is the Binance filter name (LOT_SIZE, NOTIONAL, ...)."""

    @property
    def filter(self) -> str | None:
        prefix = "Filter failure: "
        return self.msg[len(prefix):] if self.msg.startswith(prefix) else None


class MarketClosed(OrderRejected):
    """-1013 "Market is closed.": the symbol is not TRADING."""


class InsufficientBalance(OrderRejected):
    """-2010 "Account has insufficient balance for requested action."."""


class WouldTakeLiquidity(OrderRejected):
    """-2010 "Order would immediately match and take." (a LIMIT_MAKER that crosses)."""


class DuplicateOrder(OrderRejected):
    """-2010 "Duplicate order sent.": an OPEN order already has this client order id. Query it, do not resend."""


class OrderNotFound(ExchangeError):
    """-2011 (cancel) / -2013 (query): the exchange does not know the order, or it is no longer open."""


class BadSymbol(ExchangeError):
    """-1121 "Invalid symbol."."""


class BadRequest(ExchangeError):
    """Malformed parameters (-1100, -1102, -1111, ...): a bug on our side, not a market condition."""


class AuthenticationFailed(ExchangeError):
    """-1022 bad signature, -2014 / -2015 bad API key."""


class InvalidTimestamp(AuthenticationFailed):
    """-1021: the request's timestamp is outside recvWindow (clock skew or a slow path)."""


class RateLimited(ExchangeError):
    """HTTP 429 (-1003 weight, -1015 orders). `retry_after_s` from the Retry-After header when known."""

    def __init__(
        self, msg: str, code: int | None = None, *, http_status: int | None = None, retry_after_s: int | None = None
    ) -> None:
        super().__init__(msg, code, http_status=http_status)
        self.retry_after_s = retry_after_s


class IpBanned(RateLimited):
    """HTTP 418: kept sending after a 429; banned until Retry-After."""


class StatusUnknown(ExchangeError):
    """5xx, -1007, a timeout or a dropped connection: the request may have executed. Reconcile before resending."""


class ExchangeUnavailable(StatusUnknown):
    """The exchange could not be reached at all (connection refused, DNS). For orders still treated as unknown."""


class WithdrawRefused(ExchangeError):
    """The exchange refused a withdrawal (Binance's wallet codes: -4018 asset or network unknown, -4019 withdrawals
    closed for it, -4021 not a multiple, -4022 below the minimum, -4023 above the maximum, -4026 insufficient
    balance, -4033 illegal address; -1002 the API key may not withdraw). Nothing was debited."""


class WithdrawBelowMinimum(WithdrawRefused):
    """-4022: less than the network's withdrawMin."""


class WithdrawInsufficientBalance(WithdrawRefused):
    """-4026: free balance below amount + fee."""


class WithdrawNetworkUnknown(WithdrawRefused):
    """-4018: the exchange does not list the coin, or not on that network."""


class WithdrawNotPermitted(WithdrawRefused):
    """-1002: the API key lacks the withdrawal permission (or the network's withdrawals are closed: -4019)."""
