"""Deploys, on one local chain, what the product expects to find there (spec/chain.md §4 and §7):

- USDC (`ExpandedERC20`, 6 decimals), the admin holding the minter role;
- WETH9 and the real Across SpokePool behind an `ERC1967Proxy` whose constructor calls `initialize`;
- on the index chain, one token per index (18 decimals), whose only minter/burner is the solver.

All bytecode comes from the npm artifacts as it is; nothing is compiled here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from chain.artifacts import load_artifact
from world.evm_signer import EvmSigner

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
#: ExpandedERC20 roles (UMA MultiRole): 0 Owner, 1 Minter, 2 Burner.
MINTER_ROLE = 1

# Which SpokePool flavour each chain runs, with its constructor and initializer (spec/chain.md §4).
POOL_ARTIFACTS = {"arbitrum": "Arbitrum_SpokePool", "base": "OP_SpokePool"}


@dataclass(frozen=True, slots=True)
class DeployedContracts:
    usdc: str
    weth: str
    spoke_pool: str
    spoke_pool_abi: str
    index_tokens: dict[str, str]  # index symbol -> token address


def deploy_chain(admin: EvmSigner, flavour: str, *, quote_time_buffer_s: int, fill_deadline_buffer_s: int,
                 index_tokens: Sequence[tuple[str, str]] = (), minter: str | None = None,
                 nonce_offset: int = 0) -> DeployedContracts:
    """Deploy USDC, WETH9 and the SpokePool, and a token per (symbol, name) of `index_tokens` minted by `minter`.

    `nonce_offset` dummy transactions go first so that this chain's CREATE addresses differ from another chain
    deployed by the same admin (spec/chain.md pitfall 8)."""
    if flavour not in POOL_ARTIFACTS:
        raise ValueError(f"unknown chain flavour {flavour!r}: one of {sorted(POOL_ARTIFACTS)}")
    for _ in range(nonce_offset):
        admin.burn_nonce()
    erc20 = load_artifact("ExpandedERC20")
    usdc = admin.deploy(erc20.abi, erc20.bytecode, "USD Coin", "USDC", 6)
    admin.transact(admin.w3.eth.contract(address=usdc, abi=erc20.abi).functions.addMinter(admin.address))
    weth_art = load_artifact("WETH9")
    weth = admin.deploy(weth_art.abi, weth_art.bytecode)

    pool_name = POOL_ARTIFACTS[flavour]
    pool_art = load_artifact(pool_name)
    if flavour == "arbitrum":
        # (wrappedNative, depositQuoteTimeBuffer, fillDeadlineBuffer, l2Usdc, cctpTokenMessenger, oftDstEid,
        #  oftFeeCap, gateway): CCTP, OFT and the V5 gateway are off (zero).
        impl = admin.deploy(pool_art.abi, pool_art.bytecode, weth, quote_time_buffer_s, fill_deadline_buffer_s,
                            usdc, ZERO_ADDRESS, 0, 0, ZERO_ADDRESS)
        init_args = [0, admin.address, admin.address, admin.address]  # depositId0, l2GatewayRouter, xAdmin, hub
    else:
        impl = admin.deploy(pool_art.abi, pool_art.bytecode, weth, quote_time_buffer_s, fill_deadline_buffer_s,
                            usdc, ZERO_ADDRESS, ZERO_ADDRESS)
        init_args = [0, admin.address, admin.address]  # depositId0, crossDomainAdmin, withdrawalRecipient
    init_data = admin.w3.eth.contract(abi=pool_art.abi).encode_abi("initialize", args=init_args)
    proxy_art = load_artifact("ERC1967Proxy")
    pool = admin.deploy(proxy_art.abi, proxy_art.bytecode, impl, init_data)

    tokens = {symbol: deploy_index_token(admin, symbol, name, minter) for symbol, name in index_tokens}
    return DeployedContracts(usdc, weth, pool, pool_name, tokens)


def deploy_index_token(admin: EvmSigner, symbol: str, name: str, minter: str | None) -> str:
    """One index's token (18 decimals): `minter` (the solver) is its only minter and burner."""
    if minter is None:
        raise ValueError(f"index token {symbol}: no minter given")
    erc20 = load_artifact("ExpandedERC20")
    token = admin.deploy(erc20.abi, erc20.bytecode, name, symbol, 18)
    contract = admin.w3.eth.contract(address=token, abi=erc20.abi)
    admin.transact(contract.functions.addMinter(minter))
    admin.transact(contract.functions.addBurner(minter))
    return token


def mint_usdc(admin: EvmSigner, usdc: str, to: str, units: int) -> None:
    erc20 = load_artifact("ExpandedERC20")
    admin.transact(admin.w3.eth.contract(address=usdc, abi=erc20.abi).functions.mint(to, units))
