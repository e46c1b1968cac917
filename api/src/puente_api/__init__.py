"""Puente's reference API: courier shipments with idempotent writes, a transactional outbox, a
relay to the site's broker (RabbitMQ or SQS FIFO) and a de-duplicating label worker."""

__version__ = "0.1.0"
