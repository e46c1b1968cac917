"""Puente: the toolkit for one API served from an on-prem site and a cloud site with failover."""

__version__ = "0.1.0"
