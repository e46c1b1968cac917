"""images/api/rootfs.py: which Debian packages go into the API image (no lab needed)."""

from __future__ import annotations

from types import ModuleType

import pytest
from puente_test_support import load_module

from puente.shell import ROOT


def load() -> ModuleType:
    return load_module(ROOT / "images" / "api" / "rootfs.py", "api_rootfs")


rootfs = load()


def pkg(name: str, depends: str = "", pre: str = "", essential: bool = False) -> dict[str, str]:
    fields = {"Package": name, "Depends": depends, "Pre-Depends": pre}
    if essential:
        fields["Essential"] = "yes"
    return fields


PACKAGES = {
    "python3": pkg("python3", "python3.11 (>= 3.11.2-1~), libpython3-stdlib", pre="python3-minimal"),
    "python3-minimal": pkg("python3-minimal", "dpkg (>= 1.13.20)"),
    "python3.11": pkg("python3.11", "libfoo1:amd64 | libbar1, media-types"),
    "libpython3-stdlib": pkg("libpython3-stdlib", "libc6"),
    "libc6": pkg("libc6", "libgcc-s1"),
    "libgcc-s1": pkg("libgcc-s1"),
    "libbar1": pkg("libbar1"),
    "media-types": pkg("media-types", "debconf (>= 0.5) | debconf-2.0"),
    "debconf": pkg("debconf", "perl-base"),
    "perl-base": pkg("perl-base", essential=True),
    "dpkg": pkg("dpkg", "tar", essential=True),
    "tar": pkg("tar", essential=True),
    "coreutils": pkg("coreutils", essential=True),
}


def test_closure_follows_depends_and_pre_depends_without_essentials_or_debconf() -> None:
    picked = rootfs.closure(["python3"], PACKAGES)
    assert picked == [
        "libbar1",  # the installed alternative of "libfoo1 | libbar1"
        "libc6",
        "libgcc-s1",
        "libpython3-stdlib",
        "media-types",
        "python3",
        "python3-minimal",
        "python3.11",
    ]


def test_closure_refuses_a_package_that_is_not_installed() -> None:
    with pytest.raises(SystemExit, match="libfoo9"):
        rootfs.closure(["python3", "libfoo9"], PACKAGES)


def test_copy_keeps_files_and_links_and_leaves_documentation_out(tmp_path, monkeypatch) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "doc").mkdir(parents=True)
    (src / "lib.so.1.0").write_text("elf")
    (src / "lib.so.1").symlink_to("lib.so.1.0")
    (src / "doc" / "copyright").write_text("text")
    monkeypatch.setattr(rootfs, "SKIP_PREFIXES", (f"{src}/doc/",))
    for name in ("lib.so.1.0", "lib.so.1", "doc/copyright", "doc", "missing"):
        rootfs.copy(f"{src}/{name}", dest)
    copied = dest / str(src).lstrip("/")
    assert sorted(p.name for p in copied.iterdir()) == ["lib.so.1", "lib.so.1.0"]
    assert (copied / "lib.so.1").is_symlink() and (copied / "lib.so.1").read_text() == "elf"
