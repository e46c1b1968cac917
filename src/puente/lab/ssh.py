"""The lab's SSH key: made by `lab up`, removed by `lab down`, never committed (.cache/lab/ssh)."""

from __future__ import annotations

from puente.lab import paths
from puente.shell import run


def ensure_key() -> None:
    if paths.SSH_KEY.exists() and paths.SSH_KEY.with_suffix(".pub").exists():
        return
    paths.SSH_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.SSH_KEY.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "puente-lab", "-f", paths.SSH_KEY])


def remove_key() -> None:
    for path in (paths.SSH_KEY, paths.SSH_KEY.with_suffix(".pub")):
        if path.exists():
            print(f"+ rm {path}", flush=True)
            path.unlink()
