"""Eval throughput: ember's hf backend against lm-eval's hf backend, same everything.

    python benchmarks/eval_throughput.py [--n 32] [--mawps 0] [--max-new-tokens 128]
                                         [--batch-size 16] [--rounds 2]

One process, one model (the embedded smollm2, CPU, float32), the same items (the first
--n of gsm8k-boxed (the gsm8k test split), plus the first --mawps of mawps), the same prompts (ember's chat
prompt: the item's single user message rendered with the model's chat template and a
generation prompt), greedy decoding, the same max new tokens and batch size.

- ember: ``make_backend("hf", path, batch_size=B).generate(...)``; the time is the
  generate call only (rendering, tokenising, generation, decoding), model already loaded,
  after a tiny warm-up.
- lm-eval: ``HFLM(pretrained=path, device="cpu", dtype="float32", batch_size=B)`` built
  first (load not timed), then ``simple_evaluate`` on a ``generate_until`` task written to
  a temp dir over a local JSONL (doc_to_text = the user message text, apply_chat_template,
  no stop strings besides lm-eval's own EOS, max_gen_toks = max new tokens). Two times are
  kept: the time inside ``HFLM.generate_until`` (tokenising, sorting, generation, stop
  checks, decoding: the counterpart of ember's time, used for the ratio) and the whole
  ``simple_evaluate`` call (adds loading the JSONL with `datasets`, building the requests
  with the chat template, the bypass metric and the result tables).

Each round times both sides (the order alternates between rounds); the headline figures
are each side's best round, and every round is kept in the JSON. The prompt strings
lm-eval sent (its logged samples' ``arguments``) are compared with ours, and so are their
token ids. Both sides' raw generations are scored with ember's math scorer. Prints one
summary line; writes benchmarks/results/eval_throughput.json.
"""

from __future__ import annotations

import os

# Never touch the hub: the model is a local directory and the data a local file.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "eval_throughput.json"
TASK = "ember_eval_throughput"


def load_items(n: int, mawps: int):
    from ember.evaluate.benchmarks import load_benchmark

    items = load_benchmark("gsm8k-boxed").load()[:n]
    if mawps:
        items += load_benchmark("mawps").load()[:mawps]
    for item in items:  # the comparison assumes ember's single-user-message prompts
        assert len(item.messages) == 1 and item.messages[0]["role"] == "user", item.id
    return items


