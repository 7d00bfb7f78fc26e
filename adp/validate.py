"""Checks an ADP file: the JSON Schema, then what a schema cannot say.

    from ember.adp.validate import validate_file
    report = validate_file("adp.jsonl")                 # FileReport with per-record issues
    report = validate_file("adp.jsonl", strict=True)    # + ADP's own data model's rules

Errors make a record invalid; warnings are reported but do not. With ``strict``, records
are also checked against ``schemas/adp-v1-strict.schema.json``, the rules ADP's upstream
data model enforces when it loads a file (kind ``upstream``), and a repeated id is an
error. Semantic checks:

- ``empty-trajectory`` (error): no events.
- ``duplicate-id`` (warning; error with ``strict``): the same trajectory id twice in one
  file. Published ADP samples repeat ids; ember's own output never does.
- ``tool-call-unanswered`` / ``tool-call-answered-twice`` (error): an action's
  ``tool_call_id`` must be answered by exactly one observation.
- ``tool-result-orphan`` (error): a tool result without a call before it: an observation
  that names a ``tool_call_id`` no earlier action made, or one from the environment that
  names a tool (``name``) with no api/code action before it (a call the converter did
  not read).
- ``duplicate-tool-call-id`` (error): two actions share a ``tool_call_id``.
- ``action-without-observation`` (error): an api/code action followed directly by
  another api/code action, so the first one's result is missing.
- ``trailing-action`` (warning): the trajectory ends on an api/code action (common in
  single-step web data, where the next page is not recorded).
- ``final-not-last`` (warning): events follow a message marked ``final``.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ember.adp.config import opt
from ember.adp.io import InputError, iter_units
from ember.adp.summary import Summary
from ember.schemas import load_schema

TOOL_ACTIONS = ("api_action", "code_action")
OBSERVATIONS = ("text_observation", "image_observation", "web_observation")


@dataclass
class Issue:
    line: int | None
    id: str | None
    kind: str
    message: str
    severity: str = "error"

    def to_dict(self) -> dict:
        return {"line": self.line, "id": self.id, "kind": self.kind,
                "severity": self.severity, "message": self.message}


@dataclass
class FileReport:
    path: str
    records: int = 0
    invalid: int = 0
    issues: list[Issue] = field(default_factory=list)
    error: str | None = None  # the file itself could not be read

    @property
    def counts(self) -> collections.Counter:
        return collections.Counter((i.severity, i.kind) for i in self.issues)

    def to_dict(self) -> dict:
        return {"path": self.path, "records": self.records, "valid": self.records - self.invalid,
                "invalid": self.invalid, "error": self.error,
                "issues": [i.to_dict() for i in self.issues]}


_validators: dict = {}


def schema_validator(name: str = "adp"):
    """The jsonschema validator of ``schemas/<name>.schema.json`` (``adp``, ``adp-v1-strict``)."""
    if name not in _validators:
        import jsonschema  # loaded when validating, not with `ember --help`

        _validators[name] = jsonschema.Draft202012Validator(load_schema(name))
    return _validators[name]


def upstream_problems(traj: dict) -> list[str]:
    """Why ADP's own data model would not load ``traj`` (empty when it would)."""
    return [f"{'/'.join(map(str, err.absolute_path)) or '<record>'}: {err.message[:300]}"
            for err in schema_validator("adp-v1-strict").iter_errors(traj)]


