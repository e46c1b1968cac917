"""Reading what Ansible's ``json`` stdout callback prints (ANSIBLE_STDOUT_CALLBACK=ansible.builtin.json)."""

from __future__ import annotations

import json
from typing import Any


def play_results(stdout: str) -> dict[str, dict[str, Any]]:
    """host -> its result in the first play of an ad-hoc ``ansible`` run.

    Raises ValueError when stdout holds no callback document. Other enabled callbacks (profile_tasks) print
    lines around the document. The linear strategy records the task once with every host; mitogen_linear
    (ansible.cfg's strategy) once per host: the hosts of every task entry are merged.
    """
    start = stdout.find("{")
    if start < 0:
        raise ValueError("no json document in ansible's output")
    document, _ = json.JSONDecoder().raw_decode(stdout[start:])
    try:
        tasks = document["plays"][0]["tasks"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"not a json callback document: {exc!r}") from exc
    return {host: answer for task in tasks for host, answer in task.get("hosts", {}).items()}
