"""Puente's cloud site: Pulumi components, one per concern (network, edge, compute, data, queue, dns)."""
