"""Queue: the SQS FIFO queue the API's outbox relay publishes to, with a dead-letter queue and KMS."""

from __future__ import annotations

import json
from dataclasses import dataclass

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
        common = {
            "fifo_queue": True,
            # The relay may set MessageDeduplicationId (the outbox row id); without one, the body's
            # SHA-256 de-duplicates. Either way SQS drops repeats within its 5-minute window.
            "content_based_deduplication": True,
            "deduplication_scope": "queue",
            "fifo_throughput_limit": "perQueue",
            "kms_master_key_id": self.key.arn,
            "kms_data_key_reuse_period_seconds": 300,
            "receive_wait_time_seconds": 20,
        }
        dlq_name = self.child("dlq")
        self.dead_letter = aws.sqs.Queue(
            dlq_name,
            name=f"{args.base_name}-dlq.fifo",
            message_retention_seconds=cfg.dead_letter_retention_seconds,
            tags=tags(dlq_name),
            opts=self.opts(),
            **common,
        )
        main_name = self.child("events")
        self.queue = aws.sqs.Queue(
            main_name,
            name=f"{args.base_name}.fifo",
            visibility_timeout_seconds=cfg.visibility_timeout_seconds,
            message_retention_seconds=cfg.message_retention_seconds,
            redrive_policy=self.dead_letter.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": cfg.max_receive_count})
            ),
            tags=tags(main_name),
            opts=self.opts(),
            **common,
        )
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

    def consumer_policy(self) -> pulumi.Output[str]:
        """IAM policy for the API's processes: publish, consume and inspect the queue, use its key."""
        return aws.iam.get_policy_document_output(
            statements=[
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
        ).json
