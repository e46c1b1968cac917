"""Fixtures for the Pulumi program's tests: runs of the real stacks/ program under puente.pulumikit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stacks_helpers import DELETE, POLICY_PACK, run_stack

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


# A cloud-only stack (no on-prem site behind a PRIMARY failover record): the only kind RDS is valid for.
CLOUD_ONLY = {
    "puente:dns.onpremGatewayAddress": DELETE,
    "puente:database.mode": "rds",
    "puente:database.patroni": DELETE,
    "puente:database.instanceClass": "db.t4g.micro",
}


@pytest.fixture(scope="session")
def cloud_only() -> Recording:
    """dev as a cloud-only stack with RDS."""
    return run_stack("dev", CLOUD_ONLY)


STACK_FIXTURES = {"dev": "dev", "prod": "prod", "prod-euc1": "geo", "cloud-only": "cloud_only"}


@pytest.fixture(scope="session", params=list(STACK_FIXTURES))
def any_stack(request: pytest.FixtureRequest) -> Recording:
    return request.getfixturevalue(STACK_FIXTURES[request.param])


@pytest.fixture(scope="session")
def policy_pack() -> Iterator[PolicyPackServer]:
    with PolicyPackServer(POLICY_PACK, project="puente", stack="test") as pack:
        yield pack
