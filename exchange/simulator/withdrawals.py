"""Binance's withdrawals (POST /sapi/v1/capital/withdraw/apply, GET /sapi/v1/capital/withdraw/history, the
withdraw side of GET /sapi/v1/capital/config/getall): the checks and error codes of Binance's wallet API, the
debit of amount + fee, and the statuses moving on the simulator's clock.

A withdrawal waits `approval_ms` in 2 (Awaiting Approval), then is 4 (Processing): where a chain payer serves its
network (chain_withdrawals.py) the payer sends the transfer and completes it with the real tx hash; elsewhere it
completes `processing_ms` later with a derived txId. A rejected one (3) gives amount + fee back.

Binance documents no uniqueness for `withdrawOrderId` (it is a filter of the history, not a key of the apply): the
same withdrawOrderId twice is two withdrawals. A client that lost an answer looks the id up in the history before
it applies again (spec/binance.md §i)."""
from __future__ import annotations

import datetime
import hashlib
import itertools
import re
from decimal import Decimal
from typing import Any, Callable

from core.money import ZERO
from exchange.simulator import payloads
from exchange.simulator.accounts import Account, BalanceError
from exchange.simulator.config import WithdrawConfig, WithdrawNetwork
from exchange.simulator.engine import EngineError
from exchange.simulator.orders import (
    W_AWAITING_APPROVAL, W_COMPLETED, W_FAILURE, W_FINAL, W_PROCESSING, W_REJECTED, Withdrawal,
)

_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class WithdrawalDesk:
    """The exchange's withdrawals across accounts."""

    def __init__(self, config: WithdrawConfig, clock: Any, accounts: dict[str, Account],
                 emit: Callable[[Account, dict], None]) -> None:
        """`accounts`: the engine's accounts by API key; `emit(account, event)` queues a user-data event."""
        self.config = config
        self.accounts = accounts
        self.clock = clock
        self.emit = emit
        self.ids = itertools.count(1)
        self.by_account: dict[str, list[Withdrawal]] = {}
        #: Networks whose withdrawals a chain payer sends (it completes them with the real tx hash).
        self.paid_networks: set[str] = set()

    def rules(self, coin: str, network: str | None) -> tuple[str, WithdrawNetwork]:
        nets = self.config.networks.get(coin)
        if not nets:
            raise EngineError(-4018, "We don't have this asset.")
        name = network or next(iter(nets))
        rule = nets.get(name)
        if rule is None:
            raise EngineError(-4018, "The network does not exist or has been closed.")
        return name, rule

    def apply(self, account: Account, coin: str, network: str | None, address: str, amount: Decimal,
              withdraw_order_id: str = "", wallet_type: int = 0) -> Withdrawal:
        """The checks in Binance's order: permission, asset and network, withdraw enabled, address, minimum,
        multiple, maximum, balance (amount + fee); then the debit and the history row."""
        if account.api_key in self.config.keys_without_withdraw:
            raise EngineError(-1002, "You are not authorized to execute this request.", 401)
        name, rule = self.rules(coin, network)
        if not rule.enabled:
            raise EngineError(-4019, "Current asset is not open for withdrawal.")
        if not _EVM_ADDRESS.match(address):
            raise EngineError(-4033, "Illegal address.")
        if amount < rule.minimum:
            raise EngineError(-4022, f"Not less than the minimum pick-up quantity {rule.minimum}.")
        if amount % rule.integer_multiple != 0:
            raise EngineError(-4021, f"Asset withdrawal must be an {coin} multiple of {rule.integer_multiple}.")
        if amount > rule.maximum:
            raise EngineError(-4023, "Within 24 hours, the withdrawal exceeds the maximum amount.")
        now = self.clock.now_ms()
        total = amount + rule.fee
        try:
            account.debit_free(coin, total, now)
        except BalanceError:
            raise EngineError(-4026, "User has insufficient balance") from None
        wid = hashlib.sha256(f"sim-withdraw:{account.api_key}:{next(self.ids)}".encode()).hexdigest()[:32]
        w = Withdrawal(wid, coin, name, address, amount, rule.fee, now, withdraw_order_id, wallet_type,
                       W_AWAITING_APPROVAL, status_time=now)
        self.by_account.setdefault(account.api_key, []).append(w)
        self.emit(account, payloads.balance_update(coin, -total, now))
        return w

    def history(self, account: Account, *, coin: str | None = None, withdraw_order_id: str | None = None,
                status: int | None = None, start: int | None = None, end: int | None = None,
                offset: int = 0, limit: int = 1000, id_list: list[str] | None = None) -> list[Withdrawal]:
        """Newest first, as Binance answers."""
        rows = [w for w in reversed(self.by_account.get(account.api_key, []))
                if (coin is None or w.coin == coin)
                and (withdraw_order_id is None or w.withdraw_order_id == withdraw_order_id)
                and (status is None or w.status == status)
                and (start is None or w.apply_time >= start) and (end is None or w.apply_time <= end)
                and (id_list is None or w.id in id_list)]
        return rows[offset:offset + limit]

    def advance(self, now: int) -> list[Withdrawal]:
        """Move every open withdrawal on by the clock; returns those that just entered 4 (Processing) on a network
        a chain payer serves (the payer sends them)."""
        to_pay = []
        for rows in self.by_account.values():
            for w in rows:
                if w.status == W_AWAITING_APPROVAL and now - w.status_time >= self.config.approval_ms:
                    w.status, w.status_time = W_PROCESSING, now
                    if w.network in self.paid_networks:
                        to_pay.append(w)
                if (w.status == W_PROCESSING and w.network not in self.paid_networks
                        and now - w.status_time >= self.config.processing_ms):
                    tx = "0x" + hashlib.sha256(f"sim-withdraw-tx:{w.id}".encode()).hexdigest()
                    self.complete(w, tx, now)
        return to_pay

    def processing(self, network: str) -> list[Withdrawal]:
        """Withdrawals a payer of `network` owes (4, after a restart too)."""
        return [w for rows in self.by_account.values() for w in rows
                if w.network == network and w.status == W_PROCESSING]

    @staticmethod
    def complete(w: Withdrawal, tx_id: str, now: int) -> None:
        if w.status in W_FINAL:
            return
        w.status, w.tx_id, w.complete_time, w.status_time = W_COMPLETED, tx_id, now, now

    def reject(self, account: Account, withdrawal_id: str, info: str) -> Withdrawal:
        """Binance's risk team refuses it before it is sent (3): amount + fee go back to the account."""
        w = next((w for w in self.by_account.get(account.api_key, []) if w.id == withdrawal_id), None)
        if w is None:
            raise EngineError(-4029, "The withdrawal record does not exist.")
        if w.status in W_FINAL or w.tx_id:
            return w
        return self._give_back(account, w, W_REJECTED, info)

    def fail(self, w: Withdrawal, info: str) -> Withdrawal:
        """The payout failed on chain (5, Failure): amount + fee go back to the account."""
        if w.status in W_FINAL:
            return w
        owner = next(key for key, rows in self.by_account.items() if any(r is w for r in rows))
        return self._give_back(self.accounts[owner], w, W_FAILURE, info)

    def _give_back(self, account: Account, w: Withdrawal, status: int, info: str) -> Withdrawal:
        now = self.clock.now_ms()
        w.status, w.info, w.status_time = status, info, now
        account.credit(w.coin, w.amount + w.fee, now)
        self.emit(account, payloads.balance_update(w.coin, w.amount + w.fee, now))
        return w

    def config_rows(self, account: Account) -> list[dict[str, Any]]:
        """GET /sapi/v1/capital/config/getall: every coin the exchange lists for withdrawal, with the account's
        balance of it."""
        out = []
        for coin, nets in self.config.networks.items():
            free, locked = account.balance(coin)
            withdrawing = sum((w.amount + w.fee for w in self.by_account.get(account.api_key, [])
                               if w.coin == coin and w.status not in W_FINAL), ZERO)
            out.append({
                "coin": coin, "depositAllEnable": True, "withdrawAllEnable": any(n.enabled for n in nets.values()),
                "name": coin, "free": payloads.fmt(free), "locked": payloads.fmt(locked), "freeze": "0",
                "withdrawing": payloads.fmt(withdrawing), "ipoing": "0", "ipoable": "0", "storage": "0",
                "isLegalMoney": False, "trading": True,
                "networkList": [_network_row(coin, name, rule, i == 0) for i, (name, rule) in enumerate(nets.items())],
            })
        return out


