"""Wires the chain side from the world state file and core.config's ChainConfig: web3 clients, contracts, the
signing accounts' senders (custody and the Base wallet on both chains, the solver), the Across bridges (Arbitrum ->
Base for deposits, Base -> Arbitrum for withdrawals), the deposit listeners (custody on Arbitrum and on Base; index
tokens sent back to custody on Base), the route effects and the index minter. One place, so that tests, the bench
and the actors build exactly the same objects.
"""
from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from web3 import AsyncHTTPProvider, AsyncWeb3

from chain.across_bridge import AcrossBridge
from chain.connector import ChainConnector
from chain.contracts import ChainContracts, bind
from chain.deployment import WorldState
from chain.deposit_feed import deposit_connector
from chain.index_minter import IndexMinter
from chain.keys import derive_account
from chain.route_effects import ChainRouteEffects, DepositAddress, ExchangeCredited
from chain.token_deposit_feed import token_deposit_connector
from chain.tx_sender import TxSender
from core.config import ChainConfig
from store.retry import RetryPolicy


@dataclass
class ChainStack:
    config: ChainConfig
    state: WorldState
    arb: AsyncWeb3
    base: AsyncWeb3
    arb_c: ChainContracts
    base_c: ChainContracts
    custody_sender: TxSender  # Arbitrum custody: bridges users' deposits
    wallet_sender: TxSender  # Base wallet: receives fills, pays the exchange
    solver_sender: TxSender  # Base: the index tokens' minter
    bridge: AcrossBridge
    deposits: ChainConnector
    effects: ChainRouteEffects
    minters: dict[str, IndexMinter]  # index symbol -> its token's minter (all through solver_sender)
    #: Custody on Base (the same account as on Arbitrum): users' deposits there go straight to the exchange, signed
    #: by custody itself, so no second transaction moves them to the Base wallet first.
    base_custody_sender: TxSender
    base_deposits: ChainConnector
    #: Index tokens users send back to custody on Base (for redemption): every index token of the world.
    token_deposits: ChainConnector
    #: Users' withdrawals, the route backwards: the Base wallet bridges to its own account on Arbitrum (Across),
    #: which pays the user there. Never to custody: the relayer's fill is a USDC transfer from the relayer, which
    #: custody's deposit listener would credit to the relayer as a deposit (and the router route away).
    return_effects: ChainRouteEffects | None = None
    #: The Base wallet's account on Arbitrum: receives the withdrawals' fills, pays the users (its only signer).
    arb_wallet_sender: TxSender | None = None

    @classmethod
    def build(cls, state: WorldState, redis: Redis, config: ChainConfig, *, mnemonic: str,
              deposit_address: DepositAddress | None = None, exchange_credited: ExchangeCredited | None = None,
              arbitrum: str = "arbitrum", base: str = "base", tx_prefix: str = "tx",
              chain_prefix: str = "chain", retry: RetryPolicy | None = None) -> "ChainStack":
        a, b = state.chain(arbitrum), state.chain(base)
        arb = AsyncWeb3(AsyncHTTPProvider(a.rpc_url))
        bw3 = AsyncWeb3(AsyncHTTPProvider(b.rpc_url))
        arb_c, base_c = bind(arb, a), bind(bw3, b)

        def sender(w3: AsyncWeb3, chain_id: int, role: str) -> TxSender:
            ref = state.account(role)
            account = derive_account(mnemonic, ref.index)
            if account.address.lower() != ref.address.lower():
                raise ValueError(f"the mnemonic does not derive the world's {role} account {ref.address} at index "
                                 f"{ref.index}: another mnemonic than the world's")
            return TxSender(w3, chain_id, account, redis,
                            key_prefix=tx_prefix, receipt_timeout_s=config.receipt_timeout_ms / 1000,
                            poll_s=config.receipt_poll_ms / 1000, max_broadcasts=config.max_broadcasts,
                            retry=retry)

        custody = sender(arb, a.chain_id, "custody")
        wallet = sender(bw3, b.chain_id, "base_wallet")
        base_custody = sender(bw3, b.chain_id, "custody")
        solver = sender(bw3, b.chain_id, "solver")
        bridge = AcrossBridge(custody, arb_c.usdc, arb_c.spoke_pool, bw3, base_c.spoke_pool,
                              destination_chain_id=b.chain_id, destination_usdc=b.usdc,
                              fill_deadline_s=config.fill_deadline_s,
                              fill_confirmations=config.fill_confirmations,
                              max_block_range=config.max_block_range)
        deposits = deposit_connector(arb, a.chain_id, redis, arb_c.usdc, state.account("custody").address,
                                     start_block=a.start_block, confirmations=config.confirmations,
                                     max_block_range=config.max_block_range, reorg_window=config.reorg_window,
                                     key_prefix=chain_prefix)
        base_deposits = deposit_connector(bw3, b.chain_id, redis, base_c.usdc, state.account("custody").address,
                                          start_block=b.start_block, confirmations=config.base_confirmations,
                                          max_block_range=config.max_block_range, reorg_window=config.reorg_window,
                                          key_prefix=chain_prefix)
        exchange = {k: v for k, v in (("deposit_address", deposit_address),
                                      ("exchange_credited", exchange_credited)) if v is not None}
        effects = ChainRouteEffects(bridge, wallet, base_c.usdc,
                                    destination_wallet=state.account("base_wallet").address,
                                    unit=config.usdc_unit, bridge_fee_rate=config.bridge_fee_rate,
                                    native_price=dict(config.native_price), destination_custody=base_custody,
                                    **exchange)
        if not base_c.index_tokens:
            raise ValueError(f"world has no index token on {base}")
        minters = {index: IndexMinter(solver, token, decimals=config.index_token_decimals)
                   for index, token in base_c.index_tokens.items()}
        token_deposits = token_deposit_connector(bw3, b.chain_id, redis, base_c.index_tokens,
                                                 state.account("custody").address, start_block=b.start_block,
                                                 confirmations=config.base_confirmations,
                                                 max_block_range=config.max_block_range,
                                                 reorg_window=config.reorg_window, key_prefix=chain_prefix)
        return_bridge = AcrossBridge(wallet, base_c.usdc, base_c.spoke_pool, arb, arb_c.spoke_pool,
                                     destination_chain_id=a.chain_id, destination_usdc=a.usdc,
                                     fill_deadline_s=config.fill_deadline_s,
                                     fill_confirmations=config.fill_confirmations,
                                     max_block_range=config.max_block_range)
        arb_wallet = sender(arb, a.chain_id, "base_wallet")
        return_effects = ChainRouteEffects(return_bridge, arb_wallet, arb_c.usdc,
                                           destination_wallet=state.account("base_wallet").address,
                                           unit=config.usdc_unit, bridge_fee_rate=config.bridge_fee_rate,
                                           native_price=dict(config.native_price))
        return cls(config, state, arb, bw3, arb_c, base_c, custody, wallet, solver, bridge, deposits, effects,
                   minters, base_custody, base_deposits, token_deposits, return_effects, arb_wallet)

    async def recover(self) -> None:
        """On start: see through every transaction a crash left recorded but unconfirmed."""
        for s in self.senders:
            await s.recover()

    @property
    def senders(self) -> tuple[TxSender, ...]:
        return tuple(s for s in (self.custody_sender, self.wallet_sender, self.solver_sender,
                                 self.base_custody_sender, self.arb_wallet_sender) if s is not None)

    @property
    def deposit_listeners(self) -> tuple[ChainConnector, ...]:
        """Every custody address watched for users' deposits: Arbitrum's, then Base's."""
        return (self.deposits, self.base_deposits)

    async def close(self) -> None:
        for w3 in (self.arb, self.base):
            await w3.provider.disconnect()
