"""Puente's cloud site (see docs/CLOUD.md). Config is validated before anything is declared."""

from puente_cloud import config, failover, program

settings = config.load()
policy = failover.load()
program.export_all(program.build(settings, policy))
