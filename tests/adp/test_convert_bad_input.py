"""Bad input never stops `ember convert`, is never silently dropped, and is explained.

Each test feeds real broken files through the CLI as a user would and checks the
rejects file (source, line, reason), the summary, the exit code and the output.
"""

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import FIXTURES

STD = FIXTURES / "adp" / "agenttuning_os" / "sample_std.json"


def good_lines(n=3):
    records = json.loads(STD.read_text())
    return [json.dumps(records[i % len(records)] | {"id": f"r{i}"}) for i in range(n)]


def convert(ember, *args, check=False):
    proc = ember("convert", *args, "--json", check=check)
    summary = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc, summary


def rejects_of(path):
    return [json.loads(l) for l in open(path)]


def test_each_kind_of_bad_record_is_rejected_with_a_reason(ember, tmp_path):
    good = good_lines(3)
    lines = [
        good[0].encode(),
        good[1][: len(good[1]) // 2].encode(),                       # 2: truncated line
        b'"just a string"',                                            # 3: not an object
        json.dumps({"id": "x", "content": "not a list"}).encode(),     # 4: wrong type
        json.dumps({"content": []}).encode(),                          # 5: missing id
        b'{"id": "bad-utf8", "content": [], "x": "\xff\xfe"}',         # 6: invalid UTF-8
        good[2].encode(),
    ]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    proc, summary = convert(ember, src, "-o", out, "--max-reject-rate", "1")
    assert proc.returncode == 0, proc.stderr
    assert summary["read"] == 7 and summary["converted"] == 2 and summary["rejected"] == 5
    assert summary["rejected_by_reason"] == {"invalid-json": 1, "not-an-object": 1, "wrong-type": 1,
                                  "missing-field": 1, "invalid-utf8": 1}
    assert [json.loads(l)["id"] for l in open(out)] == ["r0", "r2"]
    rejects = rejects_of(tmp_path / "out.rejects.jsonl")
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (2, "invalid-json"), (3, "not-an-object"), (4, "wrong-type"), (5, "missing-field"),
        (6, "invalid-utf8")]
    assert all(r["source"] == str(src) and r["detail"] for r in rejects)
    # Nothing is lost: the rejected bytes are kept (base64 where they are not UTF-8).
    assert rejects[0]["raw"] == lines[1].decode()
    import base64
    assert base64.b64decode(rejects[4]["raw_base64"]) == lines[5]


def test_reject_rate_above_limit_exits_nonzero_but_writes_everything(ember, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(good_lines(3) + ["{broken"]) + "\n")
    out = tmp_path / "out.jsonl"
    proc, summary = convert(ember, src, "-o", out, "--rejects", tmp_path / "rej.jsonl")
    assert proc.returncode == 3
    assert "exceeds --max-reject-rate" in proc.stderr
    assert summary["reject_rate"] == pytest.approx(0.25)
    assert len(open(out).readlines()) == 3
    assert len(rejects_of(tmp_path / "rej.jsonl")) == 1
    proc, _ = convert(ember, src, "-o", out, "--max-reject-rate", "0.3")
    assert proc.returncode == 0


def test_empty_file_gives_empty_output_and_a_warning(ember, tmp_path):
    src = tmp_path / "empty.jsonl"
    src.write_bytes(b"")
    out = tmp_path / "out.jsonl"
    proc, summary = convert(ember, src, "-o", out)
    assert proc.returncode == 0
    assert summary["read"] == 0
    assert out.exists() and out.read_bytes() == b""
    assert "no records" in proc.stderr


def test_directory_or_missing_input_is_reported_and_others_still_convert(ember, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(good_lines(2)) + "\n")
    out = tmp_path / "out.jsonl"
    proc, summary = convert(ember, tmp_path, src, tmp_path / "missing.jsonl", "-o", out)
    assert proc.returncode == 3
    assert summary["converted"] == 2
    errors = {e["source"]: e["error"] for e in summary["input_errors"]}
    assert "is a directory" in errors[str(tmp_path)]
    assert "no such file" in errors[str(tmp_path / "missing.jsonl")]
    assert len(open(out).readlines()) == 2


def test_mapping_that_names_a_missing_field(ember, tmp_path):
    mapping = tmp_path / "mine.yaml"
    mapping.write_text("shape: adp\nid: uid\n")
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(good_lines(2)) + "\n")
    proc, summary = convert(ember, src, "--from", mapping, "-o", tmp_path / "o.jsonl")
    assert proc.returncode == 3
    assert summary["rejected_by_reason"] == {"missing-field": 2}
    (first, _) = rejects_of(tmp_path / "o.rejects.jsonl")
    assert "uid" in first["detail"]


