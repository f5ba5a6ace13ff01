"""The world file (chain/deployment.py) is versioned: a file written before one token per index still loads."""
from __future__ import annotations

import pytest

from chain.deployment import LEGACY_INDEX, WORLD_FILE_VERSION, WorldState

CHAIN = {"name": "base", "chain_id": 8453, "rpc_url": "http://h:1", "usdc": "0xU", "usdc_decimals": 6,
         "spoke_pool": "0xP", "spoke_pool_abi": "OP_SpokePool", "weth": "0xW", "start_block": 3,
         "index_token_decimals": 18, "pid": None}
ACCOUNTS = {"solver": {"address": "0xS", "index": 1}}


def test_a_version_1_file_gives_its_one_token_to_the_index_served_then() -> None:
    old = {"chains": {"base": {**CHAIN, "index_token": "0xT"}, "arbitrum": {**CHAIN, "name": "arbitrum",
                                                                           "index_token": None}},
           "accounts": ACCOUNTS}
    state = WorldState.from_dict(old)
    assert state.chain("base").index_tokens == {LEGACY_INDEX: "0xT"} and state.chain("arbitrum").index_tokens == {}
    again = state.to_dict()
    assert again["version"] == WORLD_FILE_VERSION and WorldState.from_dict(again) == state


def test_a_newer_file_is_refused() -> None:
    with pytest.raises(ValueError, match="newer"):
        WorldState.from_dict({"version": WORLD_FILE_VERSION + 1, "chains": {}, "accounts": ACCOUNTS})
