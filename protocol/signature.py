"""EIP-191 (`personal_sign`) signatures over the canonical body, one scheme for both directions (§10.2).

The maths is eth-account's (tests/unit/test_protocol_signature.py proves it both ways), but the hot path calls
coincurve directly: ~50 us per recovery instead of ~116 us, and the server verifies every request. Only low-s
signatures are accepted (EIP-2), removing the second valid encoding of every signature."""
from __future__ import annotations

import os
import threading

import coincurve
from coincurve._libsecp256k1 import ffi as _ffi, lib as _lib
from coincurve.context import GLOBAL_CONTEXT as _CONTEXT
from coincurve.flags import EC_UNCOMPRESSED as _EC_UNCOMPRESSED
from Crypto.Hash import keccak as _keccak
from eth_utils import to_checksum_address

_PREFIX = b"\x19Ethereum Signed Message:\n"


def _keccak_wrapped(data: bytes) -> bytes:
    return _keccak.new(digest_bits=256, data=data).digest()


try:  # pycryptodome's own C keccak, called without its per-call wrapper objects (~2.3 us instead of ~5.5 us)
    from Crypto.Hash.keccak import _raw_keccak_lib as _klib
    from Crypto.Util._raw_api import ffi as _kffi

    _klocal = threading.local()  # a reusable state and output buffer per thread (the C state is not shareable)

    def _keccak_state() -> tuple[object, object]:
        holder = _kffi.new("void **")
        if _klib.keccak_init(holder, 64, 24):  # capacity 512 bits = keccak256, 24 rounds (what new() passes)
            raise RuntimeError("keccak_init failed")
        state = (_kffi.gc(holder[0], _klib.keccak_destroy), _kffi.new("uint8_t[32]"))
        _klocal.state = state
        return state

    def keccak(data: bytes) -> bytes:
        """keccak256 with pycryptodome's C code (eth-hash's backend here), equal to `Crypto.Hash.keccak`
        (tests/unit/test_protocol_signature.py)."""
        try:
            state, out = _klocal.state
        except AttributeError:
            state, out = _keccak_state()
        _klib.keccak_reset(state)
        _klib.keccak_absorb(state, data, len(data))
        _klib.keccak_digest(state, out, 32, 1)  # padding 0x01: Keccak, not SHA-3
        return _kffi.buffer(out)[:]

    if keccak(b"") != _keccak_wrapped(b""):  # pragma: no cover  (another pycryptodome ABI: use its wrapper)
        keccak = _keccak_wrapped  # type: ignore[assignment]  # noqa: F811
except (ImportError, AttributeError):  # pragma: no cover
    keccak = _keccak_wrapped

# libsecp256k1 called directly through coincurve's own cffi module (coincurve's wrappers allocate four cffi objects
# and a key object per call: ~4 us per recovery, ~3 us per signature). The output structs are reused per thread.
_ctx = _CONTEXT.ctx
_cdata = threading.local()


def _buffers() -> tuple[object, object, object, object, object]:
    try:
        return _cdata.bufs
    except AttributeError:
        bufs = (_ffi.new("secp256k1_ecdsa_recoverable_signature *"), _ffi.new("secp256k1_pubkey *"),
                _ffi.new("unsigned char[65]"), _ffi.new("size_t *"), _ffi.new("int *"))
        _cdata.bufs = bufs
        return bufs


_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _SECP256K1_N // 2


class SignatureError(ValueError):
    """The signature cannot be parsed or does not recover to a key."""


def eip191_digest(message: bytes) -> bytes:
    """keccak256("\\x19Ethereum Signed Message:\\n" + len(message) + message)."""
    return keccak(_PREFIX + str(len(message)).encode("ascii") + message)


def address_of_public_key(public_key: bytes) -> str:
    """Checksummed address of a 65-byte uncompressed public key."""
    return to_checksum_address(keccak(public_key[1:])[-20:])


