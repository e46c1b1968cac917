"""Queue: the SQS FIFO queue the API's outbox relay publishes to, with a dead-letter queue and KMS."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from .base import Component, Tags
from .config import QueueConfig
from .security import kms_key


@dataclass(frozen=True)
class QueueArgs:
    config: QueueConfig
    # SQS names are physical and account-wide: derived from project and stack, `.fifo` suffixed.
    base_name: str


class Queue(Component):
    MODULE = "queue"

    def __init__(
        self, name: str, args: QueueArgs, tags: Tags, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(name, tags, opts)
        cfg = args.config
        self.key = kms_key(self, "sqs", "Encryption at rest of the API's event queues")
        dlq_name = self.child("dlq")
        self.dead_letter = aws.sqs.Queue(
            dlq_name,
            self._fifo(f"{args.base_name}-dlq.fifo", dlq_name, cfg.dead_letter_retention_seconds),
            opts=self.opts(),
        )
        main_name = self.child("events")
        main = self._fifo(f"{args.base_name}.fifo", main_name, cfg.message_retention_seconds)
        main.visibility_timeout_seconds = cfg.visibility_timeout_seconds
        main.redrive_policy = self.dead_letter.arn.apply(
            lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": cfg.max_receive_count})
        )
        self.queue = aws.sqs.Queue(main_name, main, opts=self.opts())
        # Only the main queue may use the DLQ (a separate resource: the two queues reference each other).
        aws.sqs.RedriveAllowPolicy(
            dlq_name,
            queue_url=self.dead_letter.url,
            redrive_allow_policy=self.queue.arn.apply(
                lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})
            ),
            opts=self.opts(parent=self.dead_letter),
        )
        self.register_outputs(
            {
                "queueUrl": self.queue.url,
                "queueArn": self.queue.arn,
                "queueName": self.queue.name,
                "deadLetterQueueUrl": self.dead_letter.url,
            }
        )

    def _fifo(self, physical: str, name: str, retention_seconds: int) -> aws.sqs.QueueArgs:
        return aws.sqs.QueueArgs(
            name=physical,
            fifo_queue=True,
            # The relay may set MessageDeduplicationId (the outbox row id); without one, the body's
            # SHA-256 de-duplicates. Either way SQS drops repeats within its 5-minute window.
            content_based_deduplication=True,
            deduplication_scope="queue",
            fifo_throughput_limit="perQueue",
            kms_master_key_id=self.key.arn,
            kms_data_key_reuse_period_seconds=300,
            receive_wait_time_seconds=20,
            message_retention_seconds=retention_seconds,
            tags=self.tags(name),
        )

    def consumer_policy(self) -> pulumi.Output[str]:
        """IAM policy for the API's processes: publish, consume and inspect the queue, use its key."""
        # Plain dicts: the ARNs are Outputs, which the typed *Args classes of invokes do not accept.
        statements: list[Any] = [
            {
                "effect": "Allow",
                "actions": [
                    "sqs:SendMessage",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                ],
                "resources": [self.queue.arn],
            },
            {
                "effect": "Allow",
                "actions": ["kms:GenerateDataKey", "kms:Decrypt"],
                "resources": [self.key.arn],
            },
        ]
        return aws.iam.get_policy_document_output(statements=statements).json
