"""deploy/aws: the SAM/CloudFormation template (cfn-lint, offline) and the state machine (ASL)."""

from __future__ import annotations

import importlib.util
import json
import re
import secrets
import string
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from tests.unit.deploy import cfn, support
from tests.unit.deploy.support import DEPLOY, ROOT, build_settings

if importlib.util.find_spec("cfnlint") is None:  # imported by the subprocess (cfn.py) only
    pytest.skip("cfn-lint is a dev dependency", allow_module_level=True)

AWS = DEPLOY / "aws"
TEMPLATE = cfn.TEMPLATE
ASL = cfn.ASL
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
# Errors Lambda itself may answer with before or instead of running the function.
# https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}
# Exceptions the handler raises for a failure worth retrying; Lambda reports the class name.
HANDLER_TRANSIENT_ERRORS = {"TransientError", "CallbackFailed"}
# What Lambda sets in every function's environment (credentials of the execution role).
LAMBDA_RUNTIME_ENV = {
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "ASIA" + "A" * 16,
    "AWS_SECRET_ACCESS_KEY": "x" * 40,
    "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjE" + "x" * 200,
    "AWS_LAMBDA_FUNCTION_NAME": "mpr-lambda-TranscoderFunction",
}


def template() -> dict[str, Any]:
    """The template as cfn-lint decodes it (in the subprocess, tests/unit/deploy/cfn.py)."""
    report = cfn.Background.result()
    assert not report.decode_problems, report.decode_problems
    return report.template


@cache
def asl() -> dict[str, Any]:
    return json.loads(ASL.read_text())


def resources(kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template()["Resources"].items() if r["Type"] == kind}


def the(kind: str) -> dict[str, Any]:
    (resource,) = resources(kind).values()
    return resource["Properties"]


@cache
def lint_report() -> tuple[list[str], list[str]]:
    """cfn-lint (one run: it takes seconds, in a subprocess started as collection ends) over
    the template plus two inline state machines, ours and a broken copy that proves the ASL
    check runs: (problems, problems of the copy)."""
    _, first, last = cfn.lint_document(template(), asl())
    matches = cfn.Background.result().matches
    in_copy = [first <= line <= last for _, line in matches]
    return (
        [text for (text, _), copy in zip(matches, in_copy, strict=True) if not copy],
        [text for (text, _), copy in zip(matches, in_copy, strict=True) if copy],
    )


def test_template_and_state_machine_pass_cfn_lint() -> None:
    problems, _ = lint_report()
    assert problems == []


def test_cfn_lint_finds_a_broken_state_machine() -> None:
    """The check above can fail: a state of an unknown Type is reported."""
    _, problems_of_the_broken_copy = lint_report()
    assert any("'Finish' is not one of" in p for p in problems_of_the_broken_copy)


# ---------------------------------------------------------------- the state machine


def targets(state: dict[str, Any]) -> Iterator[str]:
    """Every state name this state can go to."""
    if "Next" in state:
        yield state["Next"]
    if "Default" in state:
        yield state["Default"]
    for rule in state.get("Choices", ()):
        yield rule["Next"]
    for catcher in state.get("Catch", ()):
        yield catcher["Next"]


