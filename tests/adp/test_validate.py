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
    # a repeated id is a warning (published ADP samples repeat them) ...
    assert report["read"] == 4 and report["rejected"] == 2 and report["produced"] == 2
    found = {(i["line"], i["kind"], i["severity"]) for i in report["files"][0]["issues"]}
    assert found == {(2, "empty-trajectory", "error"), (3, "duplicate-id", "warning"),
                     (4, "invalid-json", "error")}
    assert ember("validate", f, "--max-error-rate", "0.8", check=False).returncode == 0
    # ... and an error with --strict
    report = json.loads(ember("validate", f, "--json", "--strict", check=False).stdout)
    assert report["rejected"] == 3 and report["rejected_by_reason"]["duplicate-id"] == 1
    proc = ember("validate", tmp_path, check=False)
    assert proc.returncode == 1 and "is a directory" in proc.stderr


def test_every_published_adp_sample_validates(ember):
    files = sorted((FIXTURES / "adp").glob("*/sample_std.json"))
    assert len(files) == 22
    report = json.loads(ember("validate", *files, "--json").stdout)
    assert report["ok"] and report["rejected"] == 0 and report["read"] == 160
    warned = {(f["path"].split("/")[-2], i["kind"]) for f in report["files"]
              for i in f["issues"] if i["severity"] == "warning"}
    assert ("turkingbench", "duplicate-id") in warned  # ADP repeats 3 of its ids


def test_strict_checks_what_adps_own_data_model_requires():
    ok = trajectory("t", [task(), code_action("bash", "ls", tool_call_id="c"),
                          text_observation("x", "environment", tool_call_id="c"),
                          {"class_": "web_observation", "html": None, "url": None,
                           "image_observation": None, "viewport_size": [800, 600]}],
                    {"resolved": True})
    assert check_trajectory(ok, strict=True) == []
    bad = {"id": "b", "details": {"resolved": True},
           "content": [task(), {"class_": "code_action", "language": "brainfrak", "content": "+"},
                       {"class_": "web_observation", "url": "http://x", "viewport_size": [1.5, 2]},
                       {"class_": "image_observation", "content": "a.png", "source": "user",
                        "annotations": [{"text": "OK"}]}]}
    assert kinds(bad) == []  # ember's own schema accepts all of it
    problems = [m for k, m, _ in check_trajectory(bad, strict=True) if k == "upstream"]
    expected = ["details/resolved: True is not of type 'string'",
                "content/1: 'description' is a required property",
                "content/1/language: 'brainfrak' is not one of",
                "content/2: 'html' is a required property",
                "content/2: 'image_observation' is a required property",
                "content/2/viewport_size: [1.5, 2] is not valid",
                "content/3/annotations: [{'text': 'OK'}] is not valid"]
    assert len(problems) == len(expected), problems
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)


def test_a_tool_result_without_a_call_before_it_is_flagged():
    # what a converter leaves when it does not read the call (a legacy function_call)
    orphan = trajectory("o", [task(), message_action("Checking."),
                              text_observation("rain", "environment", name="get_weather")])
    assert kinds(orphan) == ["tool-result-orphan"]
    ((_, message, _),) = [p for p in check_trajectory(orphan) if p[0] == "tool-result-orphan"]
    assert message == "event 2 is the output of tool 'get_weather', but no call comes before it"
    called = trajectory("c", [task(), api_action("get_weather", {}),
                              text_observation("rain", "environment", name="get_weather")])
    assert kinds(called) == []
