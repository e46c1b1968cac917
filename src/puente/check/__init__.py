"""``puente check``: refuse a deployment that cannot deliver the promise, before anything changes.

The inventory is read as Ansible reads it (``inventory.load``: ansible-core's InventoryManager and
VariableManager, over the defaults of the roles ``site.yml`` applies), every rule in ``rules/`` looks at
it, and each problem becomes one :class:`~puente.check.findings.Finding` saying what is wrong, where, and
what to do. The same rules run as the first play of ``playbooks/site.yml`` (``playbooks/preflight.yml``).
"""
