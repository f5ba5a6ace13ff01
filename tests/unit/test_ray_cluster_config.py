"""ray_cluster.yaml and config/runtime_env.yaml, checked offline (`ray up` has no dry run, spec/ray.md §8): the
launcher's own schema accepts the cluster file, and the two files agree with the project — the same Ray pin as
pyproject.toml, the job's pip list is pyproject's dependencies, the npm paths the runtime env names are where the
setup commands install them, and every resource the live placement asks for is offered by some node."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from world.config_check import check
from world.placement import resources_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())


@pytest.fixture(scope="module")
def runtime_env() -> dict:
    return yaml.safe_load((ROOT / "config" / "runtime_env.yaml").read_text())


@pytest.fixture(scope="module")
def dependencies() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def test_the_cluster_launcher_accepts_the_file(cluster: dict) -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(dict(cluster))
    validate_config(prepared)  # raises jsonschema's ValidationError on a bad key
    assert prepared["cluster_name"] == "indexmaker" and prepared["provider"]["type"] == "local"


def test_a_typo_would_be_caught(cluster: dict) -> None:
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    broken = dict(cluster)
    broken["provder"] = broken.pop("provider")
    with pytest.raises((jsonschema.ValidationError, KeyError, ValueError)):
        validate_config(prepare_config(broken))


def test_nodes_get_the_ray_version_pyproject_pins(cluster: dict, dependencies: list[str]) -> None:
    (pin,) = [d for d in dependencies if d.startswith("ray")]
    commands = " ".join(cluster["setup_commands"])
    assert pin.replace('"', "") in commands.replace('"', "")


def test_the_job_installs_exactly_the_other_dependencies(runtime_env: dict, dependencies: list[str]) -> None:
    assert sorted(runtime_env["pip"]["packages"]) == sorted(d for d in dependencies if not d.startswith("ray"))
    assert runtime_env["working_dir"] == "."
    assert {".venv/", "node_modules/", "state/"} <= set(runtime_env["excludes"])


def test_npm_paths_are_where_the_setup_installs(cluster: dict, runtime_env: dict) -> None:
    user_home = f"/home/{cluster['auth']['ssh_user']}"
    (mount_target,) = cluster["file_mounts"]
    npm = next(c for c in cluster["setup_commands"] if "npm ci" in c)
    assert mount_target in npm  # npm runs in the mounted checkout
    root = user_home + "/" + mount_target.removeprefix("~/") + "/node_modules/"
    for var in ("INDEXMAKER_ACROSS_ARTIFACTS", "INDEXMAKER_ANVIL"):
        assert runtime_env["env_vars"][var].startswith(root), var
    assert runtime_env["env_vars"]["INDEXMAKER_ACROSS_ARTIFACTS"].endswith("@across-protocol/contracts/dist/evm/"
                                                                           "artifacts")


def test_every_placed_resource_is_offered_by_a_node(cluster: dict) -> None:
    offered: set[str] = set()
    for command in cluster["head_start_ray_commands"] + cluster["worker_start_ray_commands"]:
        for found in re.findall(r"--resources='(\{[^']*\})'", command):
            offered |= set(yaml.safe_load(found))
    live = check(str(ROOT / "config" / "live.toml")).settings
    asked = {r for pattern in live.ray.placement for r in resources_for(pattern, live.ray.placement)}
    assert asked and asked <= offered
    # The GCS port the workers dial is the one the head listens on (not Redis's 6379, spec/ray.md §2).
    head_port = re.search(r"--port=(\d+)", " ".join(cluster["head_start_ray_commands"])).group(1)
    assert f"$RAY_HEAD_IP:{head_port}" in " ".join(cluster["worker_start_ray_commands"])
