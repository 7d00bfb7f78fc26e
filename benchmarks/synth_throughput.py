"""Synth throughput: completions/s through ember's LLM layer (openai backend) against the
endpoint's own rate under plain concurrent requests, same prompts, same max tokens.

    python benchmarks/synth_throughput.py [--prompts 32] [--max-tokens 32]
                                          [--levels 1,2,4,8,16] [--no-continuous-batching]

Starts `transformers serve` with the embedded smollm2 on CPU (float32, offline, a free
port; `--continuous-batching` unless told otherwise, so concurrent requests share
forward passes), warms it up, then for each concurrency level c times two sides on the
same --prompts chat prompts (greedy, --max-tokens each), in alternating order:

- raw: c threads, each posting its share of the prompts with urllib to
  /v1/chat/completions, one request at a time: the server's rate under c in flight.
- ember: ``LLM(make_backend("openai", ..., concurrency=c)).generate(prompts, params)``
  with the cache off: asyncio, the openai client, retries, result handling included.

The endpoint's best rate is the best raw level; the headline ratio is ember's best level
over it (target: >= 0.8), and each level's own ratio is kept too. Both sides'
completion-token totals are recorded (greedy: the same work). Prints a table and one
summary line; writes benchmarks/results/synth_throughput.json.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # the model is a local directory; never the hub

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "synth_throughput.json"
TOPICS = ["the moon", "rivers", "bread", "chess", "volcanoes", "bees", "glass", "trains",
          "clouds", "salt", "maps", "owls"]


def prompts(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Write {k % 3 + 2} short facts about {TOPICS[k % len(TOPICS)]}"
                                         f" (list {k})."}] for k in range(n)]


def post(url: str, body: dict, timeout: float = 600) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


@contextmanager
def serve(model: str, continuous_batching: bool):
    """A `transformers serve` process on a free port: yields (base_url ending in /v1, log path)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(tempfile.mkdtemp(prefix="ember-synth-tp-")) / "serve.log"
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", model, "--host",
           "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32",
           "--log-level", "warning",
           "--continuous-batching" if continuous_batching else "--no-continuous-batching"]
    env = dict(os.environ, TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        start = time.monotonic()
        while True:
            if proc.poll() is not None or time.monotonic() - start > 180:
                raise RuntimeError(f"transformers serve did not come up:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield f"{base}/v1", log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # with continuous batching it can hang on SIGTERM
            proc.kill()
            proc.wait()


def run_raw(base_url: str, model: str, chats, max_tokens: int, concurrency: int):
    """(seconds, completion tokens): `concurrency` threads, one request in flight each."""
    todo, lock, tokens, errors = list(enumerate(chats)), threading.Lock(), [0], []

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                _, chat = todo.pop(0)
            try:
                resp = post(f"{base_url}/chat/completions",
                            {"model": model, "messages": chat, "max_tokens": max_tokens,
                             "temperature": 0, "seed": 0})
            except Exception as e:  # reported below; the timing would be meaningless
                errors.append(repr(e))
                return
            with lock:
                tokens[0] += resp["usage"]["completion_tokens"]

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"raw requests failed: {errors[0]}")
    return seconds, tokens[0]


def run_ember(base_url: str, model: str, chats, max_tokens: int, concurrency: int):
    from ember.llm.backends import SamplingParams, make_backend
    from ember.llm.client import LLM

    llm = LLM(make_backend("openai", model, base_url=base_url, concurrency=concurrency),
              model=model, cache=None)
    t0 = time.perf_counter()
    results = llm.generate(chats, SamplingParams(max_new_tokens=max_tokens, temperature=0.0))
    seconds = time.perf_counter() - t0
    failed = [r.error for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"ember calls failed: {failed[0]}")
    return seconds, llm.usage["completion_tokens"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--levels", default="1,2,4,8,16", help="concurrency levels")
    ap.add_argument("--no-continuous-batching", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    # a SIGTERM (timeout, kill) unwinds normally, so the server is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import torch
    import transformers

    from ember.llm.models import resolve_model

    model = resolve_model("smollm2")
    chats = prompts(args.prompts)
    levels = [int(x) for x in args.levels.split(",")]
    cb = not args.no_continuous_batching
    rows = []
    t_start = time.perf_counter()
    with serve(model, cb) as (base_url, log):
        # warm-up, untimed: the server's first requests build caches and kernels, and
        # ours import openai and build the first client
        run_raw(base_url, model, chats[:1], 4, 1)
        run_ember(base_url, model, chats[1:2], 4, 1)
        for k, c in enumerate(levels):
            # the order alternates between levels, so a drifting machine load favours neither
            if k % 2 == 0:
                raw_s, raw_tok = run_raw(base_url, model, chats, args.max_tokens, c)
            ours_s, ours_tok = run_ember(base_url, model, chats, args.max_tokens, c)
            if k % 2 == 1:
                raw_s, raw_tok = run_raw(base_url, model, chats, args.max_tokens, c)
            rows.append({"concurrency": c, "raw_s": round(raw_s, 3), "ember_s": round(ours_s, 3),
                         "raw_completions_per_s": round(len(chats) / raw_s, 3),
                         "ember_completions_per_s": round(len(chats) / ours_s, 3),
                         "ratio": round(raw_s / ours_s, 3),
                         "raw_completion_tokens": raw_tok, "ember_completion_tokens": ours_tok})
            print(f"concurrency {c:>2}: raw {len(chats) / raw_s:6.2f}/s  ember "
                  f"{len(chats) / ours_s:6.2f}/s  ratio {raw_s / ours_s:.2f}", file=sys.stderr)
        server_log_tail = log.read_text()[-1000:]

    best_raw = max(r["raw_completions_per_s"] for r in rows)
    best_ours = max(r["ember_completions_per_s"] for r in rows)
    result = {
        "benchmark": "synth_throughput",
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "openai": __import__("openai").__version__,
                    "load_average_at_end": os.getloadavg()},
        "settings": {"model": "smollm2", "model_path": model, "server": "transformers serve",
                     "device": "cpu", "dtype": "float32", "continuous_batching": cb,
                     "prompts": len(chats), "max_tokens": args.max_tokens, "decoding": "greedy",
                     "levels": levels, "cache": "off"},
        "levels": rows,
        "raw_best_completions_per_s": best_raw,
        "ember_best_completions_per_s": best_ours,
        "ratio_best_over_best": round(best_ours / best_raw, 3),
        "target": ">= 0.8 of the endpoint's raw throughput",
        "seconds_total": round(time.perf_counter() - t_start, 1),
        "server_log_tail": server_log_tail,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"synth throughput: {len(chats)} prompts x {args.max_tokens} tokens, "
                        f"transformers serve (CPU, continuous batching {'on' if cb else 'off'})",
                  title_justify="left")
    for col in ("concurrency", "raw /s", "ember /s", "ember / raw", "tokens raw", "tokens ember"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["concurrency"]), f"{r['raw_completions_per_s']:.2f}",
                      f"{r['ember_completions_per_s']:.2f}", f"{r['ratio']:.2f}",
                      str(r["raw_completion_tokens"]), str(r["ember_completion_tokens"]))
    Console(stderr=True).print(table)
    print(f"synth_throughput: {len(chats)} prompts, {args.max_tokens} tokens, {os.cpu_count()} CPUs, "
          f"continuous batching {'on' if cb else 'off'}: ember best {best_ours:.2f} completions/s, "
          f"endpoint best {best_raw:.2f}/s, ratio {result['ratio_best_over_best']:.2f}")
    return result


if __name__ == "__main__":
    main()