def write_task(folder: Path, items, max_new_tokens: int) -> None:
    """A generate_until task over a local JSONL: the text is the user message, verbatim."""
    import yaml

    data = folder / "items.jsonl"
    with open(data, "w") as f:
        for k, item in enumerate(items):
            f.write(json.dumps({"k": k, "id": item.id, "text": item.messages[0]["content"],
                                "answer": str(item.gold)}) + "\n")
    config = {
        "task": TASK,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "text",       # a field name: the value as is (no Jinja rendering)
        "doc_to_target": "answer",
        "num_fewshot": 0,
        "generation_kwargs": {"until": [], "do_sample": False, "max_gen_toks": max_new_tokens},
        # we score with ember's scorer ourselves; lm-eval only passes the text through
        "metric_list": [{"metric": "bypass", "aggregation": "bypass", "higher_is_better": True}],
    }
    (folder / f"{TASK}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def run_ember(backend, items, max_new_tokens: int) -> tuple[list, float]:
    from ember.llm.backends import SamplingParams

    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    t0 = time.perf_counter()
    outs = backend.generate([item.messages for item in items], params)
    seconds = time.perf_counter() - t0
    return [o[0] for o in outs], seconds


def run_lm_eval(lm, task_dir: Path, n_items: int) -> tuple[list[dict], float, float]:
    """(logged samples in item order, seconds inside generate_until, seconds in total)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    inner = {"s": 0.0}
    original = lm.generate_until

    def timed(requests, *a, **kw):
        t = time.perf_counter()
        try:
            return original(requests, *a, **kw)
        finally:
            inner["s"] += time.perf_counter() - t

    lm.generate_until = timed
    try:
        manager = TaskManager(include_path=str(task_dir), include_defaults=False)
        t0 = time.perf_counter()
        res = lm_eval.simple_evaluate(model=lm, tasks=[TASK], task_manager=manager,
                                      apply_chat_template=True, log_samples=True,
                                      bootstrap_iters=0, num_fewshot=0, verbosity="WARNING")
        total = time.perf_counter() - t0
    finally:
        del lm.generate_until
    samples = sorted(res["samples"][TASK], key=lambda s: s["doc"]["k"])
    assert [s["doc"]["k"] for s in samples] == list(range(n_items))
    return samples, inner["s"], total


def warm_up(backend, lm) -> None:
    from lm_eval.api.instance import Instance

    from ember.llm.backends import SamplingParams

    chat = [{"role": "user", "content": "What is 2+3?"}]
    backend.generate([chat], SamplingParams(max_new_tokens=4))
    ctx = lm.apply_chat_template(chat)
    lm.generate_until([Instance("generate_until", {}, (ctx, {"until": [], "do_sample": False,
                                                              "max_gen_toks": 4}), 0)],
                      disable_tqdm=True)


def check_prompts(backend, lm, items, samples) -> dict:
    """lm-eval's prompt strings and token ids against ember's, item by item."""
    ours = [backend.tokenizer.apply_chat_template(item.messages, tokenize=False,
                                                  add_generation_prompt=True) for item in items]
    theirs = [s["arguments"][0][0] for s in samples]
    kwargs = [s["arguments"][0][1] for s in samples]
    text_equal = [a == b for a, b in zip(ours, theirs)]
    ids_equal = []
    for item, context in zip(items, theirs):
        ids, mask = lm.tok_batch_encode([context])  # exactly how generate_until encodes
        ids_equal.append(ids[0][mask[0].bool()].tolist() == backend.encode(item.messages))
    first_diff = next((k for k, ok in enumerate(text_equal) if not ok), None)
    return {"prompt_strings_equal": all(text_equal), "prompt_ids_equal": all(ids_equal),
            "n_equal_strings": sum(text_equal), "n_equal_ids": sum(ids_equal),
            "first_difference": None if first_diff is None else
            {"ours": ours[first_diff], "lm_eval": theirs[first_diff]},
            "lm_eval_gen_kwargs": kwargs[0]}


def score(items, texts) -> list[float]:
    from ember.evaluate.scoring import get_scorer

    scorer = get_scorer("math")
    return [float(scorer(text, item)["score"]) for item, text in zip(items, texts)]


def one_round(backend, lm, items, task_dir, max_new_tokens, order) -> dict:
    out = {}
    for side in order:
        if side == "ember":
            comps, seconds = run_ember(backend, items, max_new_tokens)
            out["ember"] = {"texts": [c.text for c in comps], "generate_s": seconds,
                            "tokens": [c.tokens for c in comps],
                            "cut": [c.finish_reason == "length" for c in comps]}
        else:
            samples, inner, total = run_lm_eval(lm, task_dir, len(items))
            out["lm_eval"] = {"samples": samples, "generate_s": inner, "evaluate_s": total,
                              "texts": [s["resps"][0][0] for s in samples]}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=32, help="first N gsm8k-boxed test items")
    ap.add_argument("--mawps", type=int, default=0, help="plus the first M mawps items")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2,
                    help="time both sides this many times (order alternates)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    import torch
    from lm_eval.models.huggingface import HFLM

    from ember.llm.backends import make_backend
    from ember.llm.models import resolve_model

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    items = load_items(args.n, args.mawps)
    path = resolve_model("smollm2")
    backend = make_backend("hf", path, batch_size=args.batch_size, dtype="float32",
                           device="cpu")
    lm = HFLM(pretrained=path, device="cpu", dtype="float32", batch_size=args.batch_size)
    warm_up(backend, lm)

    rounds = []
    with tempfile.TemporaryDirectory(prefix="ember-eval-tp-") as tmp:
        write_task(Path(tmp), items, args.max_new_tokens)
        for r in range(args.rounds):
            order = ("ember", "lm_eval") if r % 2 == 0 else ("lm_eval", "ember")
            rounds.append(one_round(backend, lm, items, Path(tmp), args.max_new_tokens, order))
            got = rounds[-1]
            print(f"round {r + 1}: ember {got['ember']['generate_s']:.1f}s, lm-eval "
                  f"{got['lm_eval']['generate_s']:.1f}s in generate_until "
                  f"({got['lm_eval']['evaluate_s']:.1f}s in simple_evaluate)", file=sys.stderr)

    last = rounds[-1]
    prompts = check_prompts(backend, lm, items, last["lm_eval"]["samples"])
    ours, theirs = last["ember"]["texts"], last["lm_eval"]["texts"]
    s_ours, s_theirs = score(items, ours), score(items, theirs)
    n = len(items)
    deterministic = all(r["ember"]["texts"] == ours and r["lm_eval"]["texts"] == theirs
                        for r in rounds)
    per_round = []
    for r in rounds:
        e, l = r["ember"]["generate_s"], r["lm_eval"]["generate_s"]
        per_round.append({"ember_generate_s": round(e, 3), "lm_eval_generate_until_s": round(l, 3),
                          "lm_eval_simple_evaluate_s": round(r["lm_eval"]["evaluate_s"], 3),
                          "ember_samples_per_s": round(n / e, 4),
                          "lm_eval_samples_per_s": round(n / l, 4),
                          "lm_eval_samples_per_s_whole_evaluate": round(n / r["lm_eval"]["evaluate_s"], 4),
                          "ratio": round(l / e, 3),
                          "ratio_vs_whole_evaluate": round(r["lm_eval"]["evaluate_s"] / e, 3)})
    best_e = min(r["ember"]["generate_s"] for r in rounds)
    best_l = min(r["lm_eval"]["generate_s"] for r in rounds)
    differ = [k for k in range(n) if ours[k] != theirs[k]]
    result = {
        "benchmark": "eval_throughput",
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "processor": platform.processor(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "transformers": __import__("transformers").__version__,
                    "lm_eval": __import__("lm_eval").__version__},
        "settings": {"model": "smollm2", "model_path": path, "items": n,
                     "gsm8k": args.n, "mawps": args.mawps, "max_new_tokens": args.max_new_tokens,
                     "batch_size": args.batch_size, "dtype": "float32", "device": "cpu",
                     "decoding": "greedy", "rounds": args.rounds,
                     "attn_implementation": {
                         "ember": backend.model.config._attn_implementation,
                         "lm_eval": lm.model.config._attn_implementation}},
        "rounds": per_round,
        "ember_samples_per_s": round(n / best_e, 4),
        "lm_eval_samples_per_s": round(n / best_l, 4),
        "ratio_ours_over_lm_eval": round(best_l / best_e, 3),
        "timing_note": "best round; ember = HFBackend.generate; lm-eval = time inside "
                       "HFLM.generate_until (simple_evaluate adds data loading, request "
                       "building and metrics; see rounds)",
        "completion_tokens": {"mean": sum(last["ember"]["tokens"]) / n,
                              "cut_at_max_new_tokens": sum(last["ember"]["cut"])},
        "accuracy": {"ember": sum(s_ours) / n, "lm_eval": sum(s_theirs) / n},
        "agreement": {"identical_generations": (n - len(differ)) / n,
                      "scores_equal": s_ours == s_theirs,
                      "per_item_scores_equal": sum(a == b for a, b in zip(s_ours, s_theirs)) / n,
                      "differing_items": [items[k].id for k in differ],
                      "deterministic_across_rounds": deterministic},
        "prompts": prompts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"eval_throughput: {n} items, batch {args.batch_size}, {args.max_new_tokens} new tokens, "
          f"{os.cpu_count()} CPUs: ember {result['ember_samples_per_s']:.3f} samples/s, "
          f"lm-eval {result['lm_eval_samples_per_s']:.3f} samples/s, "
          f"ratio {result['ratio_ours_over_lm_eval']:.2f}x; accuracy "
          f"{result['accuracy']['ember']:.3f} vs {result['accuracy']['lm_eval']:.3f}; "
          f"identical generations {result['agreement']['identical_generations']:.0%}, "
          f"scores equal {result['agreement']['scores_equal']}; "
          f"prompts equal {prompts['prompt_strings_equal']} (ids {prompts['prompt_ids_equal']})")
    return result


if __name__ == "__main__":
    main()
