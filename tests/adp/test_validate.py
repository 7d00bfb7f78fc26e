"""`ember validate`: schema checks, semantic checks, exit codes."""

import json

import pytest

from ember.adp.model import (api_action, code_action, message_action, text_observation,
                             trajectory)
from ember.adp.validate import check_trajectory
from tests.conftest import FIXTURES


def kinds(traj):
    return sorted(k for k, _, sev in check_trajectory(traj) if sev == "error")


def task():
    return text_observation("do it", "user")


def test_a_clean_trajectory_has_no_issues():
    traj = trajectory("t", [task(), code_action("sh", "ls", tool_call_id="c0"),
                            text_observation("a b", "environment", tool_call_id="c0"),
                            message_action("2 files", final=True, answer="2")])
    assert check_trajectory(traj) == []
    assert traj["content"][1]["language"] == "bash"  # alias table


@pytest.mark.parametrize("events, expected", [
    ([], ["empty-trajectory"]),
    ([task(), api_action("f", {}, tool_call_id="c0"), message_action("x")],
     ["tool-call-unanswered"]),
    ([task(), api_action("f", {}, tool_call_id="c0"),
      text_observation("r", "environment", tool_call_id="c0"),
      text_observation("r", "environment", tool_call_id="c0")], ["tool-call-answered-twice"]),
    ([task(), text_observation("r", "environment", tool_call_id="zz")], ["tool-result-orphan"]),
    ([task(), api_action("f", {}), code_action("bash", "ls"),
      text_observation("r", "environment")], ["action-without-observation"]),
    ([task(), api_action("f", {}, tool_call_id="c"), text_observation("r", "environment", tool_call_id="c"),
      api_action("g", {}, tool_call_id="c"), text_observation("r", "environment", tool_call_id="c")],
     ["duplicate-tool-call-id", "tool-call-answered-twice"]),
])
def test_semantic_errors(events, expected):
    assert kinds(trajectory("t", events)) == expected


def test_schema_errors_name_the_path():
    bad = {"id": "t", "content": [{"class_": "code_action", "content": "ls"}]}
    ((kind, message, severity),) = check_trajectory(bad)
    assert kind == "schema" and severity == "error"
    assert "content/0" in message and "language" in message


def test_cli_reports_and_exits(ember, tmp_path):
    good = trajectory("a", [task(), message_action("done", final=True)])
    bad = trajectory("b", [])
    f = tmp_path / "mix.jsonl"
    f.write_text("\n".join(json.dumps(t) for t in (good, bad, good)) + "\n{nope\n")
    proc = ember("validate", f, "--json", check=False)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["read"] == 4 and report["rejected"] == 3 and report["produced"] == 1
    found = {(i["line"], i["kind"]) for i in report["files"][0]["issues"]}
    assert found == {(2, "empty-trajectory"), (3, "duplicate-id"), (4, "invalid-json")}
    assert ember("validate", f, "--max-error-rate", "0.8", check=False).returncode == 0
    proc = ember("validate", tmp_path, check=False)
    assert proc.returncode == 1 and "is a directory" in proc.stderr


def test_every_published_adp_sample_validates(ember):
    files = sorted((FIXTURES / "adp").glob("*/sample_std.json"))
    assert len(files) == 17
    report = json.loads(ember("validate", *files, "--json").stdout)
    assert report["ok"] and report["rejected"] == 0 and report["read"] == 90
