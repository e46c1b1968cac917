"""The whole site converged by `puente lab up` (session fixture) changes nothing when applied again."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("lab")]


def _changed_or_failed(recap) -> dict[str, dict[str, int]]:
    return {h: r for h, r in recap.items() if r["changed"] or r["failed"] or r["unreachable"]}


def test_second_run_of_site_changes_nothing(lab, run_playbook) -> None:
    recap = run_playbook("site.yml")
    assert set(lab.nodes) <= set(recap), f"site.yml did not reach every node: {sorted(recap)}"
    assert _changed_or_failed(recap) == {}, recap.output[-6000:]


def test_check_diff_on_converged_site_reports_no_change(lab, run_playbook) -> None:
    recap = run_playbook("site.yml", "--check", "--diff")
    assert set(lab.nodes) <= set(recap), f"site.yml --check did not reach every node: {sorted(recap)}"
    assert _changed_or_failed(recap) == {}, recap.output[-6000:]
