"""Lay out a minimal root file system for the API image (run inside the build stage, by Debian's python3).

    python3 rootfs.py DEST PACKAGE...

Copies the files of PACKAGE and of every package it depends on (Depends and Pre-Depends, as installed in
this stage) into DEST, without documentation, manuals and translations, and writes DEST's dpkg status with
exactly those packages, so image scanners (ECR's, Trivy) still see which Debian packages are inside.
Essential packages (shell, coreutils, dpkg, ...) and debconf are left out: nothing in the image runs them."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

STATUS = Path("/var/lib/dpkg/status")
INFO = Path("/var/lib/dpkg/info")
SKIP_PACKAGES = {"debconf", "dpkg", "install-info", "perl-base", "libc-bin"}
SKIP_PREFIXES = (
    "/usr/share/doc/",
    "/usr/share/man/",
    "/usr/share/info/",
    "/usr/share/locale/",
    "/usr/share/lintian/",
    "/usr/share/bug/",
)
# Debian's merged /usr: /bin, /lib, /lib64 and /sbin are links into /usr, as in the stage.
MERGED = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}


def read_status() -> dict[str, dict[str, str]]:
    """Installed packages: name -> stanza fields (plus the raw stanza under '')."""
    packages: dict[str, dict[str, str]] = {}
    for stanza in STATUS.read_text().split("\n\n"):
        fields: dict[str, str] = {"": stanza.strip()}
        for m in re.finditer(r"^([A-Za-z-]+): ?(.*(?:\n .*)*)", stanza, re.MULTILINE):
            fields[m[1]] = m[2]
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            packages[fields["Package"]] = fields
    return packages


def closure(roots: list[str], packages: dict[str, dict[str, str]]) -> list[str]:
    """The roots and what they depend on, first installed alternative of each dependency."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in packages:
            raise SystemExit(f"rootfs.py: package {name} is not installed in the build stage")
        seen.add(name)
        fields = packages[name]
        deps = ", ".join(fields.get(k, "") for k in ("Pre-Depends", "Depends"))
        for dep in filter(None, (d.strip() for d in deps.split(","))):
            names = [re.split(r"[\s:(]", alt.strip(), maxsplit=1)[0] for alt in dep.split("|")]
            installed = [n for n in names if n in packages]
            pick = installed[0] if installed else names[0]
            essential = packages.get(pick, {}).get("Essential") == "yes"
            if pick not in SKIP_PACKAGES and not essential:
                todo.append(pick)
    return sorted(seen)


def file_list(name: str, fields: dict[str, str]) -> list[str]:
    arch = fields.get("Architecture", "")
    for candidate in (INFO / f"{name}:{arch}.list", INFO / f"{name}.list"):
        if candidate.exists():
            return candidate.read_text().splitlines()
    raise SystemExit(f"rootfs.py: no file list for {name}")


def copy(path: str, dest: Path) -> None:
    if path.startswith(SKIP_PREFIXES) or not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        return  # directories come with the files in them
    target = dest / path.lstrip("/")
    if path.strip("/") in MERGED or os.path.lexists(target):
        return  # the merged-/usr links are laid out already; a path listed twice is copied once
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target, follow_symlinks=False)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    dest, roots = Path(argv[0]), argv[1:]
    dest.mkdir(parents=True, exist_ok=True)
    for link, target in MERGED.items():
        (dest / target).mkdir(parents=True, exist_ok=True)
        if not (dest / link).is_symlink():
            (dest / link).symlink_to(target)
    packages = read_status()
    picked = closure(roots, packages)
    for name in picked:
        for path in file_list(name, packages[name]):
            copy(path, dest)
    status = dest / STATUS.relative_to("/")
    status.parent.mkdir(parents=True, exist_ok=True)
    status.write_text("\n\n".join(packages[n][""] for n in picked) + "\n")
    print(f"rootfs.py: {len(picked)} packages: {' '.join(picked)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