def test_every_transition_leads_to_a_state_and_every_state_is_reached() -> None:
    states = asl()["States"]
    assert asl()["StartAt"] in states
    for name, state in states.items():
        for target in targets(state):
            assert target in states, f"{name} goes to unknown state {target}"
        terminal = state["Type"] in {"Succeed", "Fail"} or state.get("End") is True
        assert terminal != ("Next" in state), f"{name}: exactly one of Next and End"
    reached, todo = set(), [asl()["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(targets(states[name]))
    assert reached == set(states), f"unreachable: {set(states) - reached}"


def lambda_tasks() -> dict[str, dict[str, Any]]:
    return {
        name: state
        for name, state in asl()["States"].items()
        if state.get("Resource") == LAMBDA_INVOKE
    }


def retried_errors(state: dict[str, Any]) -> set[str]:
    errors = set()
    for retrier in state.get("Retry", ()):
        assert retrier["MaxAttempts"] >= 2 and retrier["BackoffRate"] > 1, retrier
        errors.update(retrier["ErrorEquals"])
    return errors


def test_the_job_is_retried_on_transient_errors_only() -> None:
    run_job = asl()["States"][asl()["StartAt"]]
    assert run_job["Resource"] == LAMBDA_INVOKE
    retried = retried_errors(run_job)
    assert retried >= LAMBDA_SERVICE_ERRORS | HANDLER_TRANSIENT_ERRORS
    # Lambda.Unknown (out of memory, 15-minute timeout) or a bad input would fail again.
    assert not retried & {"States.ALL", "States.Timeout", "Lambda.Unknown"}


def test_the_retried_errors_are_exceptions_the_transcoder_raises() -> None:
    sources = "\n".join(p.read_text() for p in (ROOT / "services/transcoder").rglob("*.py"))
    for name in HANDLER_TRANSIENT_ERRORS:
        assert re.search(rf"^class {name}\(", sources, re.M), f"no exception class {name}"


def test_any_other_failure_invokes_the_handler_again_with_the_error() -> None:
    states = asl()["States"]
    run_job = states[asl()["StartAt"]]
    (catcher,) = run_job["Catch"]
    assert catcher["ErrorEquals"] == ["States.ALL"]
    # The handler reads event["error"] ({"Error", "Cause"}) and posts JobFailed.
    assert catcher["ResultPath"] == "$.error"
    report = states[catcher["Next"]]
    assert report["Resource"] == LAMBDA_INVOKE
    assert report["Parameters"] == run_job["Parameters"]
    assert report["Parameters"]["Payload.$"] == "$"
    assert retried_errors(report) == {"States.ALL"}
    assert states[report["Next"]]["Type"] == "Fail", "the execution must end FAILED"


def test_lambda_tasks_fit_the_functions_timeout() -> None:
    function = the("AWS::Serverless::Function")
    for name, state in lambda_tasks().items():
        assert state["TimeoutSeconds"] <= function["Timeout"] <= 900, name


# ---------------------------------------------------------------- the template


def test_state_machine_definition_and_substitutions_match_the_asl_file() -> None:
    machine = the("AWS::Serverless::StateMachine")
    assert (AWS / machine["DefinitionUri"]).resolve() == ASL.resolve()
    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    assert placeholders == set(machine["DefinitionSubstitutions"])
    assert machine["DefinitionSubstitutions"]["TranscoderFunctionArn"] == {
        "Fn::GetAtt": ["TranscoderFunction", "Arn"]
    }
    assert machine["Type"] == "STANDARD"  # exactly-once execution names


def test_the_function_runs_the_lambda_image_with_settings_the_transcoder_accepts(
    monkeypatch,
) -> None:
    function = the("AWS::Serverless::Function")
    assert function["PackageType"] == "Image"
    assert function["ImageUri"] == {"Ref": "TranscoderImageUri"}
    variables = dict(function["Environment"]["Variables"])
    assert variables.keys() <= support.settings_catalog().aliases("transcoder")
    assert not variables.keys() & LAMBDA_RUNTIME_ENV.keys(), "Lambda reserves these"
    secret = variables.pop("MPR_CALLBACK_SECRET")
    assert secret == {"Fn::Sub": "{{resolve:secretsmanager:${CallbackSecret}:SecretString}}"}
    env = {**LAMBDA_RUNTIME_ENV, "MPR_CALLBACK_SECRET": sample_callback_secret()}
    env.update({k: str(parameter_default(v)) for k, v in variables.items()})
    cls = support.settings_catalog().classes["transcoder"]
    settings = build_settings(cls, env, monkeypatch)
    assert settings.s3_endpoint_url is None, "the Lambda must use real AWS S3"
    assert settings.max_input_bytes * 100 <= 40 * 1024**2 * parameter_default(
        {"Ref": "EphemeralStorageSize"}
    )


def parameter_default(value: Any) -> Any:
    """A literal, or the default of the parameter it refers to (buckets get sample names)."""
    if isinstance(value, dict) and "Ref" in value:
        parameter = template()["Parameters"][value["Ref"]]
        return parameter.get("Default", f"sample-{value['Ref'].lower()}")
    return value


def sample_callback_secret() -> str:
    """A value as Secrets Manager generates it from the template's GenerateSecretString."""
    spec = the("AWS::SecretsManager::Secret")["GenerateSecretString"]
    assert spec["ExcludePunctuation"] is True and not spec.get("IncludeSpace")
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(spec["PasswordLength"]))


def test_the_generated_callback_secret_is_a_standard_webhooks_secret() -> None:
    from standardwebhooks import Webhook

    for _ in range(20):
        Webhook(sample_callback_secret())  # raises on a value that is not base64


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_function_reads_only_the_input_bucket_and_writes_only_the_output_bucket() -> None:
    role = template()["Resources"]["TranscoderFunctionRole"]["Properties"]
    by_bucket: dict[str, set[str]] = {}
    for statement in statements(role):
        assert statement["Effect"] == "Allow"
        for resource in as_list(statement["Resource"]):
            text = json.dumps(resource)
            assert "*" not in text.replace("}/*", "}"), f"wildcard resource {text}"
            bucket = re.search(r"\$\{(\w+BucketName)\}", text)
            key = bucket.group(1) if bucket else "other"
            by_bucket.setdefault(key, set()).update(as_list(statement["Action"]))
    assert by_bucket["InputBucketName"] == {"s3:GetObject", "s3:ListBucket"}
    assert by_bucket["OutputBucketName"] == {
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:ListBucket",
    }
    assert by_bucket["other"] == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_the_state_machine_may_invoke_only_the_transcoder() -> None:
    role = template()["Resources"]["StateMachineRole"]["Properties"]
    for statement in statements(role):
        actions = set(as_list(statement["Action"]))
        if "lambda:InvokeFunction" in actions:
            assert actions == {"lambda:InvokeFunction"}
            assert "TranscoderFunction" in json.dumps(statement["Resource"])
        else:  # log delivery takes no resource ARN (documented in the template)
            assert all(a.startswith("logs:") for a in actions), actions


def test_the_gateway_policy_starts_and_stops_executions_of_this_state_machine_only() -> None:
    policy = the("AWS::IAM::ManagedPolicy")["PolicyDocument"]["Statement"]
    actions = {a: s["Resource"] for s in policy for a in as_list(s["Action"])}
    assert set(actions) == {"states:StartExecution", "states:StopExecution"}
    assert actions["states:StartExecution"] == {"Ref": "TranscoderStateMachine"}
    name = the("AWS::Serverless::StateMachine")["Name"]["Fn::Sub"]
    assert actions["states:StopExecution"]["Fn::Sub"].endswith(f":execution:{name}:*")


def test_every_log_group_has_a_retention() -> None:
    groups = resources("AWS::Logs::LogGroup")
    assert len(groups) == 2
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"], name
    function = the("AWS::Serverless::Function")
    assert function["LoggingConfig"]["LogGroup"]["Ref"] in groups
    machine = the("AWS::Serverless::StateMachine")
    (destination,) = machine["Logging"]["Destinations"]
    log_group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert log_group in groups


def test_outputs_name_what_the_gateway_is_configured_with() -> None:
    outputs = template()["Outputs"]
    assert outputs["StateMachineArn"]["Value"] == {"Ref": "TranscoderStateMachine"}
    assert outputs["CallbackSecretArn"]["Value"] == {"Ref": "CallbackSecret"}
    assert outputs["GatewayExecutionPolicyArn"]["Value"] == {"Ref": "GatewayExecutionPolicy"}
