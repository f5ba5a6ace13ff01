"""`indexmaker config check FILE`: every problem of a configuration file, one line per field, in words.

Pydantic's report is written for programmers; an operator wants `solver.fee_factor: write money as a string
("1.002"), not 1.002`, and the TOML line when it does not parse. Cross-field rules name their fields; placement and
the environment's name are checked; the secrets an environment needs are listed with their source, never their
values (missing is a note)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENVIRONMENTS = ("local", "testnet", "live")


@dataclass
class CheckResult:
    file: str
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: Any = None

    @property
    def ok(self) -> bool:
        return not self.errors


def _loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "settings together"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def explain(error: dict[str, Any]) -> str:
    """One pydantic error as `where: what (got value)`."""
    where = _loc(tuple(error.get("loc", ())))
    kind = error.get("type", "")
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        hint = " (secrets never go in a config file: see INDEXMAKER_SECRETS_FILE)" if any(
            w in where.lower() for w in ("key", "secret", "mnemonic", "password", "token")) else ""
        return f"{where}: unknown setting{hint}"
    if kind == "missing":
        return f"{where}: required"
    value = error.get("input")
    shown = "input" in error and kind != "value_error" and not isinstance(value, (dict, list))
    got = f" (got {_shown(value)})" if shown else ""
    return f"{where}: {msg}{got}"


def check(path: str | None) -> CheckResult:
    import core  # noqa: F401  (decimal context)
    from pydantic import ValidationError

    from core.config import Settings
    from world.secrets import SecretsError, report

    result = CheckResult(path or "(defaults)")
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            result.errors.append(f"{path}: no such file")
            return result
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            result.errors.append(f"{path}: not valid TOML: {exc}")
            return result
    # The checks the model does not make, on the file as written (so they show with the model's own errors) ...
    result.errors.extend(_beyond_the_model(raw.get("environment"), (raw.get("ray") or {}).get("placement")))
    try:
        settings = Settings.load(path)
    except ValidationError as exc:
        result.errors.extend(explain(e) for e in exc.errors())
        return result
    except ValueError as exc:
        result.errors.append(str(exc))
        return result
    result.settings = settings
    # ... and on the result, environment variables included.
    for problem in _beyond_the_model(settings.environment, settings.ray.placement):
        if problem not in result.errors:
            result.errors.append(problem)
    try:
        secrets = report(settings.environment)
        for name, source in secrets.source.items():
            result.notes.append(f"secret {name}: {source}")
        if secrets.missing:
            result.notes.append(f"{len(secrets.missing)} secret(s) missing: needed to run {settings.environment}, "
                                f"not to check the file")
    except SecretsError as exc:
        result.errors.append(str(exc))
    return result


def _beyond_the_model(environment: Any, placement: Any) -> list[str]:
    from world.placement import check_placement

    problems = []
    if environment is not None and environment not in ENVIRONMENTS:
        problems.append(f"environment: must be one of {', '.join(ENVIRONMENTS)} (got {environment!r})")
    if isinstance(placement, dict) and all(isinstance(v, dict) for v in placement.values()):
        try:
            problems.extend(check_placement(placement))
        except TypeError:  # amounts of the wrong type: the model's own error says so
            pass
    return problems
