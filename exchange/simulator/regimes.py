"""Market regimes: named conditions the simulator's market switches to while it runs, to compare how orders are
served in a calm market and a wild one.

A regime scales the calm walk (price_process.py): its volatility, the ladder's quantities (the depth) and the
spread, and may add a steady drift. A gap (every price jumps at once) and a halted pair (status BREAK) are events
on top of whatever regime runs; `calm` ends them all."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from exchange.simulator.config import RegimeConfig

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Regime:
    name: str
    volatility_factor: Decimal = ONE
    #: Multiplies the quantity of every level of the ladder (a tenth: a thin book).
    depth_factor: Decimal = ONE
    spread_factor: Decimal = ONE
    #: Steady move of the price per minute, in basis points (negative: down).
    drift_bps_per_min: Decimal = Decimal(0)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "volatility_factor": str(self.volatility_factor),
                "depth_factor": str(self.depth_factor), "spread_factor": str(self.spread_factor),
                "drift_bps_per_min": str(self.drift_bps_per_min)}


CALM = Regime("calm")

#: Regime names the admin endpoint and `indexmaker market regime` take; "gap" and "halted" are events.
REGIME_NAMES = ("calm", "volatile", "thin", "wide", "trending")
EVENT_NAMES = ("gap", "halted")


def regime(name: str, cfg: RegimeConfig, drift_bps_per_min: Decimal | None = None) -> Regime:
    """The named regime with the configured strengths (`drift_bps_per_min` overrides the trend's)."""
    if name == "calm":
        return CALM
    if name == "volatile":
        return Regime(name, volatility_factor=cfg.volatile_factor)
    if name == "thin":
        return Regime(name, depth_factor=ONE / cfg.thin_factor)
    if name == "wide":
        return Regime(name, spread_factor=cfg.wide_factor)
    if name == "trending":
        return Regime(name, drift_bps_per_min=cfg.trend_bps_per_min if drift_bps_per_min is None
                      else drift_bps_per_min)
    raise ValueError(f"unknown regime {name!r}: one of {', '.join(REGIME_NAMES + EVENT_NAMES)}")
