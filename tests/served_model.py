"""pytest plugin: a real `transformers serve` process serving the embedded model.

Registered in tests/conftest.py (`pytest_plugins = ["tests.served_model"]`), so any test
can ask for it (and put `counting_proxy` in front of it to count the requests):

    def test_endpoint(served_model):
        llm = make_backend("openai", served_model.model, base_url=served_model.base_url)

The server starts once per test session on 127.0.0.1 and a free port, offline
(HF_HUB_OFFLINE=1, the model is a local directory), and is terminated at the end. It is
ready when /health answers and a one-token chat request has gone through (the first
request is slow, and timing it inside a test would mislead). Start-up takes about 10-20 s
on 2 CPU cores; `served_model.startup_s` has the measured figure.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class ServedModel:
    base_url: str  # ends in /v1, as OpenAI clients expect
    model: str  # the model name to send in requests (the served directory)
    startup_s: float  # from process start until the warm-up request came back


class QuietServer(ThreadingHTTPServer):
    """A threaded test server whose hanging handlers never block shutdown."""

    daemon_threads = True
    block_on_close = False  # a hanging handler must not hold up shutdown


@contextmanager
def counting_proxy(base_url: str):
    """Forward every POST to `base_url`'s server; yields (proxy base_url, counter dict)."""
    root = base_url.rsplit("/v1", 1)[0]
    count, lock = {"n": 0}, threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            data = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                count["n"] += 1
                count.setdefault("asked", []).append(json.loads(data)["messages"][0]["content"])
            req = urllib.request.Request(root + self.path, data, {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=300) as r:
                    status, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client was killed
                pass

        def log_message(self, *args):
            pass

    server = QuietServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", count
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict, timeout: float) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


@pytest.fixture(scope="session")
def served_model(tmp_path_factory):
    """A running `transformers serve` of the embedded model: .base_url, .model, .startup_s."""
    for module in ("fastapi", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"transformers serve needs {module}: pip install 'ember[serve]'")
    from ember.llm.models import resolve_model

    model = resolve_model("smollm2")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("served_model") / "serve.log"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HUB_DISABLE_UPDATE_CHECK="1", HF_HUB_DISABLE_TELEMETRY="1")
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", model,
           "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
           "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited {proc.returncode}:\n"
                                   f"{log_path.read_text()[-3000:]}")
            if time.monotonic() - start > 180:
                raise RuntimeError(f"transformers serve not up after 180 s:\n"
                                   f"{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        _post(f"{base}/v1/chat/completions",
              {"model": model, "messages": [{"role": "user", "content": "hi"}],
               "max_tokens": 1, "temperature": 0}, timeout=120)
        yield ServedModel(f"{base}/v1", model, time.monotonic() - start)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
