"""Secrets: from environment variables, or from a file outside the repository named by INDEXMAKER_SECRETS_FILE.

Not the config files: they are committed and printed, and the settings model refuses a secret as an unknown field.
The file holds `NAME=value` lines; the environment wins. It must lie outside the repository and be `chmod 600`.
`load_into_environ` is also Ray's worker setup hook: every actor reads the same file (its path is passed, never
its contents)."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRETS_FILE_ENV = "INDEXMAKER_SECRETS_FILE"
STORE_PASSWORD = "INDEXMAKER_STORE_PASSWORD"

#: name -> what it is. Only these are read from the file.
SECRET_NAMES = {
    "INDEXMAKER_EXCHANGE_API_KEY": "the exchange account's API key",
    "INDEXMAKER_EXCHANGE_SECRET": "the exchange account's API secret",
    "INDEXMAKER_CHAIN_MNEMONIC": "the mnemonic the chain accounts (custody, wallet, solver) derive from",
    "INDEXMAKER_GATEWAY_KEY": "the gateway's signing key (hex): users check reports against its address",
    STORE_PASSWORD: "the store's password, where `[store] url` names a Redis that asks for one (optional)",
}
_NEEDED = ("INDEXMAKER_EXCHANGE_API_KEY", "INDEXMAKER_EXCHANGE_SECRET", "INDEXMAKER_CHAIN_MNEMONIC",
           "INDEXMAKER_GATEWAY_KEY")

#: What each environment needs (local: the simulator's test account, anvil's dev mnemonic, a key in the state dir).
REQUIRED = {
    "local": (),
    "testnet": _NEEDED,
    "live": _NEEDED,
}


class SecretsError(ValueError):
    pass


@dataclass(frozen=True)
class SecretsReport:
    """Which secrets an environment needs and where each one comes from (never the values)."""

    source: dict[str, str]  # name -> "environment" | "file <path>" | "missing"

    @property
    def missing(self) -> list[str]:
        return [n for n, s in self.source.items() if s == "missing"]


def read_secrets_file(path: str | Path) -> dict[str, str]:
    """The file's secrets; SecretsError names the line or the rule it breaks."""
    p = Path(path).expanduser()
    try:
        resolved = p.resolve(strict=True)
    except FileNotFoundError:
        raise SecretsError(f"{SECRETS_FILE_ENV}={path}: no such file") from None
    if resolved == REPO_ROOT or REPO_ROOT in resolved.parents:
        raise SecretsError(f"{SECRETS_FILE_ENV}={path} is inside the repository ({REPO_ROOT}): keep secrets outside "
                           f"it, where they cannot be committed")
    mode = resolved.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretsError(f"{SECRETS_FILE_ENV}={path} is readable by group or others (mode "
                           f"{stat.S_IMODE(mode):o}): chmod 600 it")
    out: dict[str, str] = {}
    for n, raw in enumerate(resolved.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip().removeprefix("export ").strip()
        if not sep or not value.strip():
            raise SecretsError(f"{path}:{n}: expected NAME=value")
        if name not in SECRET_NAMES:
            raise SecretsError(f"{path}:{n}: unknown secret {name!r} (known: {', '.join(SECRET_NAMES)})")
        out[name] = value.strip().strip('"').strip("'")
    return out


def load_into_environ() -> dict[str, str]:
    """Fill the process environment from INDEXMAKER_SECRETS_FILE (if set) where a variable is not set already.
    Returns name -> where it came from. Also Ray's `worker_process_setup_hook` (takes no argument)."""
    path = os.environ.get(SECRETS_FILE_ENV)
    sources = {n: "environment" for n in SECRET_NAMES if os.environ.get(n)}
    if path:
        for name, value in read_secrets_file(path).items():
            if name not in sources:
                os.environ[name] = value
                sources[name] = f"file {path}"
    return sources


#: What paper mode does without: it never signs a request to the exchange (the paper exchange takes any key).
PAPER_NOT_NEEDED = ("INDEXMAKER_EXCHANGE_API_KEY", "INDEXMAKER_EXCHANGE_SECRET")


def report(environment: str, paper: bool = False) -> SecretsReport:
    """Where each secret `environment` needs comes from (in paper mode: no exchange key), without loading anything
    into the environment."""
    path = os.environ.get(SECRETS_FILE_ENV)
    from_file = read_secrets_file(path) if path else {}
    source = {}
    for name in REQUIRED.get(environment, tuple(SECRET_NAMES)):
        if paper and name in PAPER_NOT_NEEDED:
            continue
        if os.environ.get(name):
            source[name] = "environment"
        elif name in from_file:
            source[name] = f"file {path}"
        else:
            source[name] = "missing"
    return SecretsReport(source)


def require(*names: str) -> tuple[str, ...]:
    """The values of `names` from the environment (after load_into_environ); SecretsError naming every one missing."""
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise SecretsError("missing secret(s): " + ", ".join(f"{n} ({SECRET_NAMES.get(n, n)})" for n in missing))
    return tuple(os.environ[n].strip() for n in names)


def store_url(url: str) -> str:
    """`url` with INDEXMAKER_STORE_PASSWORD as its password where it names none: the config file keeps the store's
    address, the secrets its password."""
    from urllib.parse import quote, urlsplit, urlunsplit

    password = os.environ.get(STORE_PASSWORD)
    parts = urlsplit(url)
    if not password or parts.password is not None or not parts.hostname:
        return url
    netloc = f"{parts.username or ''}:{quote(password, safe='')}@{parts.netloc}"
    return urlunsplit(parts._replace(netloc=netloc))
