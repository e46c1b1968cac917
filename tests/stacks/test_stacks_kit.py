"""The kit's own tests: each hole of the stock mock runtime is shown closed by a failing run."""

from __future__ import annotations

import contextlib

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

from puente import pulumikit
from puente.pulumikit import (
    DuplicateResourceError,
    ExpectationNeverRanError,
    KitError,
    Recording,
    UnansweredInvokeError,
    UnresolvedOutputError,
)


def _run(program, preview: bool = False, recording: Recording | None = None) -> Recording:
    return pulumikit.run(
        program,
        project="kit",
        stack="test",
        config={"aws:region": "eu-west-1"},
        preview=preview,
        recording=recording,
    )


def test_duplicate_urn_fails_the_run() -> None:
    def program() -> None:
        aws.sqs.Queue("same")
        aws.sqs.Queue("same")

    with pytest.raises(DuplicateResourceError, match=r"Stack\$aws:sqs/queue:Queue::same "):
        _run(program)


def test_unprefixed_child_names_collide_when_a_component_is_used_twice() -> None:
    """A URN holds the parent's type, not its name: children must derive their names from the parent's."""

    class Box(pulumi.ComponentResource):
        def __init__(self, name: str, child: str) -> None:
            super().__init__("kit:test:Box", name)
            aws.sqs.Queue(child, opts=pulumi.ResourceOptions(parent=self))

    with pytest.raises(DuplicateResourceError, match=r"Box\$aws:sqs/queue:Queue::q "):
        _run(lambda: (Box("a", "q"), Box("b", "q")))
    recording = _run(lambda: (Box("a", "a-q"), Box("b", "b-q")))
    assert len(recording.of_type("aws:sqs/queue:Queue")) == 2


def test_unanswered_invoke_fails_even_when_the_program_swallows_it() -> None:
    def program() -> None:
        # The point: a program that hides the failure.
        with contextlib.suppress(Exception):
            aws.ec2.get_vpc(default=True)

    with pytest.raises(UnansweredInvokeError, match="aws:ec2/getVpc:getVpc"):
        _run(program)


def test_answered_invoke_is_recorded() -> None:
    def program() -> None:
        doc = aws.iam.get_policy_document(statements=[{"actions": ["sqs:SendMessage"], "resources": ["*"]}])
        pulumi.export("doc", doc.json)

    recording = _run(program)
    assert [i.token for i in recording.invokes] == ["aws:iam/getPolicyDocument:getPolicyDocument"]
    assert '"Action": [\n        "sqs:SendMessage"' in recording.outputs["doc"]


def test_outputs_resolve_to_plain_values_and_keep_secrecy() -> None:
    def program() -> None:
        queue = aws.sqs.Queue("q", name="q.fifo", fifo_queue=True)
        pulumi.export("url", queue.url)
        pulumi.export("token", pulumi.Output.secret("s3cr3t"))

    recording = _run(program)
    assert recording.outputs["url"] == "https://sqs.eu-west-1.amazonaws.com/123456789012/q.fifo"
    assert recording.outputs["token"] == "s3cr3t"
    assert recording.secret_outputs == {"token"}


def test_preview_leaves_outputs_unknown_and_the_kit_refuses_them() -> None:
    def program() -> None:
        pulumi.export("url", aws.sqs.Queue("q").url)

    with pytest.raises(UnresolvedOutputError, match="'url' is unknown"):
        _run(program, preview=True)


def test_a_property_the_mocks_do_not_return_is_caught() -> None:
    def program() -> None:
        # The mocks synthesize no IPv6 block: under stock mocks this silently exports None.
        pulumi.export("ipv6", aws.ec2.Vpc("v", cidr_block="10.0.0.0/16").ipv6_cidr_block)

    with pytest.raises(UnresolvedOutputError, match="'ipv6' contains None"):
        _run(program)


def test_an_expectation_that_never_runs_fails() -> None:
    """The classic trap: an assertion inside apply() under preview never runs, and the test passes."""

    def program() -> None:
        queue = aws.sqs.Queue("q", fifo_queue=True)
        # A computed output: unknown during preview, so the check is skipped without a word.
        pulumikit.expect(queue.url, lambda url: None, "queue URL is set")

    with pytest.raises(ExpectationNeverRanError, match="queue URL is set"):
        _run(program, preview=True)