def _network_row(coin: str, name: str, rule: WithdrawNetwork, default: bool) -> dict[str, Any]:
    return {
        "network": name, "coin": coin, "withdrawIntegerMultiple": str(rule.integer_multiple), "isDefault": default,
        "depositEnable": True, "withdrawEnable": rule.enabled, "depositDesc": "",
        "withdrawDesc": "" if rule.enabled else "Wallet Maintenance, Withdrawal Suspended", "specialTips": "",
        "name": name, "resetAddressStatus": False, "addressRegex": "^(0x)[0-9A-Fa-f]{40}$", "memoRegex": "",
        "withdrawFee": str(rule.fee), "withdrawMin": str(rule.minimum), "withdrawMax": str(rule.maximum),
        "minConfirm": rule.min_confirm, "unLockConfirm": 0, "sameAddress": False, "estimatedArrivalTime": 1,
        "busy": False, "contractAddressUrl": "", "contractAddress": "",
    }


def _utc(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def history_row(w: Withdrawal) -> dict[str, Any]:
    """GET /sapi/v1/capital/withdraw/history element (Binance wallet docs: times as UTC text)."""
    row: dict[str, Any] = {
        "id": w.id, "amount": payloads.fmt(w.amount), "transactionFee": str(w.fee), "coin": w.coin,
        "status": w.status, "address": w.address, "txId": w.tx_id, "applyTime": _utc(w.apply_time),
        "network": w.network, "transferType": 0, "info": w.info, "confirmNo": 1 if w.status == W_COMPLETED else 0,
        "walletType": w.wallet_type, "txKey": "",
    }
    if w.withdraw_order_id:
        row["withdrawOrderId"] = w.withdraw_order_id  # Binance omits it for a withdrawal without one
    if w.complete_time is not None:
        row["completeTime"] = _utc(w.complete_time)
    return row
