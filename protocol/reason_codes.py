"""Stable reason codes (spec/fix-json.md §10.4, §10.5): machines branch on the code, humans read the text beside it.

Two closed sets, because they answer different questions:
* `NakCode`: why a frame was not taken at all (protocol level, sent in a NAK; the inbound sequence does not move);
* `ReasonCode`: why the application refused or ended a request it did take (business level, sent in a report).
"""
from __future__ import annotations

from enum import Enum


class NakCode(str, Enum):
    TOO_LARGE = "TOO_LARGE"  # frame above the configured size
    BAD_JSON = "BAD_JSON"  # not one JSON object in a text frame (also: binary frames, duplicate keys, NaN)
    UNKNOWN_MSG_TYPE = "UNKNOWN_MSG_TYPE"  # msg_type neither the session layer nor the plugin knows
    BAD_FIELD = "BAD_FIELD"  # a field missing, of the wrong type or form, or not allowed
    BAD_SIGNATURE = "BAD_SIGNATURE"  # unsigned, unparsable signature, or recovered address != address
    NOT_LOGGED_ON = "NOT_LOGGED_ON"  # only Logon (and heartbeats) before a session is bound
    ALREADY_LOGGED_ON = "ALREADY_LOGGED_ON"  # a second Logon on a bound session
    WRONG_USER = "WRONG_USER"  # (chain_id, address) differs from the one the session is bound to
    TOO_MANY_SESSIONS = "TOO_MANY_SESSIONS"  # the address has its maximum of live sessions
    BAD_SEQUENCE = "BAD_SEQUENCE"  # seq_num is not last accepted + 1 (replays land here)
    BAD_RESUME = "BAD_RESUME"  # Logon's last_server_seq_num is beyond what the server ever sent
    RESUME_TOO_OLD = "RESUME_TOO_OLD"  # Logon's last_server_seq_num is before the oldest message still kept
    STALE_TIMESTAMP = "STALE_TIMESTAMP"  # header timestamp outside the allowed skew
    RATE_LIMITED = "RATE_LIMITED"  # over a session / user / global limit; retry_after_ms says when
    UNSUPPORTED = "UNSUPPORTED"  # a known message the application does not offer (AccountToCustody ...)
    SERVER_BUSY = "SERVER_BUSY"  # the store is behind; nothing was taken, retry later
    INTERNAL_ERROR = "INTERNAL_ERROR"  # a bug on our side; the frame was not taken, the session goes on


class ReasonCode(str, Enum):
    UNKNOWN_INDEX = "UNKNOWN_INDEX"
    DUPLICATE_CLORDID = "DUPLICATE_CLORDID"
    TOO_MUCH_PRECISION = "TOO_MUCH_PRECISION"
    NON_POSITIVE_AMOUNT = "NON_POSITIVE_AMOUNT"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INSUFFICIENT_COLLATERAL = "INSUFFICIENT_COLLATERAL"
    UNSUPPORTED_SIDE = "UNSUPPORTED_SIDE"
    TOO_MANY_OPEN_ORDERS = "TOO_MANY_OPEN_ORDERS"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    NOT_CANCELABLE = "NOT_CANCELABLE"
    UNKNOWN_QUOTE = "UNKNOWN_QUOTE"
    NOT_MINTED = "NOT_MINTED"
    MARKET_UNAVAILABLE = "MARKET_UNAVAILABLE"
    DEBT_OUTSTANDING = "DEBT_OUTSTANDING"  # the user owes the house (routing cost beyond the hold, reversed deposit)
    DEPOSIT_REVERSED = "DEPOSIT_REVERSED"  # a credited deposit was dropped by a reorg: orders cut to give it back
    INSUFFICIENT_TOKENS = "INSUFFICIENT_TOKENS"  # a sell of more index units than are credited and free
    TOKEN_DEBT_OUTSTANDING = "TOKEN_DEBT_OUTSTANDING"  # tokens of the index owed (a token deposit reversed)
    MIN_USDC_ON_BUY = "MIN_USDC_ON_BUY"  # `min_usdc` is a sell's; a buy spends its amount
    ENGINE_FAILED = "ENGINE_FAILED"  # the engine gave up on an accepted order (late rejection, §10.5)
    UNKNOWN_USER = "UNKNOWN_USER"  # a withdrawal by an address that never deposited
    BELOW_MINIMUM = "BELOW_MINIMUM"  # a withdrawal below `[withdrawal] minimum`
    DUPLICATE_WITHDRAWAL_ID = "DUPLICATE_WITHDRAWAL_ID"  # the user's withdrawal id was used for another amount
    UNSUPPORTED_DESTINATION = "UNSUPPORTED_DESTINATION"  # a withdrawal to a chain we do not pay on
    INTERNAL_ERROR = "INTERNAL_ERROR"


#: core.index_order_book.IndexOrderRefused codes -> wire codes. Where core's spelling differs from the spec's list
#: (§10.5) the spec's spelling goes on the wire.
CORE_REJECTION_CODES: dict[str, ReasonCode] = {
    "UNKNOWN_INDEX": ReasonCode.UNKNOWN_INDEX,
    "DUPLICATE_CL_ORD_ID": ReasonCode.DUPLICATE_CLORDID,
    "TOO_MUCH_PRECISION": ReasonCode.TOO_MUCH_PRECISION,
    "NON_POSITIVE_AMOUNT": ReasonCode.NON_POSITIVE_AMOUNT,
    "INVALID_AMOUNT": ReasonCode.INVALID_AMOUNT,
    "INSUFFICIENT_COLLATERAL": ReasonCode.INSUFFICIENT_COLLATERAL,
    "DEBT_OUTSTANDING": ReasonCode.DEBT_OUTSTANDING,
    "UNSUPPORTED_SIDE": ReasonCode.UNSUPPORTED_SIDE,
    "TOO_MANY_OPEN_ORDERS": ReasonCode.TOO_MANY_OPEN_ORDERS,
    "UNKNOWN_ORDER": ReasonCode.UNKNOWN_ORDER,
    "ORDER_CLOSED": ReasonCode.NOT_CANCELABLE,
    "CANCEL_EXCEEDS_REMAINING": ReasonCode.INVALID_AMOUNT,
    "INSUFFICIENT_TOKENS": ReasonCode.INSUFFICIENT_TOKENS,
    "TOKEN_DEBT_OUTSTANDING": ReasonCode.TOKEN_DEBT_OUTSTANDING,
    "MIN_USDC_ON_BUY": ReasonCode.MIN_USDC_ON_BUY,
    "UNKNOWN_USER": ReasonCode.UNKNOWN_USER,
    "BELOW_MINIMUM": ReasonCode.BELOW_MINIMUM,
    "DUPLICATE_WITHDRAWAL_ID": ReasonCode.DUPLICATE_WITHDRAWAL_ID,
}


def reason_from_core(code: str) -> ReasonCode:
    """The wire code for a core rejection; an unmapped code is a bug, reported as INTERNAL_ERROR, never guessed."""
    return CORE_REJECTION_CODES.get(code, ReasonCode.INTERNAL_ERROR)
