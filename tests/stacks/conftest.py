"""Fixtures for the Pulumi program's tests: runs of the real stacks/ program under puente.pulumikit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stacks_helpers import POLICY_PACK, run_stack

from puente.pulumikit import PolicyPackServer, Recording


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
