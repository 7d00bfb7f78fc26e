"""Failure without surprises: every expected fault is one `error:` line with its exit code,
no traceback, and a JSON object on stdout with --json; two runs never share an output;
a full disk mid-run loses nothing once space is back.

Exit codes (README, "Exit codes and failures"): 1 failure at run time, 2 bad options or
inputs, 3 partial result, 130 interrupted.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ember.adp.io import output_lock
from tests.llm.test_backends import ok, scripted_server

EVAL = ["eval", "--backend", "openai", "--model", "scripted", "--max-retries", "0",
        "--benchmarks", "mawps", "--max-new-tokens", "16", "--concurrency", "1"]


def spec(tmp_path, text, data='{"question": "What is 1 + 1?", "answer": "2"}\n'):
    (tmp_path / "d.jsonl").write_text(data)
    path = tmp_path / "spec.yaml"
    path.write_text("data: d.jsonl\n" + text)
    return f"custom:{path}"


def one_line_error(proc, code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), proc.stderr[-2000:]
    for word in words:
        assert word in proc.stderr, (word, proc.stderr[-2000:])


FAULTS = [
    # (name, arguments built from tmp_path, exit code, words in the error)
    ("spec-wrong-type", lambda t: ["eval", "--benchmarks", spec(t, "fewshot_n: two\n"),
                                   "--out", t / "o"], 2, ["'fewshot_n' should be int"]),
    ("spec-stop-type", lambda t: ["eval", "--benchmarks", spec(t, "stop: 5\n"), "--out", t / "o"],
     2, ["'stop' should be list"]),
    ("spec-unclosed-brace", lambda t: ["eval", "--benchmarks",
                                       spec(t, "template: 'Q: {question'\n"), "--out", t / "o"],
     2, ["unclosed '{'"]),
    ("spec-unknown-placeholder", lambda t: ["eval", "--benchmarks",
                                            spec(t, "template: '{nope} {question}'\n"),
                                            "--out", t / "o"], 2, ["'nope'"]),
    ("spec-empty-data", lambda t: ["eval", "--benchmarks", spec(t, "", data=""),
                                   "--out", t / "o"], 2, ["holds no records"]),
    ("spec-bad-json-line", lambda t: ["eval", "--benchmarks",
                                      spec(t, "", data='{"question": "a", "answer": "1"}\n{x\n'),
                                      "--out", t / "o"], 2, ["d.jsonl line 2"]),
    ("unknown-benchmark", lambda t: ["eval", "--benchmarks", "gsm9k", "--out", t / "o"], 2,
     ["unknown benchmark 'gsm9k'"]),
    ("unreachable-endpoint", lambda t: [*EVAL, "--base-url", "http://127.0.0.1:9/v1",
                                        "--timeout", "5", "--limit", "1", "--out", t / "o"],
     1, ["connection error"]),
    ("bad-config-type", lambda t: (t / "c.yaml").write_text("rft:\n  max_steps: two\n") and
     ["train", "--config", t / "c.yaml"], 2, ["max_steps should be int"]),
    ("bad-config-key", lambda t: (t / "c.yaml").write_text("samplez: 3\n") and
     ["eval", "--config", t / "c.yaml"], 2, ["unknown option 'samplez'"]),
    ("bad-dotted-selector", lambda t: ["bench", "selectors", "--selectors", "no.such:Selector"],
     2, ["unknown selector"]),
    ("bad-dotted-converter", lambda t: (t / "r.jsonl").write_text("{}\n") and
     ["convert", t / "r.jsonl", "--from", "no_such_pkg.mod:convert", "-o", t / "o.jsonl"],
     2, ["no such module"]),
    ("output-not-a-directory", lambda t: (t / "file").write_text("x") and
     ["synth", "index", "examples/data/search/corpus.jsonl", "-o", t / "file" / "idx"],
     1, ["file"]),
    ("missing-task-file", lambda t: ["eval", "pass-rate", "--tasks", t / "none.jsonl",
                                     "--column", "p", "-o", t / "r.jsonl"], 2, ["none.jsonl"]),
]


@pytest.mark.parametrize("name, args, code, words", FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_table(ember, tmp_path, name, args, code, words):
    proc = ember(*args(tmp_path), check=False)
    one_line_error(proc, code, *words)
    as_json = ember(*args(tmp_path), "--json", check=False)
    assert json.loads(as_json.stdout) == {"error": as_json.stderr.strip().splitlines()[-1]
                                          .removeprefix("error: "), "exit_code": code}


def test_http_errors_after_retries_and_a_bad_key_are_one_line(ember, tmp_path):
    def refuse(k, path, body, headers):
        return 401, {"error": {"message": "Incorrect API key provided"}}, 0
    with scripted_server(refuse) as (url, seen, _):
        proc = ember(*EVAL, "--base-url", url, "--limit", "1", "--out", tmp_path / "o",
                     env={"OPENAI_API_KEY": "sk-secret-test-key"}, check=False)
    one_line_error(proc, 1, "HTTP 401")
    assert "sk-secret-test-key" not in proc.stderr + proc.stdout

    def down(k, path, body, headers):
        return 503, {"error": "overloaded"}, 0
    with scripted_server(down) as (url, seen, _):
        proc = ember(*EVAL, "--base-url", url, "--max-retries", "1", "--limit", "1",
                     "--out", tmp_path / "o2", check=False)
    one_line_error(proc, 1, "HTTP 503", "after 2 attempts")


def test_a_second_run_into_the_same_output_fails_at_once(ember, tmp_path):
    out = tmp_path / "run"
    with output_lock(out, directory=True):  # as a first `ember eval --out run` holds it
        start = time.monotonic()
        proc = ember("eval", "--benchmarks", "mawps", "--limit", "1", "--out", out, check=False)
    one_line_error(proc, 1, "being written by another ember run", f"pid {os.getpid()}")
    assert time.monotonic() - start < 30  # before any model loads
    assert not (out / "samples.jsonl").exists()


def test_partial_results_exit_3(ember, tmp_path):
    raw = tmp_path / "raw.jsonl"
    raw.write_text('{"nope": 1}\n')
    proc = ember("convert", raw, "--from", "agenttuning_os", "-o", tmp_path / "o.jsonl",
                 check=False)
    assert proc.returncode == 3 and "exceeds --max-reject-rate" in proc.stderr


def test_ctrl_c_says_what_was_saved(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "ember.cli.main", "bench", "selectors",
                             "--num-tasks", "200000", "--steps", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # A shell's background job ignores SIGINT, and so would its
                            # children: give the command the default a terminal gives it.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(8)  # well into the run: the 100000 steps take minutes
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("error: interrupted")
    assert "Traceback" not in err


@pytest.fixture
def small_disk(tmp_path):
    """A real 512 KiB tmpfs (root only; skipped with the reason elsewhere)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_mid_eval_then_resume_loses_no_sample(ember, tmp_path, small_disk):
    def answer(k, path, body, headers):
        return 200, ok(path, body, "The answer is \\boxed{2}. " + "x" * 3000), 0

    out = small_disk / "run"
    filler = small_disk / "filler"
    with scripted_server(answer) as (url, seen, _):
        # leave room for run.json and a few chunks of samples, not for all 24 items
        filler.write_bytes(b"\0" * (512 * 1024 - 40 * 1024))
        full = ember(*EVAL, "--base-url", url, "--limit", "24", "--out", out, check=False)
        one_line_error(full, 1, "No space left on device")
        rows_before = (out / "samples.jsonl").read_bytes().count(b"\n")
        assert 0 < rows_before < 24
        filler.unlink()
        resumed = json.loads(ember(*EVAL, "--base-url", url, "--limit", "24", "--out", out,
                                   "--json").stdout)
    rows = [json.loads(line) for line in (out / "samples.jsonl").open()]
    assert len(rows) == len({r["id"] for r in rows}) == 24
    results = json.loads((out / "results.json").read_text())
    assert results["benchmarks"]["mawps"]["items"] == 24 == resumed["read"]


