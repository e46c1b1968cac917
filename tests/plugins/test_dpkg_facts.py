"""Module `dpkg_facts` (playbooks/library/dpkg_facts.py): dpkg's installed packages, name -> version.

Its answer on a lab node is compared with ansible.builtin.package_facts' in tests/roles/test_packages.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from puente_test_support import load_module

ROOT = Path(__file__).resolve().parents[2]

# `dpkg-query --show` in the module's format, one line per state dpkg can report (dpkg-query(1)).
OUTPUT = "\n".join(
    [
        "ii \topenssh-server\t1:9.2p1-2+deb12u10",
        "hi \tpostgresql-15\t15.14-0+deb12u1",  # held, installed
        "iW \tman-db\t2.11.2-2",  # installed, triggers awaited
        "it \tlibc-bin\t2.36-9+deb12u13",  # installed, triggers pending
        "rc \tnginx-common\t1.22.1-9",  # removed, configuration files left
        "iU \tetcd-server\t3.4.23-4+b6",  # unpacked, not configured
        "iF \trabbitmq-server\t3.10.8-1.1",  # half-configured
        "iH \tpdns-server\t4.7.3-2",  # half-installed
        "un \tchrony\t",  # known, never installed
        "ii \tlibssl3\t3.0.17-1~deb12u2",
        "ii \tlibssl3\t3.0.17-1~deb12u2",  # a second architecture (Multi-Arch: same version)
        "",
    ]
)


@pytest.fixture(scope="module")
def dpkg_facts() -> ModuleType:
    return load_module(ROOT / "playbooks/library/dpkg_facts.py", "puente_dpkg_facts")


def test_only_fully_installed_packages_are_listed(dpkg_facts: ModuleType) -> None:
    packages = dpkg_facts.parse(OUTPUT)
    assert sorted(packages) == ["libc-bin", "libssl3", "man-db", "openssh-server", "postgresql-15"]
    assert packages["openssh-server"] == "1:9.2p1-2+deb12u10"
    assert packages["libssl3"] == "3.0.17-1~deb12u2"


def test_an_empty_or_odd_answer_lists_nothing(dpkg_facts: ModuleType) -> None:
    assert dpkg_facts.parse("") == {}
    assert dpkg_facts.parse("i\n\t\nii\n") == {}


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs a Debian machine")
def test_the_query_lists_what_dpkg_l_shows_installed(dpkg_facts: ModuleType) -> None:
    proc = subprocess.run(dpkg_facts.QUERY, capture_output=True, text=True, check=True)
    packages = dpkg_facts.parse(proc.stdout)
    wide = {"COLUMNS": "400"}
    listing = subprocess.run(["dpkg", "-l"], capture_output=True, text=True, check=True, env=wide)
    installed = {
        line.split()[1].split(":")[0]: line.split()[2]
        for line in listing.stdout.splitlines()
        if line[:1] in ("u", "i", "h", "r", "p") and line[1:2] in ("i", "W", "t")  # desired, installed
    }
    assert installed and packages == installed
