"""Signatures: ours are eth-account's, both ways (sign and recover), and what is not a valid signer never matches."""
from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.signature import (_SECP256K1_N, SignatureError, Signer, address_of_public_key, recover_public_key,
                                signer_matches)

KEYS = st.integers(min_value=1, max_value=_SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))


@settings(max_examples=40, deadline=None)
@given(KEYS, st.binary(max_size=300))
def test_signing_is_eth_accounts_personal_sign(key: bytes, message: bytes) -> None:
    ours = Signer(key)
    theirs = Account.sign_message(encode_defunct(primitive=message), key)
    assert ours.address == Account.from_key(key).address
    assert ours.sign(message) == "0x" + bytes(theirs.signature).hex()  # RFC 6979: the very same bytes


@settings(max_examples=40, deadline=None)
@given(KEYS, st.binary(max_size=300))
def test_recovery_agrees_with_eth_account(key: bytes, message: bytes) -> None:
    signature = Account.sign_message(encode_defunct(primitive=message), key).signature
    public_key = recover_public_key(message, "0x" + bytes(signature).hex())
    assert address_of_public_key(public_key) == Account.recover_message(encode_defunct(primitive=message),
                                                                        signature=signature)


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(min_value=0))
def test_a_changed_message_does_not_match_its_signer(message: bytes, where: int) -> None:
    signer = Signer.generate()
    signature = signer.sign(message)
    i = where % len(message)
    tampered = message[:i] + bytes([message[i] ^ 1]) + message[i + 1:]
    assert signer_matches(message, signature, signer.address)
    assert signer_matches(message, signature, signer.address.lower())
    assert not signer_matches(tampered, signature, signer.address)
    assert not signer_matches(message, signature, Signer.generate().address)


def test_v_may_be_27_28_or_0_1_but_nothing_else() -> None:
    signer = Signer.generate()
    signature = signer.sign(b"m")
    v = int(signature[-2:], 16)
    assert v in (27, 28)
    assert signer_matches(b"m", signature[:-2] + format(v - 27, "02x"), signer.address)
    with pytest.raises(SignatureError):
        recover_public_key(b"m", signature[:-2] + "05")


def test_high_s_twins_are_refused() -> None:
    signer = Signer.generate()
    signature = bytes.fromhex(signer.sign(b"m")[2:])
    s = int.from_bytes(signature[32:64], "big")
    twin = signature[:32] + (_SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])  # same key, high s
    with pytest.raises(SignatureError, match="high"):
        recover_public_key(b"m", "0x" + twin.hex())


@pytest.mark.parametrize("bad", ["0x", "0x1234", "zz" * 65, "0x" + "00" * 65, "0x" + "ff" * 65])
def test_garbage_signatures_raise_signature_error_only(bad: str) -> None:
    with pytest.raises(SignatureError):
        recover_public_key(b"message", bad)
    assert not signer_matches(b"message", bad, Signer.generate().address)


def test_keys_come_from_the_environment_without_leaking_into_errors(monkeypatch) -> None:
    signer = Signer.generate()
    monkeypatch.setenv("GW_KEY", signer.private_key_hex)
    assert Signer.from_env("GW_KEY").address == signer.address
    monkeypatch.setenv("GW_KEY", "not-a-key-but-secret")
    with pytest.raises(ValueError) as info:
        Signer.from_env("GW_KEY")
    assert "not-a-key-but-secret" not in str(info.value)
    with pytest.raises(KeyError):
        Signer.from_env("GW_KEY_MISSING")


def test_a_signer_never_shows_its_key_in_repr() -> None:
    signer = Signer.generate()
    assert signer.private_key_hex[2:] not in repr(signer)
    assert Signer(signer.private_key_hex).address == signer.address
    with pytest.raises(ValueError):
        Signer("0x1234")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=400), min_size=1, max_size=4))
def test_keccak_is_eth_hashs_keccak256_and_keeps_no_state_between_calls(messages: list[bytes]) -> None:
    from eth_hash.auto import keccak as reference  # noqa: PLC0415

    from protocol.signature import keccak  # noqa: PLC0415

    for message in messages:  # several in a row: the reused C state must be reset each time
        assert keccak(message) == reference(message)


def test_keccak_in_threads_is_the_same_as_in_the_main_thread() -> None:
    import threading  # noqa: PLC0415

    from eth_hash.auto import keccak as reference  # noqa: PLC0415

    from protocol.signature import keccak  # noqa: PLC0415

    messages = [bytes([i]) * (i * 7) for i in range(60)]
    results: dict[int, list[bytes]] = {}

    def run(k: int) -> None:
        results[k] = [keccak(m) for m in messages]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = [reference(m) for m in messages]
    assert all(results[k] == expected for k in range(3))
