"""Fixtures for the Pulumi program's tests: runs of the real stacks/ program under puente.pulumikit."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from puente import pulumikit
from puente.pulumikit import PolicyPackServer, Recording

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "stacks"
POLICY_PACK = REPO / "policy"
# The program's and the pack's modules, importable as Pulumi itself makes them (run_path of the dir).
for _path in (PROGRAM, POLICY_PACK):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# Stack files carry no secrets (they are set with `pulumi config set --secret`); tests provide them.
TEST_SECRETS = {"puente:databasePassword": "correct-horse-battery-staple-42"}
DELETE = object()


def stack_config(stack: str, overrides: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Pulumi.<stack>.yaml's config with `overrides` ({"puente:database.multiAz": False, ...}) applied."""
    project, config = pulumikit.load_stack_config(REPO, stack)
    config = copy.deepcopy(config)
    for dotted, value in (overrides or {}).items():
        key, *path = dotted.split(".")
        if not path:
            if value is DELETE:
                config.pop(key, None)
            else:
                config[key] = value
            continue
        node = config.setdefault(key, {})
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return project, config


def run_stack(
    stack: str,
    overrides: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
    recording: Recording | None = None,
) -> Recording:
    project, config = stack_config(stack, overrides)
    return pulumikit.run(
        PROGRAM,
        project=project,
        stack=stack,
        config=config,
        secrets=TEST_SECRETS if secrets is None else secrets,
        recording=recording,
    )


@pytest.fixture(scope="session")
def dev() -> Recording:
    return run_stack("dev")


@pytest.fixture(scope="session")
def prod() -> Recording:
    return run_stack("prod")


@pytest.fixture(scope="session")
def geo() -> Recording:
    """The second-region example: prod in eu-central-1 with the cross-site Patroni members on EC2."""
    return run_stack("prod-euc1")


@pytest.fixture(scope="session", params=["dev", "prod", "prod-euc1"])
def any_stack(request: pytest.FixtureRequest) -> Recording:
    return request.getfixturevalue({"dev": "dev", "prod": "prod", "prod-euc1": "geo"}[request.param])


@pytest.fixture(scope="session")
def policy_pack() -> Iterator[PolicyPackServer]:
    with PolicyPackServer(POLICY_PACK, project="puente", stack="test") as pack:
        yield pack