@pytest.mark.slow
def test_a_10mb_prompt_is_rejected_before_any_tensor_under_a_memory_limit(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    huge = "Add the numbers. " + "7 + " * 2_500_000 + "1 = ?"   # ~10 MB, ~5M tokens
    tasks.write_text(json.dumps({"id": "huge", "prompt": huge, "answer": "1"}) + "\n" +
                     json.dumps({"id": "small", "prompt": "What is 3 + 4?", "answer": "7"}) + "\n")
    limit = 12 * 2**30  # address space: the 5M-token attention would need far more
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, "
            f"({limit}, {limit})); from ember.cli.main import main; sys.argv = ['ember'] + "
            "sys.argv[1:]; main()")
    proc = subprocess.run([sys.executable, "-c", code, "eval", "pass-rate", "--model", "smollm2",
                           "--tasks", str(tasks), "--column", "p", "--samples", "1",
                           "--max-new-tokens", "8", "-o", str(tmp_path / "rated.jsonl"), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["produced"] == 1 and summary["rejected_by_reason"] == {"prompt-too-long": 1}
    (reject,) = [json.loads(line) for line in (tmp_path / "rated.rejects.jsonl").open()]
    assert reject["id"] == "huge" and "more than" in reject["detail"]


def test_disk_full_in_convert_is_one_line_and_leaves_no_final_file(ember, tmp_path, small_disk):
    from tests.conftest import FIXTURES

    raw = FIXTURES / "adp" / "agenttuning_os" / "sample_raw.json"
    (small_disk / "filler").write_bytes(b"\0" * (512 * 1024 - 8 * 1024))
    proc = ember("convert", raw, "--from", "agenttuning_os", "-o", small_disk / "os.jsonl",
                 check=False)
    one_line_error(proc, 1, "No space left on device")
    assert not (small_disk / "os.jsonl").exists()


def test_a_second_convert_into_the_same_output_fails_at_once(ember, tmp_path):
    from tests.conftest import FIXTURES

    raw = FIXTURES / "adp" / "agenttuning_os" / "sample_raw.json"
    with output_lock(tmp_path / "os.jsonl"):
        proc = ember("convert", raw, "--from", "agenttuning_os", "-o", tmp_path / "os.jsonl",
                     check=False)
    one_line_error(proc, 1, "being written by another ember run")
    assert not (tmp_path / "os.jsonl").exists()