def check_trajectory(traj: dict, strict: bool = False) -> list[tuple[str, str, str]]:
    """(kind, message, severity) for everything wrong with one parsed record; ``strict``
    adds ADP's upstream rules (kind ``upstream``)."""
    found = []
    for err in schema_validator().iter_errors(traj):
        where = "/".join(map(str, err.absolute_path)) or "<record>"
        found.append(("schema", f"{where}: {err.message[:300]}", "error"))
    if found:  # semantic checks assume the structure is right
        return found
    if strict:
        found += [("upstream", message, "error") for message in upstream_problems(traj)]
    events = traj["content"]
    if not events:
        return found + [("empty-trajectory", "no events", "error")]
    calls: dict[str, int] = {}
    answered: collections.Counter = collections.Counter()
    last_act = None  # class of the latest event that is not an observation
    for i, event in enumerate(events):
        cls = event["class_"]
        call_id = event.get("tool_call_id")
        if cls in OBSERVATIONS and call_id is None and event.get("name") and \
                event.get("source") == "environment" and last_act not in TOOL_ACTIONS:
            found.append(("tool-result-orphan",
                          f"event {i} is the output of tool {event['name']!r}, but no call "
                          "comes before it", "error"))
        if cls not in OBSERVATIONS:
            last_act = cls
        if cls in TOOL_ACTIONS and call_id is not None:
            if call_id in calls:
                found.append(("duplicate-tool-call-id",
                              f"events {calls[call_id]} and {i} share tool_call_id {call_id!r}",
                              "error"))
            calls[call_id] = i
        elif cls in OBSERVATIONS and call_id is not None:
            if call_id not in calls:
                found.append(("tool-result-orphan",
                              f"event {i} answers tool_call_id {call_id!r}, which no earlier "
                              "action made", "error"))
            answered[call_id] += 1
        if cls in TOOL_ACTIONS and i + 1 < len(events) and events[i + 1]["class_"] in TOOL_ACTIONS:
            found.append(("action-without-observation",
                          f"event {i} ({cls}) is followed by another action, not its result",
                          "error"))
        if event.get("final") and i + 1 < len(events):
            found.append(("final-not-last", f"event {i} is final but {len(events) - i - 1} "
                          "events follow it", "warning"))
    for call_id, i in calls.items():
        if answered[call_id] == 0 and i + 1 < len(events):
            found.append(("tool-call-unanswered",
                          f"event {i}'s tool_call_id {call_id!r} has no observation", "error"))
        if answered[call_id] > 1:
            found.append(("tool-call-answered-twice",
                          f"tool_call_id {call_id!r} is answered {answered[call_id]} times",
                          "error"))
    if events[-1]["class_"] in TOOL_ACTIONS:
        found.append(("trailing-action", "the trajectory ends on an action without its result",
                      "warning"))
    return found


def validate_file(path: str | Path, strict: bool = False) -> FileReport:
    """Check every record of ``path``; ``strict`` adds ADP's upstream rules and makes a
    repeated id an error."""
    report = FileReport(str(path))
    seen: set[str] = set()
    try:
        for line, payload in iter_units(path):
            report.records += 1
            try:
                traj = orjson.loads(payload) if isinstance(payload, bytes) else payload
            except orjson.JSONDecodeError as exc:
                report.invalid += 1
                report.issues.append(Issue(line, None, "invalid-json", str(exc)))
                continue
            if not isinstance(traj, dict):
                report.invalid += 1
                report.issues.append(Issue(line, None, "schema", "record is not a JSON object"))
                continue
            tid = traj.get("id") if isinstance(traj.get("id"), str) else None
            problems = check_trajectory(traj, strict)
            if tid is not None:
                if tid in seen:
                    problems.append(("duplicate-id", f"id {tid!r} appears earlier in the file",
                                     "error" if strict else "warning"))
                seen.add(tid)
            for kind, message, severity in problems:
                report.issues.append(Issue(line, tid, kind, message, severity))
            if any(sev == "error" for _, _, sev in problems):
                report.invalid += 1
    except (InputError, OSError) as exc:
        report.error = str(exc)
    return report


@dataclass
class ValidateConfig:
    """`ember validate`: schema and semantic checks of ADP files."""

    files: list[str] = opt([], "ADP files (JSONL, JSON array, Parquet; gzip/zstd ok).",
                           argument=True, metavar="FILE...")
    max_error_rate: float = opt(0.0, "Exit 1 when more than this fraction of records is "
                                     "invalid (default: any).", min=0.0, max=1.0)
    show: int = opt(10, "Issues to print per file.", min=0)
    strict: bool = opt(False, "Also check what ADP's own data model requires to load a file "
                              "(schemas/adp-v1-strict.schema.json: required keys present, "
                              "details as strings, known code languages), and make a "
                              "repeated id an error.")


def run(cfg: ValidateConfig) -> Summary:
    """Validate every file; exit code 1 past ``max_error_rate`` or for an unreadable file."""
    if not cfg.files:
        raise ValueError("no FILE given (try `ember validate --help`)")
    start = time.perf_counter()
    reports = [validate_file(f, cfg.strict) for f in cfg.files]
    records = sum(r.records for r in reports)
    invalid = sum(r.invalid for r in reports)
    kinds = collections.Counter()
    for r in reports:
        for (severity, kind), n in r.counts.items():
            if severity == "error":
                kinds[kind] += n
    rate = invalid / records if records else 0.0
    summary = Summary("validate", read=records, produced=records - invalid, rejected=invalid,
                      rejected_by_reason=dict(kinds.most_common()),
                      seconds=time.perf_counter() - start,
                      details={"files": [r.to_dict() for r in reports], "show": cfg.show,
                               "strict": cfg.strict, "ok": True})
    if any(r.error for r in reports):
        summary.exit_code, summary.error = 1, "some files could not be read"
    elif rate > cfg.max_error_rate:
        summary.exit_code, summary.error = 1, (f"{invalid} of {records} records invalid "
                                               f"({rate:.2%} > --max-error-rate "
                                               f"{cfg.max_error_rate:.2%})")
    summary.details["ok"] = summary.exit_code == 0
    return summary
