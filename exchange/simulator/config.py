"""Everything the exchange simulator can be told: where its real data lives, what it trades, how prices move, who
its accounts are, which limits it enforces. Defaults reproduce Binance spot as of the 2025 captures."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"

#: The test account `python -m exchange.simulator` prints and the tests use (never a real credential).
TEST_API_KEY = "simTestKey0000000000000000000000000000000000000000000000000000000"
TEST_SECRET = "simTestSecret000000000000000000000000000000000000000000000000000"


@dataclass(slots=True)
class AccountSpec:
    api_key: str
    secret: str
    #: Starting balances, asset -> amount (free).
    balances: dict[str, Decimal] = field(default_factory=dict)
    #: Deposit address per network (e.g. {"BASE": "0x..."}); networks not listed get a derived address.
    deposit_addresses: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class PriceProcessConfig:
    """The simulator's own market maker: a seeded random walk of the top of book with a ladder of resting levels."""

    seed: int = 7
    #: Standard deviation of the mid's relative move per second, in basis points (50 bps/s is lively, not wild).
    volatility_bps_per_s: Decimal = Decimal("5")
    #: Spread between best bid and best ask, basis points of the price (at least one tick).
    spread_bps: Decimal = Decimal("2")
    #: Resting levels the market maker keeps per side.
    depth_levels: int = 20
    #: Distance between the market maker's levels, basis points (at least one tick).
    level_gap_bps: Decimal = Decimal("2")
    #: Quote notional of one level, on average (each level gets 0.5x..1.5x of it).
    level_notional: Decimal = Decimal("5000")
    #: Milliseconds between two steps of every symbol's process; 0 = only when stepped by hand (tests).
    update_ms: int = 100
    #: Levels per side whose quantity is redrawn on each step (keeps a diff flowing even when the mid sits still).
    jitter_levels: int = 1
    #: Percent chance per step that a synthetic taker trades a slice of the top of book (public trades).
    trade_percent: int = 20


@dataclass(frozen=True, slots=True)
class WithdrawNetwork:
    """One coin on one network, as `networkList[]` of /sapi/v1/capital/config/getall describes it."""

    fee: Decimal = Decimal("0.1")
    minimum: Decimal = Decimal("1")
    maximum: Decimal = Decimal("9999999")
    integer_multiple: Decimal = Decimal("0.000001")
    enabled: bool = True
    min_confirm: int = 1


@dataclass(slots=True)
class WithdrawConfig:
    #: coin -> network -> its rules; networks listed first are the coin's default.
    networks: dict[str, dict[str, WithdrawNetwork]] = field(default_factory=lambda: {
        "USDC": {"BASE": WithdrawNetwork(), "ETH": WithdrawNetwork(fee=Decimal("5"), minimum=Decimal("10")),
                 "ARBITRUM": WithdrawNetwork(), "BSC": WithdrawNetwork()},
        "USDT": {"ETH": WithdrawNetwork(fee=Decimal("5"), minimum=Decimal("10")), "BSC": WithdrawNetwork(),
                 "TRX": WithdrawNetwork(fee=Decimal("1"), minimum=Decimal("10"))},
    })
    #: Milliseconds in 2 (Awaiting Approval) before 4 (Processing).
    approval_ms: int = 0
    #: Milliseconds in 4 (Processing) before 6 (Completed) where no chain payer serves the network.
    processing_ms: int = 1000
    #: API keys without the "Enable Withdrawals" permission (apply answers -1002).
    keys_without_withdraw: frozenset[str] = frozenset()


@dataclass(slots=True)
class RegimeConfig:
    """How strong the named market regimes are (regimes.py), against the calm walk."""

    volatile_factor: Decimal = Decimal("10")
    #: A thin book's levels hold this many times less.
    thin_factor: Decimal = Decimal("10")
    wide_factor: Decimal = Decimal("10")
    trend_bps_per_min: Decimal = Decimal("20")
    #: A gap's jump, percent of the price (negative: down), unless the request names one.
    gap_percent: Decimal = Decimal("5")


@dataclass(slots=True)
class SimulatorConfig:
    #: The address it listens on: its caller's (world/ports.py LOOPBACK for the local world).
    host: str
    #: 0 = let the OS pick a free port (the started simulator reports its URL).
    port: int = 0
    #: Binance serves REST, market streams and the WebSocket API from three hosts: with these set, the market streams
    #: and the WebSocket API are served on addresses of their own (any free port), and each address serves only its
    #: part. None: `host` serves all three.
    stream_host: str | None = None
    ws_api_host: str | None = None
    exchange_info_path: Path = DATA_DIR / "binance" / "exchangeInfo_spot_2024-09-08_usdt_usdc.json"
    #: The later capture whose rateLimits are served (6000 weight/min, 100 orders/10 s, 200000 orders/day).
    rate_limits_path: Path = DATA_DIR / "binance" / "exchangeInfo_header_2025-06-21.json"
    indexes_dir: Path = DATA_DIR / "indexes"
    deployment_path: Path = DATA_DIR / "indexes" / "index_deployment.json"
    #: Real depth snapshots (file name depth_snapshot_<SYMBOL>.json) used to seed books of that symbol or its twin.
    depth_snapshot_paths: tuple[Path, ...] = (DATA_DIR / "binance" / "depth_snapshot_BTCUSDT.json",)
    #: Serve only these symbols (None = every pair of every basket). Unknown ones are twinned or synthesised.
    symbols: tuple[str, ...] | None = None
    #: Extra symbols on top of the baskets' pairs.
    extra_symbols: tuple[str, ...] = ()
    #: Explicit rateLimits entries (exchangeInfo shape) overriding the file's.
    rate_limits: list[dict] | None = None
    #: 429s tolerated within one window before the IP is banned (418).
    #: Chains watched for deposits to the accounts' addresses (exchange.simulator.chain_deposits.DepositChain).
    deposit_chains: tuple = ()
    ban_after_429s: int = 3
    ban_seconds: int = 120
    #: Commission rates, fraction of the received asset.
    maker_commission: Decimal = Decimal("0.001")
    taker_commission: Decimal = Decimal("0.001")
    #: Depth diff cadence of the `@depth@100ms` streams.
    depth_interval_ms: int = 100
    #: Messages a market-stream client may have queued before it is disconnected as too slow.
    max_ws_queue: int = 10_000
    #: Incoming messages per second per market-stream connection (Binance: 5); excess disconnects.
    max_ws_incoming_per_s: int = 5
    max_streams_per_connection: int = 1024
    accounts: list[AccountSpec] = field(
        default_factory=lambda: [
            AccountSpec(TEST_API_KEY, TEST_SECRET, {"USDC": Decimal("1000000"), "USDT": Decimal("1000000")})
        ]
    )
    process: PriceProcessConfig = field(default_factory=PriceProcessConfig)
    regimes: RegimeConfig = field(default_factory=RegimeConfig)
    withdrawals: WithdrawConfig = field(default_factory=WithdrawConfig)
    #: Chains whose withdrawals the hot wallet pays for real (exchange.simulator.chain_withdrawals.WithdrawChain).
    withdraw_chains: tuple = ()
    #: Cadence of the withdrawals' statuses (and of the chain payers' polls).
    withdraw_poll_ms: int = 100
