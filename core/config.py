"""Every number the system uses, in one settings model: defaults here, a TOML file per environment, environment
variables (INDEXMAKER_SECTION__KEY) on top. No constant is hidden in code.

Amounts are Decimal (TOML strings like "0.01" keep their digits; TOML floats are refused for money fields).
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from core.route_batch import BatchPolicy
from core.route_hold import RouteHoldPolicy

REPO_ROOT = Path(__file__).resolve().parent.parent


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(f"write money as a string ({value!r} would pass through a float)")
    return value


def _holds_money(annotation: Any) -> bool:
    """Decimal itself, or a type built from it (Decimal | None, dict[int, Decimal])."""
    return annotation is Decimal or any(_holds_money(a) for a in get_args(annotation))


def _no_float_inside(value: Any) -> Any:
    if isinstance(value, dict):
        for v in value.values():
            _no_float_inside(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _no_float_inside(v)
    return _no_float(value)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_floats(cls, v: Any, info: Any) -> Any:
        field = cls.model_fields.get(info.field_name)
        if field is not None and _holds_money(field.annotation):
            return _no_float_inside(v)
        return v


class CollateralConfig(_Section):
    symbol: str = "USDC"
    #: USDC has 6 decimals on chain: the ledger counts whole micro-USDC.
    unit: Decimal = Decimal("0.000001")
    #: An order whose unengaged rest falls below this is finished and the rest goes back to the user.
    order_dust: Decimal = Decimal("0.05")
    #: ... and so is an order whose rest after a batch is below this fraction of its (uncancelled) amount.
    rest_return_ratio: Decimal = Field(Decimal("0.005"), ge=0, lt=1)
    max_open_orders_per_user: int = Field(100, ge=1)


class SolverConfig(_Section):
    tick_interval_ms: int = Field(100, ge=1)
    #: Buy limit price = best ask * (1 + slippage_cap), rounded down to the tick (stays inside the cap).
    slippage_cap: Decimal = Decimal("0.01")
    #: Orders are sized at the expected price (the batch's walk of the asks) times 1 + price_buffer.
    price_buffer: Decimal = Field(Decimal("0.0005"), ge=0, lt=1)
    #: After the first new order arrives, the solver waits until none came for collect_quiet_ms (at most
    #: collect_max_ms) before planning: orders sent together are netted into one batch.
    collect_quiet_ms: int = Field(5, ge=0)
    collect_max_ms: int = Field(250, ge=0)
    #: With nothing pending, the solver still looks every idle_poll_ms (new orders wake it at once).
    idle_poll_ms: int = Field(1000, ge=1)
    #: An order the planner defers this long for no liquidity (or too small to buy one index unit) is rejected.
    reject_after_ms: int = Field(60_000, ge=0)
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
    """The chain side (chain/, actors/chain_actor.py, actors/router_actor.py). Contract addresses and RPC URLs of
    the local world come from its world state file; these are the numbers."""

    arbitrum_chain_id: int = 42161
    base_chain_id: int = 8453
    arbitrum_rpc: str = "http://127.0.0.1:8545"
    base_rpc: str = "http://127.0.0.1:8546"
    #: Blocks on top of a user's deposit on Arbitrum before it is credited (a deposit dropped by a reorg within
    #: this depth is never credited).
    confirmations: int = Field(2, ge=0)
    #: Blocks on top of a user's deposit to custody on Base before it is credited (Base carries the index: such a
    #: deposit takes only the last hop to the exchange, no bridge).
    base_confirmations: int = Field(2, ge=0)
    #: Blocks on top of the relayer's fill on Base before the route moves on.
    fill_confirmations: int = Field(0, ge=0)
    usdc_decimals: int = Field(6, ge=0)
    index_token_decimals: int = Field(18, ge=0)
    #: Blocks per eth_getLogs request (public RPCs refuse big ranges).
    max_block_range: int = Field(2000, ge=1)
    #: Processed blocks whose hashes the deposit listener keeps to notice a reorg.
    reorg_window: int = Field(256, ge=1)
    #: Across: the relayer fee offered, a fraction of the input; output = input * (1 - rate), rounded down to the
    #: USDC unit (core.fees.hop_by_rate).
    bridge_fee_rate: Decimal = Decimal("0.001")
    #: Chain seconds the relayer has to fill our Across deposit; past it the route fails (the refund is manual).
    fill_deadline_s: int = Field(3600, ge=1)
    #: USDC per native token (ETH on both chains), per chain id: the rate gas is charged to users at.
    native_price: dict[int, Decimal] = Field(
        default_factory=lambda: {42161: Decimal("3000"), 8453: Decimal("3000")})
    #: Routing holds (core.route_hold): per origin chain id, the most gas in USDC that a route carrying one deposit
    #: costs. A credited deposit holds this plus the bridge's cut until its route's real cost is charged; an order
    #: cannot engage the hold. On the local world a bridged route's two transactions cost ~0.5 USDC of gas (anvil's
    #: 1 gwei at native_price) and the Base transfer alone ~0.15: the defaults leave room for dearer blocks.
    route_hold_gas: dict[int, Decimal] = Field(
        default_factory=lambda: {42161: Decimal("1.50"), 8453: Decimal("0.50")})
    #: Own transactions (chain.tx_sender): receipt wait before a rebroadcast, receipt polling interval, broadcasts
    #: per attempt before giving up for this round, pause after a failed broadcast.
    receipt_timeout_ms: int = Field(60_000, ge=1)
    receipt_poll_ms: int = Field(20, ge=1)
    max_broadcasts: int = Field(5, ge=1)
    retry_backoff_ms: int = Field(200, ge=0)
    #: Batching users' deposits into one bridge transfer (core.route_batch.BatchPolicy): a batch closes at this many
    #: deposits, or when its total reaches batch_close_amount USDC (none: no amount trigger), or when its oldest
    #: deposit has waited batch_max_wait_ms. 1 deposit = every deposit routed alone at once.
    batch_max_deposits: int = Field(1, ge=1)
    batch_close_amount: Decimal | None = Field(None, gt=0)
    batch_max_wait_ms: int = Field(0, ge=0)

    @property
    def usdc_unit(self) -> Decimal:
        """One base unit of USDC on chain (1e-6): every chain amount is a whole number of it."""
        return Decimal(1).scaleb(-self.usdc_decimals)

    @property
    def batch_policy(self) -> BatchPolicy:
        return BatchPolicy(self.batch_max_deposits, self.batch_close_amount, self.batch_max_wait_ms)

    @property
    def hold_policy(self) -> RouteHoldPolicy:
        return RouteHoldPolicy(self.base_chain_id, self.bridge_fee_rate, self.usdc_unit, dict(self.route_hold_gas))


class PortsConfig(_Section):
    redis: int = 16379
    ray: int = 6380
    gateway: int = 8765
    simulator: int = 18080
    invoices: int = 8766


class RayConfig(_Section):
    """Where the actors run (world/launcher.py, `indexmaker up`)."""

    #: None: `indexmaker up` starts a Ray instance of its own; "auto", "host:port" or "ray://host:10001": attach.
    address: str | None = None
    namespace: str = "indexmaker"
    #: Custom resources an actor asks for, by actor name or a name prefix ending in "*" ("market-*"): it then runs
    #: only on nodes started with them (`ray start --resources '{"exchange": 1}'`). Amounts are Ray resource units.
    placement: dict[str, dict[str, float]] = Field(default_factory=dict)


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
    ray: RayConfig = RayConfig()

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
        # The collateral ledger counts what arrives on chain: its unit is USDC's base unit there.
        if self.collateral.unit != self.chain.usdc_unit:
            raise ValueError(f"collateral.unit {self.collateral.unit} differs from the chain's USDC unit "
                             f"{self.chain.usdc_unit} (chain.usdc_decimals {self.chain.usdc_decimals})")
        if not (Decimal(0) <= self.chain.bridge_fee_rate < 1):
            raise ValueError("chain.bridge_fee_rate must be in [0, 1)")
        for chain_id in (self.chain.arbitrum_chain_id, self.chain.base_chain_id):
            if self.chain.native_price.get(chain_id, Decimal(0)) <= 0:
                raise ValueError(f"chain.native_price has no positive price for chain id {chain_id}")
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
