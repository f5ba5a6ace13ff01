"""One index order's outcome in a completed batch, as the solver hands it to the order's shard.

The shard needs nothing else to close its side of the batch: how many index units the order got in this batch and
what it got of each asset (the invoice's lines). The fills themselves already reached the shard as deltas.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.lot_assignment import AssetLine


@dataclass(frozen=True, slots=True)
class BatchOrderResult:
    order_id: str
    filled_units: Decimal
    lines: tuple[AssetLine, ...]
    #: The touch of one unit of the order's index (Σ quantity × best ask) when the batch was planned; None: not
    #: known (a batch planned by older code). Splits the order's shortfall into delay and impact (core.shortfall).
    touch: Decimal | None = None
