"""Rule 4: etcd keeps its quorum when any one site is lost."""

from __future__ import annotations

from pathlib import Path

import pytest
from check_helpers import copy_lab, edit_yaml, run_check

from puente.check.rules.etcd import quorum


def test_a_site_holding_the_etcd_majority_is_refused(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    assert run_check("-i", lab).returncode == 0
    more = {"onprem-db2": None, "onprem-mq1": None}
    edit_yaml(lab / "hosts.yml", lambda d: d["all"]["children"]["etcd"]["hosts"].update(more))
    proc = run_check("-i", lab)
    assert proc.returncode == 2, proc.stdout
    assert "[etcd-quorum] group etcd" in proc.stdout
    assert (
        "losing site onprem leaves 2 of 5 etcd members, below the quorum of 3 "
        "(members per site: cloud 1, onprem 3, witness 1)"
    ) in proc.stdout
    assert "losing site cloud" not in proc.stdout


def test_two_members_lose_quorum_with_either_site(tmp_path: Path) -> None:
    lab = copy_lab(tmp_path)
    edit_yaml(lab / "hosts.yml", lambda d: d["all"]["children"]["etcd"]["hosts"].pop("witness1"))
    proc = run_check("-i", lab)
    assert proc.returncode == 2
    assert "losing site onprem leaves 1 of 2 etcd members, below the quorum of 2" in proc.stdout
    assert "losing site cloud leaves 1 of 2 etcd members, below the quorum of 2" in proc.stdout


@pytest.mark.parametrize(("members", "expected"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_quorum(members: int, expected: int) -> None:
    assert quorum(members) == expected
