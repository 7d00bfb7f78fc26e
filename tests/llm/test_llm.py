"""The LLM layer: cache-first generate, per-item failures, strict JSON, key hygiene, the
shared CLI options, and a SIGKILLed run resumed against a real `transformers serve`.

Faults come from real HTTP servers on 127.0.0.1 (429 with Retry-After, 500 forever,
garbage bodies, hangs); the kill-and-resume test counts the requests that reach the real
server through a small counting proxy.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from ember.llm.backends import SamplingParams, make_backend
from ember.llm.cache import Cache, cache_key, model_identity
from ember.llm.client import LLM, LLMConfig, make_llm, parse_json_object
from tests.served_model import QuietServer, counting_proxy

MARKER = "sk-ember-llm-secret-7f3a9c0d5e"
DRIVER = Path(__file__).with_name("llm_driver.py")
SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}


def chat(text):
    return [{"role": "user", "content": text}]


# ---------------------------------------------------------------- a scripted server

@contextmanager
def fake_server(reply):
    """Serve `reply(k, content, body, headers)` -> (status, payload, delay[, headers]) for
    request k; `content` is the first message's text. A dict payload is sent as an OpenAI
    chat response carrying that text when it is a str, as JSON when a dict, raw when bytes.
    Yields (base_url, seen) where seen lists {"t", "content", "body", "headers"}."""
    seen, lock = [], threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            headers = {k.lower(): v for k, v in self.headers.items()}
            content = body["messages"][0]["content"]
            with lock:
                k = len(seen)
                seen.append({"t": time.monotonic(), "content": content, "body": body,
                             "headers": headers})
            status, payload, delay, *extra = reply(k, content, body, headers)
            time.sleep(delay)
            if isinstance(payload, str):
                payload = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": payload}}],
                           "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                pass

        def log_message(self, *args):
            pass

    server = QuietServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()


def make(url, cache=None, **kw):
    kw.setdefault("backoff", 0.01)
    return LLM(make_backend("openai", "fake-model", base_url=url, **kw), model="fake-model",
               cache=cache)


def echo(k, content, body, headers):
    return 200, f"re: {content}", 0


# ---------------------------------------------------------------- generate

def test_finished_calls_are_cached_and_never_sent_again(tmp_path):
    prompts = [chat("a"), chat("b"), chat("a"), chat("c")]  # "a" twice: asked once
    progress = []
    with fake_server(echo) as (url, seen):
        first = make(url, Cache(tmp_path / "c.sqlite"))
        out = first.generate(prompts, SamplingParams(), on_progress=lambda d, t: progress.append((d, t)))
        assert [r.text for r in out] == ["re: a", "re: b", "re: a", "re: c"]
        assert len(seen) == 3 and not any(r.cached for r in out)
        assert progress[0] == (0, 4) and progress[-1] == (4, 4)
        assert first.usage["calls"] == 3 and first.usage["completion_tokens"] == 6
        first.close()

        again = make(url, Cache(tmp_path / "c.sqlite"))
        out2 = again.generate(prompts, SamplingParams())
        assert len(seen) == 3  # nothing sent
        assert [r.text for r in out2] == [r.text for r in out] and all(r.cached for r in out2)
        assert again.usage["cached"] == 4 and again.usage["calls"] == 0
        # another seed is another call
        again.generate([chat("a")], SamplingParams(seed=1))
        assert len(seen) == 4


def test_429_is_retried_after_the_servers_retry_after():
    def reply(k, content, body, headers):
        if k == 0:
            return 429, {"error": {"message": "slow down"}}, 0, {"Retry-After": "1"}
        return 200, "fine", 0

    with fake_server(reply) as (url, seen):
        out = make(url).generate([chat("q")], SamplingParams())
    assert out[0].ok and out[0].text == "fine" and len(seen) == 2
    assert seen[1]["t"] - seen[0]["t"] >= 0.95  # backoff alone would wait <= 0.02 s


def test_500_forever_rejects_that_item_and_the_rest_succeed(tmp_path):
    def reply(k, content, body, headers):
        return (500, {"error": {"message": "model crashed"}}, 0) if content == "bad" else echo(k, content, body, headers)

    prompts = [chat("x"), chat("bad"), chat("y")]
    with fake_server(reply) as (url, seen):
        llm = make(url, Cache(tmp_path / "c.sqlite"), max_retries=2)
        out = llm.generate(prompts, SamplingParams())
        assert [r.ok for r in out] == [True, False, True]
        assert out[1].text == "" and out[1].completions == []
        assert "HTTP 500" in out[1].error and "after 3 attempts" in out[1].error
        assert "model crashed" in out[1].error and "\n" not in out[1].error
        assert sum(s["content"] == "bad" for s in seen) == 3
        assert llm.usage["failed"] == 1 and len(llm.cache) == 2  # failures are not cached
        # a rerun sends only the failed item again
        before = len(seen)
        llm.generate(prompts, SamplingParams())
        assert [s["content"] for s in seen[before:]] == ["bad"] * 3


def test_garbage_body_is_retried_then_rejected():
    def reply(k, content, body, headers):
        if content == "junk" or (content == "flaky" and not any(
                s["content"] == "flaky" for s in seen[:k])):
            return 200, b"<html>502 bad gateway</html>", 0
        return echo(k, content, body, headers)

    with fake_server(reply) as (url, seen):
        out = make(url, max_retries=2).generate([chat("flaky"), chat("junk"), chat("ok")],
                                                SamplingParams())
    assert out[0].text == "re: flaky" and out[2].text == "re: ok"
    assert "malformed response" in out[1].error and "after 3 attempts" in out[1].error
    assert sum(s["content"] == "flaky" for s in seen) == 2


def test_hang_times_out_is_retried_then_rejected():
    def reply(k, content, body, headers):
        return (200, "late", 3.0) if content == "hang" else echo(k, content, body, headers)

    t0 = time.monotonic()
    with fake_server(reply) as (url, seen):
        out = make(url, timeout=0.3, max_retries=1).generate([chat("hang"), chat("quick")],
                                                             SamplingParams())
        elapsed = time.monotonic() - t0
        hung = sum(s["content"] == "hang" for s in seen)
    assert out[1].text == "re: quick"
    assert "timeout" in out[0].error and "after 2 attempts" in out[0].error
    assert hung == 2 and elapsed < 2.5  # gave up without waiting for the hung replies


# ---------------------------------------------------------------- generate_json

def test_generate_json_retries_invalid_json_with_a_new_seed(tmp_path):
    def reply(k, content, body, headers):
        if body["seed"] == 0:
            return 200, 'Sure! {"answer": "5",,}', 0
        return 200, 'Here:\n```json\n{"answer": "5"}\n```\nDone.', 0

    with fake_server(reply) as (url, seen):
        llm = make(url, Cache(tmp_path / "c.sqlite"))
        assert llm.generate_json([chat("2+3?")], SCHEMA, SamplingParams(temperature=0.7)) == [
            ({"answer": "5"}, None)]
        assert [s["body"]["seed"] for s in seen] == [0, 1]
        # both attempts are cached: a rerun gets the same answer without a request
        assert llm.generate_json([chat("2+3?")], SCHEMA, SamplingParams(temperature=0.7)) == [
            ({"answer": "5"}, None)]
        assert len(seen) == 2


def test_generate_json_schema_invalid_forever_is_rejected_with_reason():
    def reply(k, content, body, headers):
        return 200, '{"answer": 5}' if content == "stubborn" else '{"answer": "fine"}', 0

    with fake_server(reply) as (url, seen):
        out = make(url).generate_json([chat("stubborn"), chat("good")], SCHEMA,
                                      SamplingParams(temperature=0.7, seed=10), attempts=3)
    assert out[1] == ({"answer": "fine"}, None)
    obj, reason = out[0]
    assert obj is None
    assert reason.startswith("schema: 5 is not of type 'string' at $.answer")
    assert reason.endswith("(after 3 attempts)")
    assert [s["body"]["seed"] for s in seen if s["content"] == "stubborn"] == [10, 11, 12]
    assert sum(s["content"] == "good" for s in seen) == 1


def test_generate_json_backend_failure_is_a_reason_not_a_retry():
    with fake_server(lambda k, c, b, h: (400, {"error": {"message": "bad field"}}, 0)) as (url, seen):
        [(obj, reason)] = make(url).generate_json([chat("q")], SCHEMA, SamplingParams())
    assert obj is None and reason.startswith("backend error:") and "HTTP 400" in reason
    assert len(seen) == 1


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1}', ({"a": 1}, None)),
    ('The answer: {"a": [1, 2]} and more {"b": 2}', ({"a": [1, 2]}, None)),
    ('```json\n{"a": "x"}\n```', ({"a": "x"}, None)),
    ('text {"no": 1} then ```json\n{"a": 2}\n```', ({"a": 2}, None)),  # the fence wins
    ('```json\n{"a": 3}', ({"a": 3}, None)),  # cut at max tokens after the object
    ("no object here", (None, "no JSON object in the output")),
])
def test_parse_json_object(text, expected):
    assert parse_json_object(text) == expected


@pytest.mark.parametrize("text", ["{'a': 1}", '{"a": 1,}', '{"a": NaN}', '{"a": 1'])
def test_parse_json_object_is_strict(text):
    obj, reason = parse_json_object(text)
    assert obj is None and reason.startswith("invalid JSON")


# ---------------------------------------------------------------- secrets

def test_api_key_never_reaches_cache_or_reasons(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", MARKER)

    def reply(k, content, body, headers):  # a hostile server echoing the credentials
        if content == "echo":
            return 200, f"you sent {headers['authorization']}", 0
        return 500, {"error": {"message": f"boom, you sent {headers['authorization']}"}}, 0

    with fake_server(reply) as (url, seen):
        llm = make(url, Cache(tmp_path / "c.sqlite"), max_retries=1)
        out = llm.generate([chat("echo"), chat("fail")], SamplingParams())
        pairs = llm.generate_json([chat("fail")], SCHEMA, SamplingParams())
        llm.close()
    assert seen[0]["headers"]["authorization"] == f"Bearer {MARKER}"  # there was a key to leak
    assert out[0].text == "you sent Bearer ***"
    assert "Bearer ***" in out[1].error and MARKER not in out[1].error
    assert MARKER not in pairs[0][1] and "boom" in pairs[0][1]
    files = list(tmp_path.glob("c.sqlite*"))
    raw = b"".join(f.read_bytes() for f in files)
    assert b"you sent Bearer ***" in raw  # the echoed answer is in there, scrubbed
    assert MARKER.encode() not in raw


def test_make_llm_cache_defaults_to_beside_the_output(tmp_path):
    cfg = LLMConfig(backend="openai", model="m", base_url="http://127.0.0.1:9/v1")
    with make_llm(cfg, out=tmp_path / "tasks.jsonl") as llm:
        assert llm.cache.path == str(tmp_path / "tasks.jsonl.cache.sqlite")
    assert make_llm(LLMConfig(backend="openai", model="m", cache="none"), out="x").cache is None
    assert make_llm(LLMConfig(backend="openai", model="m")).cache is None


# ---------------------------------------------------------------- hf, with the model

@pytest.mark.slow
def test_hf_results_are_cached_as_batches_finish(tmp_path):
    cfg = LLMConfig(model="smollm2", batch_size=2, cache=str(tmp_path / "c.sqlite"))
    prompts = ["1, 2, 3,", "Monday, Tuesday,", "a, b, c,"]
    rows = []
    with make_llm(cfg) as llm:
        # progress comes after each stored result: the cache already holds it
        out = llm.generate(prompts, SamplingParams(max_new_tokens=3),
                           on_progress=lambda d, t: rows.append((d, len(llm.cache))))
        assert all(r.ok and not r.cached for r in out)
        assert rows == [(0, 0), (1, 1), (2, 2), (3, 3)]
    with make_llm(cfg) as llm:
        again = llm.generate(prompts, SamplingParams(max_new_tokens=3))
        assert [r.text for r in again] == [r.text for r in out] and all(r.cached for r in again)
        assert llm.usage["calls"] == 0


# ---------------------------------------------------------------- kill and resume, for real

def cached_rows(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:  # created, table not there yet
        return 0


@pytest.mark.slow
def test_sigkill_then_rerun_repeats_no_finished_call(served_model, tmp_path):
    out = tmp_path / "answers.jsonl"
    cache = tmp_path / "answers.jsonl.cache.sqlite"
    with counting_proxy(served_model.base_url) as (url, count):
        cmd = [sys.executable, str(DRIVER), "--base-url", url, "--model", served_model.model,
               "--out", str(out), "--n", "12", "--concurrency", "2", "--max-tokens", "8"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 180
        while cached_rows(cache) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no 3 finished calls in 180 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        done = cached_rows(cache)
        assert 3 <= done < 12, done  # killed mid-run, with finished calls on disk
        assert not out.exists()  # the output is written atomically at the end
        assert count["n"] >= done

        # which calls finished before the kill, by their cache keys (the served model is a
        # local directory, so the keys name it by its files)
        params = SamplingParams(max_new_tokens=8)
        model = model_identity(served_model.model, embedded=False)
        assert model.startswith("files:")
        with Cache(cache) as c:
            finished = {i for i in range(12) if c.get(cache_key(
                model, chat(f"Count from {i} to {i + 5}."), params)) is not None}
        assert len(finished) == done

        count["n"], count["asked"] = 0, []
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert second.returncode == 0, second.stderr[-2000:]
        # only the calls not finished before the kill, each once
        expected = sorted(f"Count from {i} to {i + 5}." for i in range(12) if i not in finished)
        assert sorted(count["asked"]) == expected, second.stderr[-2000:]
    usage = json.loads(second.stdout.strip().splitlines()[-1])
    assert usage["cached"] == done and usage["calls"] == 12 - done and usage["failed"] == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["i"] for r in rows] == list(range(12))
    assert all(r["error"] is None and r["text"] for r in rows)
    assert sum(r["cached"] for r in rows) == done
