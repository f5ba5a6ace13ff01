"""What a user does by hand against a running system: deposit USDC, send index tokens back for redemption, read the
balance, and (local world) find a funded key to do it with.

It talks to the system only as a user would: a signed ERC-20 transfer on chain, signed GETs on the HTTP service;
nothing here reaches into Ray or the store. A deposit's stages are printed as they happen: sent, mined, credited
(with its route's hold), routed; a token deposit's: sent, mined, credited for redemption."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from chain.deployment import ChainDeployment, WorldState
from core.chain_events import event_key
from protocol.http_auth import sign_request
from protocol.signature import Signer

#: Seconds between two looks at the system while a deposit travels (it moves at block time, ~1 s locally).
POLL_S = 0.25


class UserCommandError(RuntimeError):
    """What stops a user command, said plainly (no running system, a refused request, a timeout)."""


def running_system(run: dict[str, Any] | None, state_dir: Path) -> dict[str, Any]:
    if not run or run.get("phase") != "up":
        raise UserCommandError(f"no running system in {state_dir} (start it with `indexmaker up`)")
    for field in ("world_file", "http_url"):
        if not run.get(field):
            raise UserCommandError(f"the run file in {state_dir} has no {field}: restart the system with this "
                                   f"version (`indexmaker down`, then `indexmaker up`)")
    return run


def world_of(run: dict[str, Any]) -> WorldState:
    return WorldState.load(run["world_file"])


def fetch_balance(http_url: str, signer: Signer, timeout_s: float = 10.0) -> dict[str, Any]:
    """The signer's ledger by parts and deposits (GET /balance, signed like every user request)."""
    target = "/balance"
    headers = sign_request(signer, "GET", target, int(time.time() * 1000))
    request = urllib.request.Request(http_url.rstrip("/") + target, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")[:500]
        raise UserCommandError(f"GET {target} answered {exc.code}: {body}") from None
    except urllib.error.URLError as exc:
        raise UserCommandError(f"the HTTP service at {http_url} does not answer: {exc.reason}") from None


def fetch_indexes(http_url: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """The served indexes with their assets and live prices (GET /indexes: public, unsigned)."""
    try:
        with urllib.request.urlopen(http_url.rstrip("/") + "/indexes", timeout=timeout_s) as answer:
            return json.loads(answer.read())["indexes"]
    except urllib.error.HTTPError as exc:
        raise UserCommandError(f"GET /indexes answered {exc.code}: {exc.read().decode(errors='replace')[:500]}"
                               ) from None
    except urllib.error.URLError as exc:
        raise UserCommandError(f"the HTTP service at {http_url} does not answer: {exc.reason}") from None


def index_lines(indexes: list[dict[str, Any]], assets: bool = True) -> list[str]:
    """`indexmaker indexes`: a line per index (its price per unit at the mids and at the asks), then its assets."""
    lines = []
    for ix in indexes:
        price = (f"{Decimal(ix['mid_price']):,f} USDC per unit (mid), {Decimal(ix['ask_price']):,f} at the asks"
                 if ix["mid_price"] is not None else f"no live price (no book: {', '.join(ix['missing_books'])})")
        lines.append(f"{ix['index']:9} {len(ix['assets']):3} assets  {price}  {ix['name']}")
        if assets:
            for a in ix["assets"]:
                mid = f"{Decimal(a['mid']):f}" if a["mid"] is not None else "-"
                lines.append(f"    {a['symbol']:14} {Decimal(a['quantity']):>26f} per unit  weight "
                             f"{a['weight']:>6}%  mid {mid}")
    return lines


def token_balances(world: WorldState, address: str) -> dict[str, Decimal]:
    """Index tokens held, per index (every chain that carries index tokens; Base on every world): {index: tokens}."""
    from web3 import Web3

    from chain.contracts import bind

    out: dict[str, Decimal] = {}
    for chain in world.chains.values():
        tokens = bind(Web3(Web3.HTTPProvider(chain.rpc_url)), chain).index_tokens
        for index, token in sorted(tokens.items()):
            units = token.functions.balanceOf(Web3.to_checksum_address(address)).call()
            out[index] = out.get(index, Decimal(0)) + Decimal(units).scaleb(-(chain.index_token_decimals or 18))
    return out


def balance_lines(balance: dict[str, Any], tokens: dict[str, Decimal]) -> list[str]:
    parts = balance["parts"]
    lines = [f"user {balance['user']}"]
    lines += [f"  {name:13} {Decimal(parts[name]):>20f} USDC" for name in
              ("available", "held", "reserved", "spent", "fees_charged", "withdrawn", "debt", "credited")]
    lines.append("  (credited + debt = available + held + reserved + spent + fees_charged + withdrawn)")
    for key, d in balance["deposits"].items():
        state = "reversed by a reorg" if d["reversed"] else (f"{d['held']} held for its route"
                                                             if Decimal(d["held"]) else "routed")
        lines.append(f"  deposit {key}: {d['amount']} USDC, {state}")
    credited = balance.get("tokens_credited", {})
    for index in sorted(set(tokens) | set(credited)):
        held = credited.get(index, {})
        line = f"  tokens: {tokens.get(index, Decimal(0)):f} {index} in the wallet"
        if held:
            line += (f"; credited for redemption {held['credited']}: {held['available']} available, "
                     f"{held['reserved']} in sells, {held['redeemed']} redeemed, {held['reversed']} reversed")
            if Decimal(held["debt"]):
                line += f", {held['debt']} owed"
        lines.append(line)
    for key, d in balance.get("token_deposits", {}).items():
        state = "reversed by a reorg" if d["reversed"] else "credited for redemption"
        lines.append(f"  token deposit {key}: {d['units']} {d['index']}, {state}")
    return lines


def _send_to_custody(chain: ChainDeployment, custody: str, key: str, amount: Decimal, token: Any, decimals: int,
                     what: str) -> tuple[str, int, str]:
    """An ERC-20 transfer of `amount` (whole base units of the token's `decimals`) from the user's key to custody;
    (tx hash, block, deposit key) once it is mined."""
    from eth_account import Account
    from web3 import Web3

    from world.evm_signer import EvmSigner

    units = amount.scaleb(decimals)
    if units != units.to_integral_value() or units <= 0:
        raise UserCommandError(f"amount {amount} is not a positive whole number of {what} units (1e-{decimals})")
    account = Account.from_key(key)
    have = token.functions.balanceOf(account.address).call()
    if have < int(units):
        raise UserCommandError(f"{account.address} holds {Decimal(have).scaleb(-decimals)} {what} on "
                               f"{chain.name}, less than {amount}")
    w3 = token.w3
    receipt = EvmSigner(w3, account).transact(token.functions.transfer(Web3.to_checksum_address(custody), int(units)))
    if receipt["status"] != 1:
        raise UserCommandError(f"the transfer reverted in {receipt['transactionHash'].hex()}")
    tx = "0x" + receipt["transactionHash"].hex().removeprefix("0x")
    (log,) = [lg for lg in receipt["logs"] if lg["address"].lower() == token.address.lower()]
    return tx, receipt["blockNumber"], event_key(chain.chain_id, tx, log["logIndex"])


def send_deposit(chain: ChainDeployment, custody: str, key: str, amount: Decimal) -> tuple[str, int, str]:
    """A USDC transfer from the user's key to custody; (tx hash, block, deposit key) once it is mined."""
    from web3 import Web3

    from chain.contracts import bind

    usdc = bind(Web3(Web3.HTTPProvider(chain.rpc_url)), chain).usdc
    return _send_to_custody(chain, custody, key, amount, usdc, chain.usdc_decimals, "USDC")


def send_token_deposit(chain: ChainDeployment, custody: str, key: str, index: str, amount: Decimal
                       ) -> tuple[str, int, str]:
    """A transfer of `amount` index tokens of `index` from the user's key to custody on `chain` (Base, where the
    index tokens live), to be credited for redemption; (tx hash, block, deposit key) once it is mined."""
    from web3 import Web3

    from chain.contracts import bind

    tokens = bind(Web3(Web3.HTTPProvider(chain.rpc_url)), chain).index_tokens
    if index not in tokens:
        raise UserCommandError(f"no {index} token on {chain.name} (tokens: {', '.join(sorted(tokens)) or 'none'})")
    return _send_to_custody(chain, custody, key, amount, tokens[index], chain.index_token_decimals or 18, index)


def follow_token_deposit(http_url: str, signer: Signer, deposit_key: str, out: Callable[[str], None], *,
                         timeout_s: float) -> dict[str, Any]:
    """Wait until the system credits the token deposit for redemption (after Base's confirmations) and print it;
    the last balance read."""
    deadline = time.monotonic() + timeout_s
    while True:
        balance = fetch_balance(http_url, signer)
        d = balance.get("token_deposits", {}).get(deposit_key)
        if d is not None and d["reversed"]:
            raise UserCommandError(f"token deposit {deposit_key} was reversed by a reorg")
        if d is not None:
            held = balance["tokens_credited"][d["index"]]
            out(f"credited   {d['units']} {d['index']} for redemption ({held['available']} {d['index']} available "
                f"to sell)")
            return balance
        if time.monotonic() > deadline:
            raise UserCommandError(f"token deposit {deposit_key} not credited within {timeout_s} s")
        time.sleep(POLL_S)  # the system moves at block time: look again shortly


def follow_deposit(http_url: str, signer: Signer, deposit_key: str, out: Callable[[str], None], *,
                   timeout_s: float, until_routed: bool = True) -> dict[str, Any]:
    """Print the deposit's stages as the system reaches them; the last balance read."""
    deadline = time.monotonic() + timeout_s
    credited = False
    while True:
        balance = fetch_balance(http_url, signer)
        d = balance["deposits"].get(deposit_key)
        if d is not None and d["reversed"]:
            raise UserCommandError(f"deposit {deposit_key} was reversed by a reorg")
        if d is not None and not credited:
            credited = True
            out(f"credited   {d['amount']} USDC ({d['held']} held for its route; available "
                f"{balance['parts']['available']})")
        if credited and (not until_routed or Decimal(d["held"]) == 0):
            if until_routed:
                fees = sum((Decimal(v) for k, v in balance["fees"].items() if k.endswith(":" + deposit_key)),
                           Decimal(0))
                out(f"routed     routing fee {fees} USDC charged, the rest of the hold released; available "
                    f"{balance['parts']['available']}")
            return balance
        if time.monotonic() > deadline:
            stage = "routed" if credited else "credited"
            raise UserCommandError(f"deposit {deposit_key} not {stage} within {timeout_s} s")
        time.sleep(POLL_S)  # the system moves at block time: look again shortly


def dev_keys(world: WorldState) -> list[dict[str, Any]]:
    """The local world's funded user accounts (anvil's public dev mnemonic: for the local world only)."""
    from web3 import Web3

    from chain.contracts import bind
    from chain.keys import DEV_MNEMONIC, derive_account

    chains = {name: (c, bind(Web3(Web3.HTTPProvider(c.rpc_url)), c).usdc) for name, c in sorted(world.chains.items())}
    out = []
    for ref in world.users:
        account = derive_account(DEV_MNEMONIC, ref.index)
        entry = {"address": account.address, "key": "0x" + account.key.hex().removeprefix("0x")}
        for name, (chain, usdc) in chains.items():  # users hold USDC on every chain: a deposit may come from each
            units = usdc.functions.balanceOf(account.address).call()
            entry[f"usdc_{name}"] = str(Decimal(units).scaleb(-chain.usdc_decimals))
        out.append(entry)
    return out


#: The stages after which a withdrawal moves no more (core.withdrawal.FINAL's values).
WITHDRAWAL_ENDS = frozenset({"paid", "released", "refunded", "refused"})


async def withdraw(gateway_url: str, signer: Signer, chain_id: int, withdrawal_id: str, amount: Decimal,
                   destination: str, destination_chain_id: int, max_fee: Decimal | None, out: Callable[[str], None],
                   *, timeout_s: float) -> dict[str, Any]:
    """Send the signed WithdrawCollateral over the gateway's websocket and print its answer, then each stage it
    reaches until it ends (paid: with the transaction hash); the last report, as plain data."""
    import asyncio

    from protocol.client import GatewayClient, NakError
    from protocol.indexmaker_messages import CollateralWithdrawal, WithdrawCollateralReport

    async with GatewayClient(gateway_url, signer, chain_id, reconnect=False) as client:
        try:
            await client.withdraw(withdrawal_id, f"{amount:f}", destination, destination_chain_id,
                                  None if max_fee is None else f"{max_fee:f}")
        except NakError as exc:
            raise UserCommandError(f"the gateway refused the request: {exc}") from None
        deadline = asyncio.get_running_loop().time() + timeout_s
        last: dict[str, Any] = {}
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise UserCommandError(f"withdrawal {withdrawal_id} still at {last.get('stage', 'new')} after "
                                       f"{timeout_s} s (it goes on; `indexmaker balance` shows its hold)")
            try:
                body = (await client.next_report(left)).body
            except asyncio.TimeoutError:
                continue
            if isinstance(body, WithdrawCollateralReport) and body.withdrawal_id == withdrawal_id:
                if body.status == "rejected":
                    raise UserCommandError(f"withdrawal refused: {body.reason_code.value}: {body.reason}")
                out(f"accepted   {amount} USDC held for withdrawal {withdrawal_id} to {destination}")
            elif isinstance(body, CollateralWithdrawal) and body.withdrawal_id == withdrawal_id:
                last = body.model_dump(mode="json", exclude_none=True)
                extra = "".join(f", {k} {last[k]}" for k in ("payout", "tx_hash", "reason") if k in last)
                out(f"{body.stage:10} fees {body.fees} USDC{extra}")
                if body.stage in WITHDRAWAL_ENDS:
                    return last
