"""Withdrawals paid on a real chain: the exchange's hot wallet sends the token to the withdrawal's address on the
local anvil, and the withdrawal completes (6) with that transaction's hash once it has the confirmations.

The mirror of chain_deposits.py. The signed transaction and its hash are written on the withdrawal before the
broadcast: a withdrawal that has them is only ever broadcast again (same nonce, same hash) and waited for, never
signed again, so a lost broadcast or a restarted simulator never pays twice."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

from eth_account import Account as EthAccount
from loguru import logger
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import TransactionNotFound, Web3RPCError

from exchange.simulator.chain_deposits import DepositChain, poll_forever
from exchange.simulator.orders import Withdrawal

#: ERC-20 transfer(address,uint256)
_TRANSFER_SELECTOR = "a9059cbb"


@dataclass(frozen=True)
class WithdrawChain(DepositChain):
    """A chain the exchange pays withdrawals on (its deposit fields name the token, the RPC and the cadence)."""

    #: The exchange's hot wallet on that chain (a local dev key; never a real one).
    hot_wallet_key: str = ""


def transfer_data(to: str, base_units: int) -> str:
    return "0x" + _TRANSFER_SELECTOR + to.lower().removeprefix("0x").rjust(64, "0") + f"{base_units:064x}"


class ChainWithdrawalPayer:
    def __init__(self, chain: WithdrawChain, owed: Callable[[str], list[Withdrawal]],
                 complete: Callable[[Withdrawal, str], None], fail: Callable[[Withdrawal, str], None]) -> None:
        """`owed(network)`: the withdrawals in 4 (Processing) on that network; `complete(w, tx)`: mark one done;
        `fail(w, info)`: its transfer reverted (5, the account gets amount + fee back)."""
        self.chain = chain
        self.owed = owed
        self.complete = complete
        self.fail = fail
        self.w3 = AsyncWeb3(AsyncHTTPProvider(chain.rpc_url))
        self.account = EthAccount.from_key(chain.hot_wallet_key)
        self.sent = 0
        self.errors = 0

    @property
    def address(self) -> str:
        return self.account.address

    def base_units(self, amount: Decimal) -> int:
        units = amount.scaleb(self.chain.decimals)
        if units != units.to_integral_value():
            raise ValueError(f"{amount} {self.chain.coin} has more than {self.chain.decimals} decimals")
        return int(units)

    async def _send(self, w: Withdrawal) -> None:
        w3, acct = self.w3, self.account
        tx = {
            "from": acct.address, "to": AsyncWeb3.to_checksum_address(self.chain.token_address), "value": 0,
            "data": transfer_data(w.address, self.base_units(w.amount)),
            "nonce": await w3.eth.get_transaction_count(acct.address, "pending"),
            "chainId": await w3.eth.chain_id,
        }
        tx["gas"] = await w3.eth.estimate_gas(tx)
        block = await w3.eth.get_block("latest")
        tip = await w3.eth.max_priority_fee
        tx["maxFeePerGas"] = 2 * block["baseFeePerGas"] + tip
        tx["maxPriorityFeePerGas"] = tip
        signed = acct.sign_transaction(tx)
        w.tx_id = "0x" + bytes(signed.hash).hex().removeprefix("0x")  # recorded before the broadcast
        w.raw_tx = "0x" + bytes(signed.raw_transaction).hex().removeprefix("0x")
        self.sent += 1
        await w3.eth.send_raw_transaction(w.raw_tx)

    async def _confirmed(self, w: Withdrawal) -> bool | None:
        """True once it has the confirmations, False while not yet, None when it reverted."""
        try:
            receipt = await self.w3.eth.get_transaction_receipt(w.tx_id)
        except TransactionNotFound:  # pending, or its broadcast was lost: send the same bytes again
            try:
                await self.w3.eth.send_raw_transaction(w.raw_tx)
            except Web3RPCError as e:  # "already known" (still pending) is the expected answer
                logger.debug("withdrawal {} rebroadcast: {}", w.id, e)
            return False
        if receipt["status"] != 1:
            return None
        latest = await self.w3.eth.block_number
        return latest - receipt["blockNumber"] + 1 >= max(self.chain.confirmations, 1)

    async def poll_once(self) -> int:
        """Send what is owed and not sent yet; complete what has its confirmations. Returns how many completed."""
        done = 0
        for w in self.owed(self.chain.network):
            if not w.tx_id:
                await self._send(w)
            confirmed = await self._confirmed(w)
            if confirmed is None:
                logger.warning("withdrawal {} transfer {} reverted: failed, refunded", w.id, w.tx_id)
                self.fail(w, "The withdrawal transaction failed on chain.")
            elif confirmed:
                self.complete(w, w.tx_id)
                done += 1
        return done

    async def run(self) -> None:
        await poll_forever(self, f"withdrawal payer {self.chain.network}")
