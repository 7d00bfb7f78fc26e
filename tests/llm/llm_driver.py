"""A tiny synth-like program for the kill-and-resume test: ask N numbered questions through
LLM.generate (with its cache) and write one JSONL line per answer, atomically.

    python tests/llm/llm_driver.py --base-url http://127.0.0.1:8000/v1 --model M \\
        --n 12 --out answers.jsonl          # cache: answers.jsonl.cache.sqlite

Prints the LLM usage as JSON on stdout when done.
"""

from __future__ import annotations

import argparse
import json

from ember.adp.io import atomic_writer
from ember.llm.backends import SamplingParams
from ember.llm.client import LLMConfig, make_llm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=12)
    args = ap.parse_args()

    prompts = [[{"role": "user", "content": f"Count from {i} to {i + 5}."}] for i in range(args.n)]
    llm = make_llm(LLMConfig(model=args.model, backend="openai", base_url=args.base_url,
                             concurrency=args.concurrency, max_retries=1), out=args.out)
    results = llm.generate(prompts, SamplingParams(max_new_tokens=args.max_tokens))
    with atomic_writer(args.out, "w") as f:
        for i, r in enumerate(results):
            f.write(json.dumps({"i": i, "text": r.text, "error": r.error, "cached": r.cached}) + "\n")
    llm.close()
    print(json.dumps(llm.usage))


if __name__ == "__main__":
    main()
