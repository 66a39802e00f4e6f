"""cfn-lint over deploy/aws in a subprocess started as collection ends, so it runs beside the
other tests: importing cfn-lint (it loads sympy and every resource schema) and linting take
tens of seconds of one core, which the suite's single pytest process would otherwise wait for.

``python -m tests.unit.deploy.cfn TEMPLATE ASL`` prints, as JSON, the decoded template (with
cfn-lint's decoder: short-form intrinsics such as ``!Ref``) and the problems cfn-lint reports in
the document ``lint_document`` builds: each as its text and line number.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.env import clean_environ

ROOT = Path(__file__).resolve().parents[3]
AWS = ROOT / "deploy" / "aws"
TEMPLATE = AWS / "template.yaml"
ASL = AWS / "transcoder-state-machine.asl.json"
TESTS = Path(__file__).with_name("test_aws.py")  # the tests that read the report
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:transcoder"


def state_machine(definition: dict[str, Any]) -> dict[str, Any]:
    """A plain state machine with an inline Definition, which cfn-lint checks against ASL."""
    return {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "Definition": definition,
            "DefinitionSubstitutions": {"TranscoderFunctionArn": FUNCTION_ARN},
            "RoleArn": "arn:aws:iam::123456789012:role/mpr-states",
        },
    }


def lint_document(template: dict[str, Any], asl: dict[str, Any]) -> tuple[str, int, int]:
    """The template plus two inline state machines, ours and a broken copy that proves the ASL
    check runs: (the JSON text, first and last line of the broken copy)."""
    broken = json.loads(json.dumps(asl))
    broken["States"]["Done"]["Type"] = "Finish"
    checked = json.loads(json.dumps(template))
    checked["Resources"]["AslCheck"] = state_machine(asl)
    checked["Resources"]["BrokenAslCheck"] = state_machine(broken)
    text = json.dumps(checked, indent=1)
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines, 1) if '"BrokenAslCheck"' in line)
    last = first + next(i for i, line in enumerate(lines[first:]) if line.startswith("  }"))
    return text, first, last


@dataclass(frozen=True)
class Report:
    """What the subprocess found: the decoded template, its decode problems, lint matches."""

    template: dict[str, Any]
    decode_problems: list[str]
    matches: list[tuple[str, int]]


class Background:
    """The one cfn-lint subprocess of a session: started early, read once, when needed."""

    process: subprocess.Popen[str] | None = None
    report: Report | None = None

    @classmethod
    def start(cls) -> None:
        if cls.process is None and cls.report is None:
            cls.process = subprocess.Popen(
                [sys.executable, "-m", "tests.unit.deploy.cfn", str(TEMPLATE), str(ASL)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=clean_environ(),
            )

    @classmethod
    def result(cls) -> Report:
        if cls.report is None:
            cls.start()
            assert cls.process is not None
            out, err = cls.process.communicate(timeout=600)
            assert cls.process.returncode == 0, f"cfn-lint subprocess failed:\n{err[-3000:]}"
            found = json.loads(out)
            matches = [(text, line) for text, line in found["matches"]]
            cls.report = Report(found["template"], found["decode_problems"], matches)
            cls.process = None
        return cls.report


def main(template_path: str, asl_path: str) -> None:
    import cfnlint.api

    decoded, problems = cfnlint.api.decode_str(Path(template_path).read_text())
    matches: list[tuple[str, int]] = []
    if decoded is not None and not problems:
        text, _, _ = lint_document(decoded, json.loads(Path(asl_path).read_text()))
        config = cfnlint.api.ManualArgs(regions=["us-east-1"])
        matches = [(str(m), m.linenumber) for m in cfnlint.api.lint(text, config=config)]
    found = {
        "template": decoded,
        "decode_problems": [str(p) for p in problems or ()],
        "matches": matches,
    }
    json.dump(found, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
