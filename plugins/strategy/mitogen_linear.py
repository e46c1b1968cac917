"""Ansible's linear strategy run over Mitogen (the `mitogen` package, pinned in constraints.txt).

Mitogen keeps one Python interpreter per node for the whole run and ships module code to it once,
instead of Ansible's default of a fresh interpreter unpacking a zipped module for every task. The
playbooks behave exactly as under `linear`; only the transport changes. This file puts the strategy
next to the project's other plugins, so ansible.cfg needs no path into a virtualenv.

Select it with `strategy = mitogen_linear` (ansible.cfg) or ANSIBLE_STRATEGY=mitogen_linear; set
ANSIBLE_STRATEGY=linear to run without it.
"""

import ansible_mitogen.loaders
import ansible_mitogen.strategy

_Linear = ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, _Linear):  # type: ignore[misc,valid-type]
    """The linear strategy, connecting through Mitogen."""
