"""The rules, one module each (docs/CHECK.md): each takes the :class:`~puente.check.inventory.Deployment`
and returns its findings."""
