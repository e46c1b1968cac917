"""site.yml's first plays run the same rules: a broken inventory stops the run in the preflight, before any
play touches a host. The copies point every host at 127.0.0.1:9 (nothing listens): no lab node is contacted
even if a play went further than it should."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from check_helpers import LAB_VAULT_PASSWORD, REPO, copy_lab, edit_yaml, lab_hosts

FIRST_CHANGING_PLAY = "PLAY [Common base of every node]"


def _unreachable_copy(tmp_path: Path) -> Path:
    lab = copy_lab(tmp_path)
    edit_yaml(
        lab / "hosts.yml",
        lambda d: [v.update(ansible_host="127.0.0.1", ansible_port=9) for v in lab_hosts(d).values()],
    )
    return lab


def _playbook(lab: Path, name: str) -> subprocess.CompletedProcess[str]:
    argv = [
        str(REPO / ".venv" / "bin" / "ansible-playbook"),
        "-i",
        str(lab),
        "--vault-password-file",
        str(lab / LAB_VAULT_PASSWORD),
        f"playbooks/{name}",
    ]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=600)


def test_site_yml_stops_in_the_preflight_before_any_host_is_touched(tmp_path: Path) -> None:
    lab = _unreachable_copy(tmp_path)
    edit_yaml(
        lab / "hosts.yml", lambda d: d["all"]["children"]["postgresql"]["hosts"].update({"onprem-db2": None})
    )
    proc = _playbook(lab, "site.yml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "TASK [Refuse the deployment while puente check finds a problem]" in out
    assert "[sync-standby-same-site] group postgresql, site onprem: 2 synchronous-standby candidates" in out
    assert re.search(r"fatal: \[\S+ -> localhost\]: FAILED!", out), out
    assert FIRST_CHANGING_PLAY not in out
    assert "Preflight - every host runs an OS" not in out  # not even the read-only fact gathering
    recap = out[out.index("PLAY RECAP") :]
    lines = re.findall(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)", recap, re.MULTILINE)
    assert lines, recap
    assert all(changed == "0" and unreachable == "0" for _, _, changed, unreachable in lines), recap


def test_a_good_inventory_passes_the_inventory_play(tmp_path: Path) -> None:
    """The copy of the lab passes play 1; play 2 then tries to gather facts on 127.0.0.1:9 and cannot."""
    proc = _playbook(_unreachable_copy(tmp_path), "preflight.yml")
    out = proc.stdout + proc.stderr
    assert "puente check: no problem found" in out, out
    assert "PLAY [Preflight - every host runs an OS the roles support]" in out
    assert "UNREACHABLE!" in out