def test_an_expectation_runs_and_can_fail() -> None:
    def failing(fifo: object) -> None:
        assert fifo is False, "not FIFO"

    def program() -> None:
        pulumikit.expect(aws.sqs.Queue("q", fifo_queue=True).fifo_queue, failing, "queue is not FIFO")

    with pytest.raises(AssertionError, match="queue is not FIFO"):
        _run(program)
    passed: list[object] = []
    _run(lambda: pulumikit.expect(aws.sqs.Queue("q", fifo_queue=True).fifo_queue, passed.append, "ran"))
    assert passed == [True]


def test_recording_captures_parent_provider_dependencies_and_inputs() -> None:
    class Box(pulumi.ComponentResource):
        def __init__(self, name: str) -> None:
            super().__init__("kit:test:Box", name)
            self.provider = k8s.Provider(
                f"{name}-k8s", kubeconfig="{}", opts=pulumi.ResourceOptions(parent=self)
            )
            ns = k8s.core.v1.Namespace(
                f"{name}-ns",
                metadata={"name": "n"},
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
            )
            k8s.core.v1.ConfigMap(
                f"{name}-cm",
                metadata={"name": "c", "namespace": ns.metadata["name"]},
                data={"PORT": "8080"},
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=[ns]),
            )
            self.register_outputs({"namespace": ns.metadata["name"]})

    recording = _run(lambda: Box("box"))
    box = recording.one("kit:test:Box")
    cm = recording.one("kubernetes:core/v1:ConfigMap")
    ns = recording.one("kubernetes:core/v1:Namespace")
    assert cm.parent == box.urn
    assert cm.provider_urn == recording.one("pulumi:providers:kubernetes").urn
    assert ns.urn in cm.dependencies
    assert cm.inputs["data"] == {"PORT": "8080"}
    assert cm.inputs["kind"] == "ConfigMap"
    assert recording.component_outputs[box.urn] == {"namespace": "n"}


def test_nothing_is_recorded_when_the_program_fails_first() -> None:
    recording = Recording(project="kit", stack="test")

    def program() -> None:
        raise ValueError("bad config")

    with pytest.raises(ValueError, match="bad config"):
        _run(program, recording=recording)
    assert recording.resources == []


def test_kubernetes_validation_is_strict() -> None:
    def program() -> None:
        k8s.apps.v1.Deployment(
            "d",
            metadata={"name": "d"},
            spec={
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "c",
                                "image": "i",
                                "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                                "livenesProbe": {},
                            }
                        ]
                    },
                },
            },
        )

    recording = _run(program)
    with pytest.raises(KitError, match="livenesProbe"):
        pulumikit.validate_kubernetes(recording, "1.31")


def test_nested_input_keys_are_checked_against_the_sdk() -> None:
    """TypedDict keys are never checked by Python nor by the mocks; a real preview would reject them."""

    def program() -> None:
        lb = aws.lb.LoadBalancer("lb", access_logs={"bucket": "b", "enabled": True})
        aws.lb.Listener(
            "http",
            load_balancer_arn=lb.arn,
            port=80,
            default_actions=[{"type": "redirect", "redirect": {"protocol": "HTTPS", "status": "HTTP_301"}}],
        )

    recording = _run(program)
    with pytest.raises(
        KitError,
        match=r"defaultActions\[0\]\.redirect\.status: not an argument of "
        r"ListenerDefaultActionRedirectArgs",
    ):
        pulumikit.check_aws_input_shapes(recording)
    recording = _run(lambda: aws.lb.LoadBalancer("lb", access_logs={"bucket": "b", "enabled": True}))
    assert pulumikit.check_aws_input_shapes(recording) == 1


def test_stack_config_loading_keeps_structure_and_leaves_out_ciphertext(tmp_path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: demo\nruntime: python\n")
    (tmp_path / "Pulumi.test.yaml").write_text(
        "config:\n  aws:region: eu-west-1\n  demo:network:\n    cidr: 10.0.0.0/16\n"
        "  plain: 3\n  demo:password:\n    secure: v1:abc:def\n"
    )
    project, config = pulumikit.load_stack_config(tmp_path, "test")
    assert project == "demo"
    assert config == {"aws:region": "eu-west-1", "demo:network": {"cidr": "10.0.0.0/16"}, "demo:plain": 3}

    def program() -> None:
        cfg = pulumi.Config()
        pulumi.export("cidr", cfg.require_object("network")["cidr"])
        pulumi.export("plain", cfg.require_int("plain"))
        pulumi.export("password", cfg.require_secret("password"))

    recording = pulumikit.run(
        program, project=project, stack="test", config=config, secrets={"demo:password": "hunter2-hunter2"}
    )
    assert recording.outputs == {"cidr": "10.0.0.0/16", "plain": 3, "password": "hunter2-hunter2"}
    assert recording.secret_outputs == {"password"}