def test_bad_mapping_and_bad_from_fail_fast_with_clear_errors(ember, tmp_path):
    mapping = tmp_path / "typo.yaml"
    mapping.write_text("shape: adp\nidd: uid\n")
    src = tmp_path / "in.jsonl"
    src.write_text(good_lines(1)[0] + "\n")
    proc = ember("convert", src, "--from", mapping, "-o", tmp_path / "o.jsonl", check=False)
    assert proc.returncode == 2
    assert "unknown key(s) idd" in proc.stderr and "accepted:" in proc.stderr
    proc = ember("convert", src, "--from", "no_such_dataset", "-o", tmp_path / "o.jsonl",
                 check=False)
    assert proc.returncode == 2 and "not a built-in dataset" in proc.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_50mb_single_record_in_jsonl_and_in_an_array(ember, tmp_path):
    big = json.loads(good_lines(1)[0])
    big["content"][0]["content"] = "x" * (50 * 1024 * 1024)
    line = json.dumps(big)
    (tmp_path / "big.jsonl").write_text(line + "\n" + good_lines(2)[1] + "\n")
    (tmp_path / "big.json").write_text("[" + line + ",\n" + good_lines(2)[1] + "]")
    for name in ("big.jsonl", "big.json"):
        out = tmp_path / (name + ".out")
        proc, summary = convert(ember, tmp_path / name, "-o", out)
        assert proc.returncode == 0, proc.stderr
        assert summary["converted"] == 2
        first = json.loads(open(out).readline())
        assert len(first["content"][0]["content"]) == 50 * 1024 * 1024


def test_output_is_byte_identical_for_any_worker_count(ember, tmp_path):
    raw = FIXTURES / "adp" / "openhands" / "sample_std.json"
    records = json.loads(raw.read_text())
    src = tmp_path / "in.jsonl"
    with open(src, "w") as f:
        for i in range(400):
            f.write(json.dumps(records[i % 5] | {"id": f"r{i}"}) + "\n")
            if i % 97 == 0:
                f.write("{oops\n")
    outs = []
    for workers in (1, 3, "auto"):  # auto: the flag takes the word too
        out = tmp_path / f"w{workers}.jsonl"
        proc, summary = convert(ember, src, "-o", out, "--workers", workers,
                                "--max-reject-rate", "1")
        assert summary["converted"] == 400 and summary["rejected"] == 5
        outs.append((out.read_bytes(), (tmp_path / f"w{workers}.rejects.jsonl").read_bytes()))
    assert outs[0] == outs[1] == outs[2]


def test_killed_run_leaves_no_half_output_and_resumes_to_identical_bytes(ember, tmp_path):
    src = tmp_path / "in.jsonl"
    lines = good_lines(5)
    with open(src, "w") as f:
        for i in range(60000):
            f.write(lines[i % 5].replace('"id": "r', f'"id": "{i}-r', 1) + "\n")
            if i % 5000 == 0:
                f.write("{broken\n")
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "ember.cli.main", "convert", str(src), "-o", str(out),
           "--max-reject-rate", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / ".out.jsonl.partial.json"
    deadline = time.time() + 60
    while not state.exists() or json.loads(state.read_text())["units"] < 10000:
        assert time.time() < deadline and proc.poll() is None, "convert never checkpointed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and not (tmp_path / "out.rejects.jsonl").exists()
    done_before = json.loads(state.read_text())["units"]
    assert 0 < done_before < 60012

    proc, summary = convert(ember, src, "-o", out, "--max-reject-rate", "1", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert summary["read"] == 60012 and summary["rejected"] == 12
    assert not state.exists() and not (tmp_path / ".out.jsonl.partial").exists()
    resumed = (out.read_bytes(), (tmp_path / "out.rejects.jsonl").read_bytes())

    proc, straight = convert(ember, src, "-o", tmp_path / "straight.jsonl",
                             "--max-reject-rate", "1")
    assert resumed == ((tmp_path / "straight.jsonl").read_bytes(),
                       (tmp_path / "straight.rejects.jsonl").read_bytes())
    keys = ("read", "converted", "rejected", "rejected_by_reason", "bytes_in")
    assert {k: straight[k] for k in keys} == {k: summary[k] for k in keys}


def _peak_rss_mb(args) -> float:
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
            "stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, check=True)
    return float(proc.stdout)


@pytest.mark.slow
def test_memory_is_flat_in_input_size(tmp_path):
    line = good_lines(1)[0] + "\n"
    sizes = {}
    for label, mb in (("small", 5), ("large", 150)):
        src = tmp_path / f"{label}.jsonl"
        with open(src, "w") as f:
            for _ in range(mb * 1024 * 1024 // len(line)):
                f.write(line)
        args = [sys.executable, "-m", "ember.cli.main", "convert", src, "-o",
                tmp_path / f"{label}.out"]
        sizes[label] = _peak_rss_mb(args)
    # 30x more input may not cost more than a few batches of extra memory.
    assert sizes["large"] - sizes["small"] < 40, sizes
