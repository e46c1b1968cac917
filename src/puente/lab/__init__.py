"""The lab: both sites' Debian nodes as podman containers booting systemd on one machine.

`puente lab up|down|status|scale` (module :mod:`puente.lab.cli`) reads ``inventories/lab/`` — the single
source of truth for sites, nodes, addresses and groups — and drives podman, ssh and ansible-playbook.
"""
