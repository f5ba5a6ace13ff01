"""Users' USDC deposits to our custody address, as confirmed `CollateralDeposit` events.

A deposit is an ERC-20 `Transfer(from=user, to=custody)` of the chain's USDC (DESIGN.md, main flow step 1), read
by a ChainConnector (confirmations, reorgs, dedupe). Mints to custody (`from` = 0x0) are not deposits: nobody is
to be credited for them.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Awaitable, Callable, Sequence

from chain.connector import ChainConnector, LogBatch, LogSource
from core.chain_events import CollateralDeposit
from core.money import from_units

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
SOURCE = "usdc-deposit"


def deposit_source(usdc: Any, custody: str) -> LogSource:
    return LogSource(SOURCE, usdc.events.Transfer, {"to": custody})


def deposits_from_batch(batch: LogBatch, unit: Decimal) -> list[CollateralDeposit]:
    out = []
    for log in batch.logs:
        if log.source != SOURCE or log.args["from"] == ZERO_ADDRESS or log.args["value"] == 0:
            continue
        out.append(CollateralDeposit(chain_id=log.chain_id, tx_hash=log.tx_hash, log_index=log.log_index,
                                     block_number=log.block_number, user=log.args["from"],
                                     amount=from_units(log.args["value"], unit)))
    return out


def deposit_connector(w3: Any, chain_id: int, redis: Any, usdc: Any, custody: str, *, start_block: int,
                      confirmations: int, **kwargs: Any) -> ChainConnector:
    return ChainConnector(w3, chain_id, redis, [deposit_source(usdc, custody)], start_block=start_block,
                          confirmations=confirmations, name="deposits", **kwargs)


async def hand_over(batch: LogBatch, unit: Decimal,
                    accept: Callable[[list[Any]], Awaitable[Any]],
                    reverse: Callable[[list[str]], Awaitable[Any]],
                    extract: Callable[[LogBatch, Decimal], list[Any]] = deposits_from_batch) -> tuple[int, int]:
    """Give one confirmed batch to the router: first the deposits a reorg deeper than the confirmations dropped
    (handed out before, gone now: `reverse(keys)`), then the new ones (`accept(deposits)`); one call each, only
    when there is something. Either raising leaves the batch uncommitted, so it comes again (both are idempotent).
    `extract` reads the deposits out of the batch (USDC by default; token_deposit_feed.py for index tokens).
    Returns (deposits accepted, keys reversed)."""
    deposits = extract(batch, unit)
    orphaned: Sequence[str] = batch.reorg.orphaned if batch.reorg is not None else ()
    if orphaned:
        await reverse(list(orphaned))
    if deposits:
        await accept(deposits)
    return len(deposits), len(orphaned)
