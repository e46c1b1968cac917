"""Ansible's linear strategy run over Mitogen (the `mitogen` package, pinned in constraints.txt).

Mitogen keeps one Python interpreter per node for the whole run and ships module code to it once,
instead of Ansible's default of a fresh interpreter unpacking a zipped module for every task. The
playbooks behave exactly as under `linear`; only the transport changes. This file puts the strategy
next to the project's other plugins, so ansible.cfg needs no path into a virtualenv.

Select it with `strategy = mitogen_linear` (ansible.cfg) or ANSIBLE_STRATEGY=mitogen_linear; set
ANSIBLE_STRATEGY=linear to run without it.

One correction to Mitogen 0.3.54: for every task that runs a collection's module (ansible.posix,
community.*), each forked task worker listed every installed collection again, reading each one's
metadata (the `ansible` package installs about a hundred): about a fifth of the workers' CPU in a no-op
run (py-spy, bench/site_noop.py). The list cannot change during a run, so it is made once, here, before
the first worker is forked, and every worker inherits it.

The same holds for Ansible's own Jinja filters and tests: the first template a task worker compiles
that names a filter makes it load every filter and test plugin of the run (ansible-core's, the roles'
filter_plugins, the project's), wrap each one, and forget them all when it exits, so each of the run's
~1,200 workers did it again. Loading them in the controller's process at the start of each play (after
its roles have added their plugin folders) lets the workers inherit them: a fifth less controller CPU for a
no-op run of common.yml (17.8-18.3 s against 22.0-22.6 s back to back), and site.yml from 102.6 s to
80.5-80.9 s (bench/site_noop.py; docs/LAB.md).
"""

from __future__ import annotations

import functools
from typing import Any

import ansible.collections.list
import ansible_mitogen.loaders
import ansible_mitogen.planner
import ansible_mitogen.strategy
from ansible.plugins.loader import filter_loader, test_loader

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


@functools.cache
def _collection_dirs() -> tuple[str, ...]:
    """The installed collections' folders, listed once per run (Mitogen lists them once per task)."""
    return tuple(path.decode("utf-8") for path in ansible.collections.list.list_collection_dirs())


def _load_collections(invocation: Any) -> None:
    """ansible_mitogen.planner._load_collections, reading the list made once per run."""
    invocation._extra_sys_paths.update(_collection_dirs())


ansible_mitogen.planner._load_collections = _load_collections


def _load_jinja_plugins() -> None:
    """Load and wrap every Jinja filter and test plugin of the run, as a worker's first template would."""
    for loader in (filter_loader, test_loader):
        next(loader.all(), None)  # a generator: every plugin is loaded before it yields the first


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):  # type: ignore[misc,valid-type]
    """The linear strategy, connecting through Mitogen."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _collection_dirs()  # in the controller's process, before any task worker is forked

    def run(self, iterator: Any, play_context: Any) -> Any:
        _load_jinja_plugins()  # in the controller's process, before this play's task workers are forked
        return super().run(iterator, play_context)
