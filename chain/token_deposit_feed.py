"""Users' index-token deposits to our custody address on Base, as confirmed `TokenDeposit` events (M12: tokens sent
back for redemption).

One log source per index token (`Transfer(from=user, to=custody)`), read by a ChainConnector like USDC deposits
(deposit_feed.py): confirmations, reorgs, dedupe by (chain, tx hash, log index). Mints to custody (`from` = 0x0)
credit nobody. `deposit_feed.hand_over(batch, unit, accept, reverse, extract=token_deposits_from_batch)` gives a
batch to the token ledgers' owner, reversals first."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from chain.connector import ChainConnector, LogBatch, LogSource
from chain.deposit_feed import ZERO_ADDRESS
from core.chain_events import TokenDeposit
from core.money import from_units

PREFIX = "index-token-deposit:"


def token_deposit_sources(tokens: Mapping[str, Any], custody: str) -> list[LogSource]:
    """`tokens`: index symbol -> its token contract on the chain."""
    return [LogSource(PREFIX + index, token.events.Transfer, {"to": custody}) for index, token in tokens.items()]


def token_deposits_from_batch(batch: LogBatch, unit: Decimal) -> list[TokenDeposit]:
    out = []
    for log in batch.logs:
        if not log.source.startswith(PREFIX) or log.args["from"] == ZERO_ADDRESS or log.args["value"] == 0:
            continue
        out.append(TokenDeposit(chain_id=log.chain_id, tx_hash=log.tx_hash, log_index=log.log_index,
                                block_number=log.block_number, user=log.args["from"],
                                index=log.source[len(PREFIX):], units=from_units(log.args["value"], unit)))
    return out


def token_deposit_connector(w3: Any, chain_id: int, redis: Any, tokens: Mapping[str, Any], custody: str, *,
                            start_block: int, confirmations: int, **kwargs: Any) -> ChainConnector:
    return ChainConnector(w3, chain_id, redis, token_deposit_sources(tokens, custody), start_block=start_block,
                          confirmations=confirmations, name="token-deposits", **kwargs)
