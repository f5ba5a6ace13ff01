"""Signing accounts, derived from a mnemonic by BIP-44 index; never pasted (spec/chain.md pitfall 12).

The local world uses anvil's public development mnemonic. Anywhere else the mnemonic comes from the environment
(`INDEXMAKER_CHAIN_MNEMONIC`), never from the repo or a log line.
"""
from __future__ import annotations

import os
from functools import lru_cache

from eth_account import Account
from eth_account.signers.local import LocalAccount

#: anvil's well-known development mnemonic: its keys are public, which is what a local test world wants.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
MNEMONIC_ENV = "INDEXMAKER_CHAIN_MNEMONIC"

Account.enable_unaudited_hdwallet_features()


def mnemonic_from_env(default: str | None = DEV_MNEMONIC) -> str:
    value = os.environ.get(MNEMONIC_ENV, default)
    if not value:
        raise RuntimeError(f"no mnemonic: set {MNEMONIC_ENV}")
    return value


@lru_cache(maxsize=256)
def derive_account(mnemonic: str, index: int) -> LocalAccount:
    """Account m/44'/60'/0'/0/{index}. Cached: derivation costs ~10 ms and every role asks again."""
    if index < 0:
        raise ValueError("derivation index must be >= 0")
    return Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{index}")
