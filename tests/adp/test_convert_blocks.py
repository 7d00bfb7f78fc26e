"""The JSONL fast path of `ember convert`: the driver ships blocks of raw lines and the
batch function splits, parses, converts and serializes them. Its output, rejects and
summary must be byte-identical to the record-by-record path, for any block size, with
blank lines, CRLF, broken records, '@index' ids and a resume. Also: the one-regex rule
dispatch (`text.Alternatives`) picks what the rule-by-rule loop picks, on every built-in
mapping's rules. Small inputs, in-process: a few seconds."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
import yaml

from ember.adp import convert as convert_module
from ember.adp.convert import convert, convert_lines, resolve_workers
from ember.adp.mapping import MAPPINGS_DIR
from ember.adp.text import Alternatives

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "adp"


def messy_jsonl(tmp_path: Path, dataset: str, copies: int = 6) -> Path:
    records = json.loads((FIXTURES / dataset / "sample_raw.json").read_text())
    out = []
    for i, record in enumerate(records * copies):
        line = orjson.dumps(record)
        out.append(line + (b"\r\n" if i % 3 == 1 else b"\n"))
        if i % 4 == 0:
            out.append(b"\n  \n\t\r\n")            # blank lines: skipped, but counted
        if i % 5 == 2:
            out.append(b'{"broken\n')               # invalid JSON: a reject
            out.append(b"  " + line + b"\n")        # leading blanks: still a record
        if i % 7 == 3:
            out.append(line[: len(line) // 2] + b"\n")  # truncated: a reject
            out.append(b"[1, 2]\n")                 # not an object
    out.append(orjson.dumps(records[0]))  # a last line without a newline
    path = tmp_path / f"{dataset}.jsonl"
    path.write_bytes(b"".join(out))
    return path


def run(path: Path, out: Path, dataset: str, **kw) -> tuple[bytes, bytes, dict]:
    tally = convert([path], out, source=dataset, **kw)
    summary = tally.to_dict()
    summary.pop("seconds")
    rejects = out.with_name(out.name.replace(".jsonl", ".rejects.jsonl"))
    return out.read_bytes(), rejects.read_bytes(), summary


@pytest.mark.parametrize("dataset", ["agenttuning_os", "synatra", "orca_agentinstruct"])
def test_blocks_match_the_record_path_for_any_block_size(tmp_path, monkeypatch, dataset):
    src = messy_jsonl(tmp_path, dataset)
    monkeypatch.setattr(convert_module, "_jsonl_file", lambda path: False)
    want = run(src, tmp_path / "records.jsonl", dataset)
    monkeypatch.undo()
    assert b'"line":' in want[1] and want[0]  # the input has rejects and output
    for batch_bytes, batch_records in ((1 << 21, 2048), (3000, 2048), (1 << 21, 3), (50, 1)):
        monkeypatch.setattr(convert_module, "BATCH_BYTES", batch_bytes)
        monkeypatch.setattr(convert_module, "BATCH_RECORDS", batch_records)
        got = run(src, tmp_path / f"b{batch_bytes}-{batch_records}.jsonl", dataset)
        assert got == want, (batch_bytes, batch_records)


@pytest.mark.parametrize("compressed", [False, True])
def test_workers_give_the_same_bytes_over_many_batches(tmp_path, monkeypatch, compressed):
    """Many small batches: the pool's workers read their blocks from the file (a range;
    for gzip the bytes) and spool their output to files, this process converts some
    batches itself, and the output is still the one-process bytes, in order."""
    src = messy_jsonl(tmp_path, "agenttuning_os", copies=10)
    if compressed:
        import gzip

        src = src.with_suffix(".jsonl.gz")
        src.write_bytes(gzip.compress(messy_jsonl(tmp_path, "agenttuning_os", 10).read_bytes()))
    want = run(src, tmp_path / "one.jsonl", "agenttuning_os")
    monkeypatch.setattr(convert_module, "BATCH_RECORDS", 7)
    monkeypatch.setattr(convert_module, "SPOOL_BYTES", 0)  # every output through a file
    got = run(src, tmp_path / "three.jsonl", "agenttuning_os", workers=3)
    assert got == want
    assert not list(tmp_path.glob(".ember-spool-*"))  # the workers' files are gone


@pytest.mark.parametrize("dataset", ["nnetnav-wa", "android_in_the_wild"])
def test_step_records_grouped_by_range_match_one_pass_over_the_file(tmp_path, monkeypatch,
                                                                    dataset):
    """`group_by` datasets: each process groups the step records of its own part of the
    file (skipping a group begun before it, completing the last one from after it).
    Output, rejects and summary are the one-pass bytes for any block size and any number
    of workers: blocks far smaller than a line, groups split by broken lines, blank lines,
    and a line longer than the 64 KB looked back from a block's start."""
    src = messy_jsonl(tmp_path, dataset, copies=3)
    record = json.loads((FIXTURES / dataset / "sample_raw.json").read_text())[1]
    record["padding"] = "x" * 300_000
    lines = src.read_bytes().split(b"\n")
    lines[9:9] = [orjson.dumps(record)] * 2  # one group of two long lines, inside another
    src.write_bytes(b"\n".join(lines))
    monkeypatch.setattr(convert_module, "_jsonl_file", lambda path: False)
    want = run(src, tmp_path / "records.jsonl", dataset)
    monkeypatch.undo()
    assert b'"line":' in want[1] and want[0] and want[2]["read"] > want[2]["written"] > 3
    for batch_bytes in (50, 3000, 200_000, 1 << 21):
        monkeypatch.setattr(convert_module, "BATCH_BYTES", batch_bytes)
        for workers in (1, 3):
            got = run(src, tmp_path / f"b{batch_bytes}-{workers}.jsonl", dataset,
                      workers=workers)
            assert got == want, (batch_bytes, workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_resume_inside_a_block_gives_the_same_bytes(tmp_path, monkeypatch, workers):
    src = messy_jsonl(tmp_path, "agenttuning_os", copies=10)
    straight = run(src, tmp_path / "straight.jsonl", "agenttuning_os")
    monkeypatch.setattr(convert_module, "BATCH_RECORDS", 7)
    monkeypatch.setattr(convert_module, "CHECKPOINT_SECONDS", 0.0)  # save after each batch
    out = tmp_path / "out.jsonl"
    batches = []

    def stop(n):
        batches.append(n)
        if len(batches) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert([src], out, source="agenttuning_os", progress=stop)
    monkeypatch.setattr(convert_module, "BATCH_RECORDS", 5)  # resume point inside a block
    resumed = run(src, out, "agenttuning_os", resume=True, workers=workers)
    assert resumed[2].pop("resumed") and not straight[2].pop("resumed")
    assert resumed == straight


def test_convert_lines_is_the_per_record_function():
    records = json.loads((FIXTURES / "agenttuning_os" / "sample_raw.json").read_text())
    lines = [orjson.dumps(r) for r in records] + [b"{nope"]
    outputs, rejects = convert_lines(lines, "agenttuning_os")
    assert len(outputs) == len(records) and len(rejects) == 1
    assert [orjson.loads(o)["id"] for o in outputs] == [r["id"] for r in records]
    assert orjson.loads(rejects[0])["line"] == len(lines)


def test_workers_auto():
    assert resolve_workers(3) == 3 and resolve_workers("2") == 2
    assert resolve_workers("auto", []) == 1  # nothing to read: no pool
    assert 1 <= resolve_workers("auto", ["hf://org/name"]) <= convert_module.AUTO_MAX_WORKERS
    with pytest.raises(ValueError):
        resolve_workers("many")


def _sequential(patterns, text):
    for i, p in enumerate(patterns):
        import re
        m = re.match(p, text)
        if m:
            return i, m.groupdict(), m.group(0)
    return None


def test_one_alternation_picks_what_the_rule_loop_picks():
    probes = ["go to desk 1", "take apple 1 from fridge 2", "put a in/on b", "put a on b",
              "look", "look at bowl 1 under desklamp 1", "inventory", "open drawer 3",
              "bash\n```bash\nls -la\n```", "answer(42)", "finish", "search[red shoes]",
              "click[Buy Now]", "get_relations(Barack Obama)", "count(#0)", "nothing here",
              "Operation\n```sql\nSELECT 1;\n```", ""]
    checked = 0
    for path in sorted(MAPPINGS_DIR.glob("*.yaml")):
        rules = yaml.safe_load(path.read_text()).get("actions")
        if not isinstance(rules, list) or not rules:
            continue
        patterns = [r["match"] for r in rules]
        combined = Alternatives(patterns)
        for text in probes:
            assert combined.match(text) == _sequential(patterns, text), (path.name, text)
            checked += 1
    assert checked
    # a back-reference cannot share one regex: matched rule by rule, the same answer
    fallback = Alternatives([r"(a)\1", "b"])
    assert fallback.regex is None and fallback.match("aa") == (0, {}, "aa")
