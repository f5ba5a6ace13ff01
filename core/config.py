"""Every number the system uses, in one settings model: defaults here, a TOML file per environment, environment
variables (INDEXMAKER_SECTION__KEY) on top. No constant is hidden in code.

Amounts are Decimal (TOML strings like "0.01" keep their digits; TOML floats are refused for money fields).
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

REPO_ROOT = Path(__file__).resolve().parent.parent


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(f"write money as a string ({value!r} would pass through a float)")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_floats(cls, v: Any, info: Any) -> Any:
        field = cls.model_fields.get(info.field_name)
        if field is not None and field.annotation is Decimal:
            return _no_float(v)
        return v


class CollateralConfig(_Section):
    symbol: str = "USDC"
    #: USDC has 6 decimals on chain: the ledger counts whole micro-USDC.
    unit: Decimal = Decimal("0.000001")
    #: An order whose unengaged rest falls below this is finished and the rest goes back to the user.
    order_dust: Decimal = Decimal("0.05")
    max_open_orders_per_user: int = Field(100, ge=1)


class SolverConfig(_Section):
    tick_interval_ms: int = Field(100, ge=1)
    #: Buy limit price = best ask * (1 + slippage_cap), rounded down to the tick (stays inside the cap).
    slippage_cap: Decimal = Decimal("0.01")
    #: Book levels a limit may reach into.
    max_levels: int = Field(5, ge=1)
    #: Collateral is divided by this so that prices at the limit plus exchange fees never exceed it.
    fee_factor: Decimal = Decimal("1.002")
    #: Collateral one index order may engage in one batch.
    max_order_notional: Decimal = Decimal("100000")
    #: Notional of one batch at limit prices.
    max_batch_notional: Decimal = Decimal("250000")
    #: Notional of all batches in flight together.
    max_in_flight_notional: Decimal = Decimal("500000")
    #: Floor for one asset order's notional, on top of the exchange's own minimum; the surplus becomes inventory.
    min_asset_notional: Decimal = Decimal("5")
    #: Index units are counted in this quantum (the index token has 18 decimals).
    index_unit: Decimal = Decimal("1e-18")
    max_orders_per_batch: int = Field(10000, ge=1)


class ExchangeConfig(_Section):
    name: str = "binance"
    rest_url: str = "http://127.0.0.1:18080"
    ws_url: str = "ws://127.0.0.1:18080"
    quote_asset: str = "USDC"
    #: Binance's default taker commission, in the received asset.
    commission_rate: Decimal = Decimal("0.001")
    recv_window_ms: int = Field(10000, ge=1, le=60000)
    #: Fraction of each exchange rate limit the sender allows itself.
    rate_limit_safety: Decimal = Decimal("0.95")
    market_shards: int = Field(2, ge=1)
    order_book_depth: int = Field(100, ge=5)
    deposit_network: str = "BASE"


class ChainConfig(_Section):
    arbitrum_chain_id: int = 42161
    base_chain_id: int = 8453
    arbitrum_rpc: str = "http://127.0.0.1:8545"
    base_rpc: str = "http://127.0.0.1:8546"
    confirmations: int = Field(2, ge=0)
    usdc_decimals: int = 6
    index_token_decimals: int = 18


class PortsConfig(_Section):
    redis: int = 16379
    ray: int = 6380
    gateway: int = 8765
    simulator: int = 18080
    invoices: int = 8766


class Settings(BaseSettings):
    """The whole configuration. `Settings.load("prod.toml")` reads a file; env vars override it."""

    model_config = SettingsConfigDict(env_prefix="INDEXMAKER_", env_nested_delimiter="__", extra="forbid")
    toml_file: ClassVar[Path | None] = None

    environment: str = "local"
    data_dir: Path = REPO_ROOT / "data"
    state_dir: Path = REPO_ROOT / "state"
    collateral: CollateralConfig = CollateralConfig()
    solver: SolverConfig = SolverConfig()
    exchange: ExchangeConfig = ExchangeConfig()
    chain: ChainConfig = ChainConfig()
    ports: PortsConfig = PortsConfig()

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        # A buy pays its commission in the received asset, so one net unit costs price / (1 - rate): the headroom
        # must cover that, or an order could be charged more than it engaged.
        if self.solver.fee_factor * (1 - self.exchange.commission_rate) < 1:
            raise ValueError(
                f"solver.fee_factor {self.solver.fee_factor} does not cover exchange.commission_rate "
                f"{self.exchange.commission_rate}: need fee_factor * (1 - commission_rate) >= 1"
            )
        if not (Decimal(0) < self.solver.slippage_cap < 1):
            raise ValueError("solver.slippage_cap must be between 0 and 1")
        if not (Decimal(0) < self.exchange.rate_limit_safety <= 1):
            raise ValueError("exchange.rate_limit_safety must be in (0, 1]")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))
        return tuple(sources)

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> "Settings":
        """Defaults < TOML file < environment < explicit overrides."""
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        bound = type("Settings", (cls,), {"toml_file": Path(path) if path else None})
        return bound(**overrides)
