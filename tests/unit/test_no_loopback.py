"""No code path outside the local world assumes the loopback address: every address of the system (the exchange's
three hosts, the chains' RPCs, the store, the gateway's and the HTTP service's bind hosts) comes from the
configuration, so that an actor on another host of a Ray cluster, or a world on other addresses, is reached.

Searched: every Python file of the project. Not searched, and why:
- world/: the local world itself (it starts redis, anvil and the simulator on LOOPBACK, world/ports.py) and the
  launcher, which fills the local world's addresses into the settings;
- tests/: tests start their own parts on loopback (benchmarks too, but through world/ports.py's LOOPBACK);
- .venv/, node_modules/: installed packages, not ours.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXCLUDED = {"world", "tests", ".venv", "node_modules", ".git"}
LOOPBACK = re.compile(r"127\.0\.0\.1|localhost", re.IGNORECASE)


def project_files(root: Path = ROOT) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if not EXCLUDED & set(p.relative_to(root).parts))


def loopback_lines(files: list[Path], root: Path = ROOT) -> list[str]:
    """file:line: text of every line naming a loopback address."""
    found = []
    for path in files:
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if LOOPBACK.search(line):
                found.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    return found


def test_no_code_outside_the_local_world_names_the_loopback_address() -> None:
    files = project_files()
    assert ROOT / "core" / "config.py" in files and ROOT / "cli.py" in files  # the search reaches our code
    found = loopback_lines(files)
    assert not found, "loopback addresses outside world/ and tests/ (take them from the config):\n" + "\n".join(found)


def test_the_search_names_file_and_line_and_skips_the_excluded_folders(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "x.py").write_text('URL = "http://LOCALHOST:1"\nok = 1\nHOST = "127.0.0.1"\n')
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "y.py").write_text('HOST = "127.0.0.1"\n')
    assert loopback_lines(project_files(tmp_path), tmp_path) == [
        'core/x.py:1: URL = "http://LOCALHOST:1"', 'core/x.py:3: HOST = "127.0.0.1"']
