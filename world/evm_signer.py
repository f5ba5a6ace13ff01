"""Synchronous send-and-wait for the local world's own transactions (deploy, fund, relay).

The world runs on a local node it controls, so a plain "sign, send, wait for the receipt, fail loudly on revert"
is enough here. The product's transactions go through chain/tx_sender.py instead, which records intents and
never double-spends.
"""
from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxReceipt


class EvmSigner:
    def __init__(self, w3: Web3, account: LocalAccount, *, receipt_timeout_s: float = 30.0,
                 poll_s: float = 0.02) -> None:
        self.w3 = w3
        self.account = account
        self.chain_id = w3.eth.chain_id
        self.receipt_timeout_s = receipt_timeout_s
        self.poll_s = poll_s

    @property
    def address(self) -> str:
        return self.account.address

    def _base_tx(self) -> dict[str, Any]:
        return {"from": self.account.address, "chainId": self.chain_id,
                "nonce": self.w3.eth.get_transaction_count(self.account.address, "pending")}

    def send(self, tx: dict[str, Any]) -> TxReceipt:
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout_s,
                                                           poll_latency=self.poll_s)
        if receipt["status"] != 1:
            raise RuntimeError(f"transaction {tx_hash.hex()} reverted on chain {self.chain_id}")
        return receipt

    def transact(self, fn: Any) -> TxReceipt:
        """Send a contract call (`contract.functions.x(...)`); reverts raise before sending (estimateGas)."""
        return self.send(fn.build_transaction(self._base_tx()))

    def deploy(self, abi: list, bytecode: str, *args: Any) -> str:
        ctor = self.w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args)
        receipt = self.send(ctor.build_transaction(self._base_tx()))
        return Web3.to_checksum_address(receipt["contractAddress"])

    def burn_nonce(self) -> None:
        """A zero-value self-transfer: shifts every later CREATE address (to make chains' addresses differ)."""
        self.send({**self._base_tx(), "to": self.account.address, "value": 0, "gas": 21_000,
                   **self._fees()})

    def _fees(self) -> dict[str, int]:
        base = self.w3.eth.get_block("latest")["baseFeePerGas"]
        tip = self.w3.eth.max_priority_fee
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}