def recover_public_key(message: bytes, signature_hex: str) -> bytes:
    """The 65-byte uncompressed public key that signed `message` (EIP-191). Raises SignatureError."""
    try:
        sig = bytes.fromhex(signature_hex[2:] if signature_hex.startswith("0x") else signature_hex)
    except ValueError:
        raise SignatureError("signature is not hex") from None
    if len(sig) != 65:
        raise SignatureError(f"signature must be 65 bytes r||s||v, got {len(sig)}")
    v = sig[64]
    if v >= 27:
        v -= 27
    if v not in (0, 1):
        raise SignatureError(f"signature v must be 27/28 (or 0/1), got {sig[64]}")
    s = int.from_bytes(sig[32:64], "big")
    if s == 0 or s > _HALF_N:
        raise SignatureError("signature s is zero or high (only low-s signatures are accepted, EIP-2)")
    recoverable, pubkey, out, out_len, _ = _buffers()
    if not _lib.secp256k1_ecdsa_recoverable_signature_parse_compact(_ctx, recoverable, sig[:64], v):
        raise SignatureError("signature does not recover to a key: r or s out of range")
    if not _lib.secp256k1_ecdsa_recover(_ctx, pubkey, recoverable, eip191_digest(message)):
        raise SignatureError("signature does not recover to a key: failed to recover ECDSA public key")
    out_len[0] = 65
    _lib.secp256k1_ec_pubkey_serialize(_ctx, out, out_len, pubkey, _EC_UNCOMPRESSED)
    return _ffi.buffer(out, 65)[:]


_addresses: dict[bytes, str] = {}  # public key -> lower-case hex address: a user signs every message with one key
_ADDRESSES_MAX = 200_000


def address_hex_of(public_key: bytes) -> str:
    """Lower-case hex address (no 0x) of a 65-byte uncompressed public key; cached (keccak costs ~6 us)."""
    address = _addresses.get(public_key)
    if address is None:
        if len(_addresses) >= _ADDRESSES_MAX:
            _addresses.clear()
        address = _addresses[public_key] = keccak(public_key[1:])[-20:].hex()
    return address


def signer_matches(message: bytes, signature_hex: str, address: str) -> bool:
    """True iff `signature_hex` over `message` was made by the key of `address` (any hex case). Never raises for a
    bad signature: it is simply not a match."""
    try:
        public_key = recover_public_key(message, signature_hex)
    except SignatureError:
        return False
    return address_hex_of(public_key) == address[2:].lower()


class Signer:
    """A secp256k1 private key that signs EIP-191 messages: users' keys in the client, the server's own key."""

    __slots__ = ("_key", "_secret", "address", "public_key_hex")

    def __init__(self, private_key: bytes | str) -> None:
        if isinstance(private_key, str):
            text = private_key[2:] if private_key.startswith("0x") else private_key
            try:
                private_key = bytes.fromhex(text)
            except ValueError:
                raise ValueError("private key must be 32 bytes of hex") from None
        if len(private_key) != 32:
            raise ValueError("private key must be 32 bytes")
        self._key = coincurve.PrivateKey(private_key)
        self._secret = _ffi.new("unsigned char[32]", self._key.secret)  # the C buffer `sign` passes
        public_key = self._key.public_key.format(compressed=False)
        self.address = address_of_public_key(public_key)
        self.public_key_hex = "0x" + public_key.hex()

    @classmethod
    def from_env(cls, variable: str) -> "Signer":
        """The key held in an environment variable (secrets never come from the repo); the error names the
        variable, never its value."""
        value = os.environ.get(variable)
        if not value:
            raise KeyError(f"environment variable {variable} holding a private key is not set")
        try:
            return cls(value.strip())
        except ValueError:
            raise ValueError(f"environment variable {variable} does not hold a 32-byte hex private key") from None

    @classmethod
    def generate(cls) -> "Signer":
        return cls(coincurve.PrivateKey().secret)

    @property
    def private_key_hex(self) -> str:
        return "0x" + self._key.secret.hex()

    def sign(self, message: bytes) -> str:
        """0x-hex r||s||v with v in {27, 28}, low-s (libsecp256k1 always normalises s), as eth-account signs."""
        recoverable, _, out, _, recid = _buffers()
        # nonce function NULL: libsecp256k1's default, RFC 6979 (what coincurve and eth-account use)
        if not _lib.secp256k1_ecdsa_sign_recoverable(_ctx, recoverable, eip191_digest(message), self._secret,
                                                     _ffi.NULL, _ffi.NULL):
            raise ValueError("signing failed")  # pragma: no cover  (only for an invalid key, refused at __init__)
        _lib.secp256k1_ecdsa_recoverable_signature_serialize_compact(_ctx, out, recid, recoverable)
        return "0x" + _ffi.buffer(out, 64)[:].hex() + format(recid[0] + 27, "02x")

    def __repr__(self) -> str:  # never the key itself: reprs end up in logs
        return f"Signer({self.address})"
