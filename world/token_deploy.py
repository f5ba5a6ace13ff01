"""`indexmaker deploy-token SYMBOL`: one index's token on the configured index chain (Base), deployed by the
operator's admin account, its only minter and burner the solver account (both derived from the operator's mnemonic
at `[chain] account_indexes`). The local world deploys its tokens itself with the same code
(world/contracts_deployer.py); an external world's are the operator's, once, and then named in the configuration."""
from __future__ import annotations

from typing import Any

from chain.keys import derive_account


def deploy_token(settings: Any, symbol: str, name: str, mnemonic: str) -> str:
    """The new token's address; RuntimeError when the RPC is not the configured chain (nothing is sent then)."""
    from web3 import Web3

    from world.contracts_deployer import deploy_index_token
    from world.evm_signer import EvmSigner

    c = settings.chain
    if not c.base_rpc:
        raise RuntimeError("chain.base_rpc: the index chain's RPC is not configured")
    w3 = Web3(Web3.HTTPProvider(c.base_rpc, request_kwargs={"timeout": settings.world_check.timeout_s}))
    admin = EvmSigner(w3, derive_account(mnemonic, c.account_indexes["admin"]),
                      receipt_timeout_s=c.receipt_timeout_ms / 1000, poll_s=c.receipt_poll_ms / 1000)
    if admin.chain_id != c.base_chain_id:
        raise RuntimeError(f"chain.base_rpc {c.base_rpc} answers chain id {admin.chain_id}, the configuration says "
                           f"{c.base_chain_id}: nothing deployed")
    minter = derive_account(mnemonic, c.account_indexes["solver"]).address
    return deploy_index_token(admin, symbol, name, minter)
