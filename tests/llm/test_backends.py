"""LLM backends: hf in-process generation, and the openai backend against a real
`transformers serve` and against tiny scripted HTTP servers on 127.0.0.1 (retries, n,
concurrency, key hygiene)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ember.llm.backends import BackendError, Completion, SamplingParams, cut_at_stop, make_backend

FAKE_KEY = "sk-ember-test-0123456789abcdef"
CHAT = [{"role": "user", "content": "What is 2+3?"}]


# ---------------------------------------------------------------- scripted servers

@contextmanager
def scripted_server(reply):
    """Serve `reply(k, path, body, headers) -> (status, payload, delay_s)` for request k.

    Records every request (path, headers, JSON body) and the peak number in flight."""
    seen, lock = [], threading.Lock()
    state = {"in_flight": 0, "peak": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with lock:
                k = len(seen)
                seen.append({"path": self.path, "headers": headers, "body": body})
                state["in_flight"] += 1
                state["peak"] = max(state["peak"], state["in_flight"])
            status, payload, delay = reply(k, self.path, body, headers)
            time.sleep(delay)
            with lock:
                state["in_flight"] -= 1
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # client timed out and left
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen, state
    finally:
        server.shutdown()
        server.server_close()


def ok(path, body, text="ok"):
    """A minimal valid OpenAI response with one choice, whatever `n` asked for."""
    if path.endswith("/chat/completions"):
        choice = {"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": text}}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "finish_reason": "stop", "text": text}
        kind = "text_completion"
    return {"id": "x", "object": kind, "created": 0, "model": body["model"], "choices": [choice],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


def openai(base_url, **kw):
    kw.setdefault("backoff", 0.01)
    return make_backend("openai", "fake-model", base_url=base_url, **kw)


# ---------------------------------------------------------------- openai, fast

def test_cut_at_stop():
    assert cut_at_stop("a, b. c\n\nd", [".", "\n\n"]) == ("a, b", True)
    assert cut_at_stop("abc", ["x", ""]) == ("abc", False)


def test_openai_retries_429_then_succeeds(monkeypatch):
    monkeypatch.setenv("EMBER_TEST_KEY", FAKE_KEY)

    def reply(k, path, body, headers):
        return (429, {"error": {"message": "slow down"}}, 0) if k < 2 else (200, ok(path, body, "4"), 0)

    with scripted_server(reply) as (url, seen, _):
        out = openai(url, api_key_env="EMBER_TEST_KEY").generate([CHAT], SamplingParams())
    assert out == [[Completion("4", 2, "stop")]]
    assert len(seen) == 3
    # The key came from the variable named by api_key_env, and went only where it belongs.
    assert seen[0]["headers"]["authorization"] == f"Bearer {FAKE_KEY}"


def test_openai_retries_timeouts():
    with scripted_server(lambda k, path, body, h: (200, ok(path, body), 1.0 if k == 0 else 0)) as (url, seen, _):
        out = openai(url, timeout=0.3).generate(["1, 2,"], SamplingParams())
    assert out[0][0].text == "ok" and len(seen) == 2
    assert seen[1]["path"] == "/v1/completions"  # a plain string is a completion prompt


def test_openai_gives_up_after_max_retries_without_leaking_key(monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    caplog.set_level(logging.DEBUG)  # everything, the openai and http client loggers included

    def reply(k, path, body, headers):  # a hostile server that echoes the credentials back
        return 500, {"error": {"message": f"boom; you sent {headers['authorization']}"}}, 0

    with scripted_server(reply) as (url, seen, _):
        with pytest.raises(BackendError) as err:
            openai(url, max_retries=3).generate([CHAT], SamplingParams())
    assert len(seen) == 4  # the first try and 3 retries
    assert seen[0]["headers"]["authorization"] == f"Bearer {FAKE_KEY}"  # so there was a key to leak
    message = str(err.value)
    assert "HTTP 500" in message and "after 4 attempts" in message and "boom" in message
    assert FAKE_KEY not in message and "Bearer ***" in message  # echoed, then scrubbed
    assert FAKE_KEY not in str(err.getrepr(showlocals=True))  # pytest -l
    assert FAKE_KEY not in caplog.text
    assert "retry 3/3" in caplog.text


def test_openai_does_not_retry_client_errors():
    with scripted_server(lambda k, p, b, h: (400, {"error": {"message": "bad field"}}, 0)) as (url, seen, _):
        with pytest.raises(BackendError, match="HTTP 400.*bad field"):
            openai(url).generate([CHAT], SamplingParams())
    assert len(seen) == 1


def test_openai_n_falls_back_to_separate_requests():
    with scripted_server(lambda k, path, body, h: (200, ok(path, body, f"s{k}"), 0.05)) as (url, seen, state):
        llm = openai(url, concurrency=1)
        out = llm.generate([CHAT], SamplingParams(n=3, temperature=0.7, seed=5))
        assert sorted(c.text for c in out[0]) == ["s0", "s1", "s2"]
        assert seen[0]["body"]["n"] == 3
        # the extra samples were asked for one at a time, each with its own seed
        assert sorted(r["body"]["seed"] for r in seen[1:]) == [6, 7]
        assert all("n" not in r["body"] for r in seen[1:])
        # the backend remembers: the next call does not ask for n again
        llm.generate([CHAT], SamplingParams(n=2, temperature=0.7))
        assert len(seen) == 5 and all("n" not in r["body"] for r in seen[3:])
    assert state["peak"] == 1  # the extra requests respect the concurrency bound too


def test_openai_bounded_concurrency_and_input_order():
    def reply(k, path, body, headers):
        return 200, ok(path, body, body["messages"][0]["content"]), 0.1

    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(8)]
    progress = []
    with scripted_server(reply) as (url, seen, state):
        out = openai(url, concurrency=3).generate(prompts, SamplingParams(),
                                                  on_progress=lambda d, t: progress.append((d, t)))
    assert [o[0].text for o in out] == [f"q{i}" for i in range(8)]
    assert state["peak"] == 3
    assert progress[-1] == (8, 8) and len(progress) == 8


def test_openai_callable_from_async_code_and_threads():
    with scripted_server(lambda k, path, body, h: (200, ok(path, body), 0)) as (url, seen, _):
        llm = openai(url)

        async def inside_a_loop():
            return llm.generate([CHAT], SamplingParams())

        assert asyncio.run(inside_a_loop())[0][0].text == "ok"
        results = []
        threads = [threading.Thread(target=lambda: results.append(llm.generate([CHAT], SamplingParams())))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r[0][0].text for r in results] == ["ok", "ok"]


def test_unknown_backend_and_missing_vllm():
    with pytest.raises(ValueError, match="hf, openai, vllm"):
        make_backend("llamacpp", "m")
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(BackendError, match=r"ember\[gpu\]"):
            make_backend("vllm", "smollm2")


# ---------------------------------------------------------------- hf, with the model

@pytest.fixture(scope="module")
def hf():
    # CPU float32 everywhere, like the served model below, so texts compare exactly
    return make_backend("hf", "smollm2", batch_size=3, device="cpu", dtype="float32")


@pytest.mark.slow
def test_hf_greedy_matches_model_generate(hf):
    params = SamplingParams(max_new_tokens=10)
    first = hf.generate([CHAT], params)
    assert hf.generate([CHAT], params) == first  # deterministic
    tok, model = hf.tokenizer, hf.model
    inputs = tok.apply_chat_template(CHAT, add_generation_prompt=True, return_tensors="pt",
                                     return_dict=True)
    out = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    new = out[0][inputs["input_ids"].shape[1]:]
    assert first[0][0].text == tok.decode(new, skip_special_tokens=True)
    assert first[0][0].text.strip().startswith("2 + 3 = 5")


@pytest.mark.slow
def test_hf_batches_sorted_by_length_keep_input_order(hf):
    prompts = ["1, 2, 3,",
               [{"role": "user", "content": "Name a fruit that is yellow and long, and say one "
                                            "thing about where it grows and how it is eaten."}],
               "The capital of France is",
               [{"role": "user", "content": "Hi"}],
               "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday,"]
    params = SamplingParams(max_new_tokens=6)
    progress = []
    batched = hf.generate(prompts, params, on_progress=lambda d, t: progress.append((d, t)))
    assert progress == [(3, 5), (5, 5)]
    hf.batch_size = 1
    try:
        single = hf.generate(prompts, params)
    finally:
        hf.batch_size = 3
    assert [b[0].text for b in batched] == [s[0].text for s in single]
    assert "4" in batched[0][0].text and "Sunday" in batched[4][0].text


@pytest.mark.slow
def test_hf_sampling_seeded_and_n(hf):
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=7)
    a = hf.generate([CHAT, "Once upon a time"], params)
    assert [len(x) for x in a] == [3, 3]
    assert hf.generate([CHAT, "Once upon a time"], params) == a
    assert len({c.text for c in a[1]}) > 1  # three samples, not one copied
    other = hf.generate([CHAT, "Once upon a time"], SamplingParams(n=3, temperature=1.0,
                                                                   max_new_tokens=8, seed=8))
    assert other != a
    greedy = hf.generate([CHAT], SamplingParams(n=2, max_new_tokens=4))
    assert len(greedy[0]) == 2 and greedy[0][0] == greedy[0][1]


@pytest.mark.slow
def test_hf_stop_strings(hf):
    out = hf.generate(["1, 2, 3,", "Monday, Tuesday,"],
                      SamplingParams(max_new_tokens=12, stop=[" 6", "Friday"]))
    assert out[0][0].text == " 4, 5,"
    assert out[0][0].finish_reason == "stop" and out[0][0].tokens < 12  # stopped early
    assert "Friday" not in out[1][0].text and out[1][0].text.startswith(" Wednesday")


def test_hf_offers_tools_through_the_chat_template(hf):
    tool = {"type": "function", "function": {"name": "lookup", "description": "Look it up.",
                                             "parameters": {"type": "object", "properties": {}}}}
    chat = [{"role": "user", "content": "Hi"}]
    plain = hf.tokenizer.decode(hf.encode(chat))
    offered = hf.tokenizer.decode(hf.encode(chat, tools=[tool]))
    assert "<tools>" not in plain and '"name": "lookup"' in offered and "<tool_call>" in offered
    assert offered.endswith(plain[plain.index("<|im_start|>user"):])  # same turns after it


def test_hf_refuses_an_over_long_prompt_by_characters_before_tokenizing(hf, monkeypatch):
    """More characters than the limit's tokens can hold: refused without tokenizing; fewer
    characters but too many tokens: refused by the token count; the rest are generated."""
    monkeypatch.setattr(hf, "max_prompt_tokens", 20)
    most = 20 * hf._chars_bound()
    calls = []
    encode = hf.encode
    monkeypatch.setattr(hf, "encode", lambda p, tools=None: calls.append(p) or encode(p, tools))
    with pytest.raises(BackendError, match=rf"prompt-too-long: {most + 1} characters, more "
                                           r"than 20 tokens can hold"):
        hf.generate(["x" * (most + 1)], SamplingParams(max_new_tokens=2))
    assert calls == []  # never tokenized
    many = " ".join(["word"] * 40)  # ~40 tokens, far fewer characters than the bound
    with pytest.raises(BackendError, match=r"prompt-too-long: \d+ tokens, more than 20"):
        hf.generate([many], SamplingParams(max_new_tokens=2))
    got = {}
    hf.generate([[{"role": "user", "content": "x" * (most + 1)}], "1, 2, 3,"],
                SamplingParams(max_new_tokens=2), on_result=lambda i, r: got.setdefault(i, r))
    assert isinstance(got[0], BackendError) and "characters" in str(got[0])
    assert got[1][0].text


# ---------------------------------------------------------------- openai against transformers serve

@pytest.mark.slow
def test_openai_matches_hf_on_served_model(served_model, hf):
    llm = make_backend("openai", served_model.model, base_url=served_model.base_url)
    prompts = [CHAT, "The capital of France is"]
    params = SamplingParams(max_new_tokens=8, stop=["\n"])
    served = llm.generate(prompts, params)
    local = hf.generate(prompts, params)
    assert [s[0].text for s in served] == [x[0].text for x in local]
    # transformers serve ignores `n`; the backend falls back to one request per sample
    two = llm.generate(["1, 2, 3,"], SamplingParams(n=2, temperature=0.9, max_new_tokens=4))
    assert len(two[0]) == 2 and llm.n_supported is False
