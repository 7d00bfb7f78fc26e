"""lm-eval interop: lm-eval's tasks reproduced (prompts, few-shot examples, filters,
metrics), and `ember eval` results in lm-eval's layout.

- Without lm-eval: a scripted endpoint answers gsm8k items in known ways; the scores,
  the lm-eval results file (read the way lm_eval.utils.make_table reads it, or by
  make_table itself when lm-eval is installed) and the samples files are checked.
- With lm-eval (the `bench` extra): lm-eval builds its own gsm8k, gsm8k_cot and
  minerva_math500 from the same local data; its prompts equal ember's item for item, and
  its filters and metrics give ember's values on the same responses. A slow test runs both
  harnesses on one small local model and compares every response and figure.
"""

import dataclasses
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ember.evaluate.benchmarks import data_file, load_benchmark
from ember.evaluate.scoring import get_scorer
from tests.conftest import make_tiny_llama
from tests.llm.test_backends import ok, scripted_server

HAS_LM_EVAL = importlib.util.find_spec("lm_eval") is not None
needs_lm_eval = pytest.mark.skipif(
    not HAS_LM_EVAL, reason="lm-eval is not installed (pip install 'ember[bench]'): the "
                            "comparison with lm-eval's own tasks needs it")


def lm_eval_files(run: Path):
    (folder,) = (run / "lm-eval").iterdir()
    (results,) = folder.glob("results_*.json")
    return json.loads(results.read_text()), {
        p.name: [json.loads(line) for line in p.open()] for p in folder.glob("samples_*.jsonl")}


def table_rows(results: dict) -> list[tuple]:
    """What lm_eval.utils.make_table reads, read the way it reads it: per task, its
    version, n-shot and higher_is_better, and each "metric,filter" value with its
    "metric_stderr,filter" (a float or "N/A")."""
    rows = []
    for task, values in results["results"].items():
        version = results["versions"].get(task, "N/A")
        n_shot = results.get("n-shot", {}).get(task, " ")
        hib = results.get("higher_is_better", {}).get(task, {})
        values = dict(values)
        name = values.pop("alias", task)
        values.pop("name", None), values.pop("sample_len", None)
        for key, value in sorted(values.items()):
            metric, _, filt = key.partition(",")
            if metric.endswith("_stderr"):
                continue
            stderr = values[f"{metric}_stderr,{filt}"]
            assert isinstance(value, (int, float)) and (stderr == "N/A" or isinstance(
                stderr, (int, float))), (key, value, stderr)
            rows.append((name, version, filt, n_shot, metric, hib.get(metric), value, stderr))
    return rows


@pytest.mark.slow  # two `ember eval` processes: ~16 s on 2 idle cores
def test_gsm8k_is_lm_evals_and_its_results_read_like_lm_evals(ember, tmp_path):
    """Four gsm8k items answered in known ways: strict and flexible both right, only
    flexible right, wrong, nothing. ember's figures, its lm-eval results file (through
    make_table when lm-eval is installed) and the samples files say the same."""
    items = load_benchmark("gsm8k").load()[:4]
    golds = [it.gold.split("#### ")[-1] for it in items]
    replies = [f" She makes 9 * 2 = $18.\n#### {golds[0]}\n\n",      # strict + flexible
               f" So the answer is {golds[1]}.",                    # flexible only
               f" 1 + 1 = 2\n#### {int(golds[2]) + 1}",             # wrong both ways
               ""]
    by_prompt = {it.prompt: reply for it, reply in zip(items, replies)}

    def answer(k, path, body, headers):
        if path.endswith("/chat/completions"):  # mawps: ember's chat protocol
            return 200, ok(path, body, "\\boxed{1}"), 0
        assert body["stop"] == ["Question:", "</s>", "<|im_end|>"]  # lm-eval's: completions
        return 200, ok(path, body, by_prompt[body["prompt"]]), 0

    run = tmp_path / "run"
    with scripted_server(answer) as (url, seen, _):
        results = json.loads(ember("eval", "--backend", "openai", "--base-url", url,
                                   "--model", "scripted/m", "--max-retries", "0",
                                   "--benchmarks", "gsm8k,mawps", "--limit", "4",
                                   "--out", run, "--json").stdout)
    metrics = results["benchmarks"]["gsm8k"]["metrics"]
    assert metrics["exact_match,strict-match"]["value"] == pytest.approx(0.25)
    assert metrics["exact_match,flexible-extract"]["value"] == pytest.approx(0.5)
    assert metrics["score"]["value"] == pytest.approx(0.25)  # score = strict-match

    lm, samples = lm_eval_files(run)
    assert results["lm_eval_results"].startswith("lm-eval/scripted__m/results_")
    assert lm["results"]["gsm8k"]["exact_match,strict-match"] == pytest.approx(0.25)
    assert lm["results"]["gsm8k"]["exact_match_stderr,flexible-extract"] == pytest.approx(
        (1 / 3) ** 0.5 / 2)  # sample stddev of [1, 1, 0, 0] over sqrt(4)
    assert lm["versions"]["gsm8k"] == 3.0 and lm["n-shot"]["gsm8k"] == 5
    assert lm["configs"]["gsm8k"]["filter_list"][0]["name"] == "strict-match"
    assert lm["higher_is_better"]["gsm8k"] == {"exact_match": True}
    assert lm["n-samples"]["gsm8k"] == {"original": 1319, "effective": 4}
    assert lm["config"]["model_args"]["pretrained"] == "scripted/m"
    assert "score,none" in lm["results"]["mawps"] and lm["n-shot"]["mawps"] == 0
    rows = table_rows(lm)
    assert ("gsm8k", 3.0, "flexible-extract", 5, "exact_match", True, 0.5) in \
        [r[:7] for r in rows]
    if HAS_LM_EVAL:
        from lm_eval.utils import make_table

        table = make_table(lm)
        assert re.search(r"\|gsm8k\s*\|\s*3\|flexible-extract\|\s*5\|exact_match\|↑\s*\|\s*0\.50*\|",
                         table), table
        assert "strict-match" in table and "mawps" in table

    (gsm,) = [v for k, v in samples.items() if k.startswith("samples_gsm8k_")]
    assert [(r["doc_id"], r["filter"]) for r in gsm] == \
        [(i, f) for f in ("strict-match", "flexible-extract") for i in range(4)]
    assert [r["filtered_resps"] for r in gsm[:4]] == \
        [[golds[0]], ["[invalid]"], [str(int(golds[2]) + 1)], ["[invalid]"]]
    assert [r["filtered_resps"] for r in gsm[4:]] == \
        [[golds[0]], [f"{golds[1]}."], [str(int(golds[2]) + 1)], ["[invalid]"]]
    assert [r["exact_match"] for r in gsm] == [1, 0, 0, 0, 1, 1, 0, 0]
    first = gsm[0]
    assert first["doc"] == {"question": items[0].meta["doc"]["question"],
                            "answer": items[0].gold}
    assert first["target"] == items[0].gold and first["resps"] == [[replies[0]]]
    assert first["arguments"]["gen_args_0"]["arg_0"] == items[0].prompt
    assert first["arguments"]["gen_args_0"]["arg_1"]["until"] == ["Question:", "</s>",
                                                                  "<|im_end|>"]
    assert first["metrics"] == ["exact_match"]
    import hashlib
    assert first["prompt_hash"] == hashlib.sha256(items[0].prompt.encode()).hexdigest()

    # Rescoring rewrites the lm-eval files: still one results file, same figures.
    ember("eval", "rescore", run)
    again, _ = lm_eval_files(run)
    assert again["results"]["gsm8k"] == lm["results"]["gsm8k"]


def test_old_gsm8k_samples_are_not_resumed_as_lm_evals(tmp_path):
    """A directory holding samples of ember's former gsm8k (one chat turn, \\boxed{}) is
    refused, not resumed or rescored under lm-eval's protocol."""
    from ember.evaluate.runner import EvalConfig, rescore, run_eval

    out = tmp_path / "run"
    out.mkdir()
    cfg = EvalConfig(benchmarks=["gsm8k"], out=str(out), limit=1)
    (out / "run.json").write_text(json.dumps({"config": dataclasses.asdict(cfg)}))
    (out / "samples.jsonl").write_text(json.dumps(
        {"benchmark": "gsm8k", "id": "0", "sample": 0, "response": "\\boxed{18}",
         "extracted": "18", "gold": "18", "metrics": {"score": 1.0}}) + "\n")
    with pytest.raises(ValueError, match="another protocol.*gsm8k-boxed"):
        rescore(out)
    with pytest.raises(ValueError, match="another protocol"):
        run_eval(cfg)


# --- against lm-eval itself ----------------------------------------------------------------


def local_tasks(folder: Path) -> Path:
    """lm-eval's own task YAMLs, only pointed at ember's local copies of the data."""
    import lm_eval

    tasks = Path(lm_eval.__file__).parent / "tasks"
    gsm = {"dataset_path": "json", "dataset_name": None, "dataset_kwargs": {"data_files": {
        "train": str(data_file("gsm8k_train.jsonl.gz")),
        "test": str(data_file("gsm8k_test.jsonl.gz"))}}}
    specs = {"gsm8k": (tasks / "gsm8k" / "gsm8k.yaml", gsm),
             "gsm8k_cot": (tasks / "gsm8k" / "gsm8k-cot.yaml", gsm),
             "minerva_math500": (tasks / "minerva_math" / "minerva_math500.yaml", {
                 "dataset_path": "json", "dataset_name": None, "dataset_kwargs": {
                     "data_files": {"test": str(data_file("math500.jsonl.gz"))}}})}
    folder.mkdir(exist_ok=True)
    for name, (include, override) in specs.items():
        (folder / f"local_{name}.yaml").write_text(json.dumps(
            {"include": str(include), "task": f"local_{name}", **override}))
    return folder


def lm_eval_task(name: str, tmp_path: Path):
    import os

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lm_eval.tasks import TaskManager, get_task_dict

    # only the three local tasks are indexed (lm-eval's thousands of YAMLs take ~30 s)
    manager = TaskManager(include_path=str(local_tasks(tmp_path / "tasks")),
                          include_defaults=False)
    task = get_task_dict([f"local_{name}"], manager)[f"local_{name}"]
    import inspect

    from lm_eval import simple_evaluate

    # lm-eval's own default seed, as `lm_eval --tasks ...` uses it (not ember's constant)
    task.set_fewshot_seed(inspect.signature(simple_evaluate).parameters[
        "fewshot_random_seed"].default)
    return task


RESPONSES = {  # responses that exercise each filter and metric, per task
    "gsm8k": [" 16 - 3 - 4 = 9, 9 * 2 = $18\n#### 18", " The answer is 3.", " #### 1,000.",
              " $70,000 profit\n#### 70000.", " #### -5 and then 7", "no number", "",
              " #### 540\n\nQuestion: what"],
    "gsm8k_cot": [" 16 - 3 - 4 = 9. 9 * 2 = 18. The answer is 18.", " The answer is 3",
                  " so 3 and the answer is $70,000.", " The answer is 540.", "none", ""],
    "minerva_math500": [
        " Final Answer: The final answer is $\\left( 3, \\frac{\\pi}{2} \\right)$. I hope it "
        "is correct.", " $\\boxed{3}$ Final Answer: The final answer is $p - q$. I hope it "
        "is correct.", " Final Answer: The final answer is $\\frac{28}{6}$. I hope it is correct.",
        " Final Answer: The final answer is 9 degrees. I hope it is correct.",
        " so it is \\boxed{\\text{Evelyn}}.", " Final Answer: The final answer is $42$",
        "", " Final Answer: The final answer is $0.5$. I hope it is correct."],
}


@pytest.mark.slow  # lm-eval builds its task: 2-10 s each
@needs_lm_eval
@pytest.mark.parametrize("name", ["gsm8k", "gsm8k_cot", "minerva_math500"])
def test_prompts_and_scores_are_lm_evals(name, tmp_path):
    """lm-eval builds its task from the same data: the first 8 prompts (few-shot examples
    included), stop strings, targets and docs equal ember's; lm-eval's filters and
    process_results on the same responses give ember's values."""
    task = lm_eval_task(name, tmp_path)
    limit = 8
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    instances = sorted(task.instances, key=lambda inst: inst.doc_id)
    bench = load_benchmark(name)
    items = bench.load()[:limit]
    assert [inst.args[0] for inst in instances] == [it.prompt for it in items]
    assert all(inst.args[1]["until"] == bench.stop for inst in instances)
    assert [task.doc_to_target(inst.doc) for inst in instances] == [it.gold for it in items]
    assert [dict(inst.doc) for inst in instances] == [it.meta["doc"] for it in items]
    assert task.VERSION == bench.lm_eval.version if hasattr(task, "VERSION") and \
        isinstance(task.VERSION, float) else task.config.metadata["version"] == \
        bench.lm_eval.version
    assert task.config.num_fewshot == bench.lm_eval.num_fewshot

    replies = (RESPONSES[name] * 2)[:limit]
    for inst, reply in zip(instances, replies):
        inst.resps = [reply]
    task.apply_filters()
    scorer = get_scorer(bench.scorer)
    for inst, item, reply in zip(instances, items, replies):
        ours = scorer(reply, item)
        for filt in bench.lm_eval.filters:
            theirs = task.process_results(inst.doc, [inst.filtered_resps[filt]])
            assert set(theirs) == set(bench.lm_eval.metrics)
            for metric, value in theirs.items():
                assert ours[f"{metric},{filt}"] == value, (reply, metric, filt)
            assert ours["filtered"][filt] == inst.filtered_resps[filt]


def tiny_model(path: Path) -> Path:
    """The tests' tiny random Llama with a context long enough for a 5-shot gsm8k prompt:
    both harnesses generate from it in seconds."""
    return make_tiny_llama(path, max_position_embeddings=4096)


LM_EVAL_DRIVER = """
import json, os, sys
os.environ["HF_DATASETS_OFFLINE"] = os.environ["HF_HUB_OFFLINE"] = "1"
from lm_eval import simple_evaluate
from lm_eval.tasks import TaskManager
model, include, tasks, limit, out = sys.argv[1:]
r = simple_evaluate(model="hf", model_args=f"pretrained={model},dtype=float32",
                    tasks=tasks.split(","), limit=int(limit), batch_size=1, device="cpu",
                    gen_kwargs="max_gen_toks=48",
                    log_samples=True, task_manager=TaskManager(include_path=include))
json.dump({"results": r["results"], "samples": r["samples"]}, open(out, "w"), default=str)
"""


@pytest.mark.slow
@needs_lm_eval
def test_same_responses_and_figures_as_lm_eval_on_one_model(ember, tmp_path):
    """lm-eval (its hf model) and `ember eval` (hf backend) on the same local model and
    the first 2 gsm8k and minerva_math500 items (48 new tokens, in both): the same raw and
    filtered responses per item and filter, and the same figures."""
    model = tiny_model(tmp_path / "model")
    names, limit = ["gsm8k", "minerva_math500"], 2
    include = local_tasks(tmp_path / "tasks")
    out = tmp_path / "lm_eval.json"
    subprocess.run([sys.executable, "-c", LM_EVAL_DRIVER, str(model), str(include),
                    ",".join(f"local_{n}" for n in names), str(limit), str(out)], check=True,
                   capture_output=True)
    theirs = json.loads(out.read_text())
    run = tmp_path / "run"
    ember("eval", "--model", model, "--benchmarks", ",".join(names), "--limit", limit,
          "--batch-size", "1", "--max-new-tokens", "48", "--out", run)
    lm, samples = lm_eval_files(run)
    for name in names:
        ours_rows = next(v for k, v in samples.items() if k.startswith(f"samples_{name}_"))
        their_rows = theirs["samples"][f"local_{name}"]
        key = lambda r: (r["filter"], r["doc_id"])  # noqa: E731
        pairs = list(zip(sorted(ours_rows, key=key), sorted(their_rows, key=key)))
        assert len(pairs) == limit * len(load_benchmark(name).lm_eval.filters)
        for ours, t in pairs:
            assert (ours["doc_id"], ours["filter"]) == (t["doc_id"], t["filter"])
            assert ours["resps"] == t["resps"] and ours["filtered_resps"] == t["filtered_resps"]
            assert ours["prompt_hash"] == t["prompt_hash"]
            assert ours["target_hash"] == t["target_hash"]
            for metric in t["metrics"]:
                assert ours[metric] == t[metric], (name, metric, t["doc_id"])
        for key_, value in theirs["results"][f"local_{name}"].items():
            if "," in key_:
                assert lm["results"][name][key_] == pytest.approx(value), (name, key_)


def latex_parser_works() -> bool:
    try:
        from ember.evaluate.lm_eval_tasks import check_latex_parser

        check_latex_parser()
        return True
    except ValueError:
        return False


@pytest.mark.slow  # sympy's LaTeX parser and math-verify load: ~5 s
@pytest.mark.skipif(not latex_parser_works(), reason="minerva_math500's exact_match needs "
                    "sympy's LaTeX parser, i.e. antlr4-python3-runtime 4.11 (the bench extra)")
def test_minerva_math500_scores_known_responses():
    """Minerva's normalisation and sympy equivalence (exact_match) and math-verify on the
    whole response (math_verify), on the first items of MATH-500: values known here and
    checked against lm-eval's own process_results in test_prompts_and_scores_are_lm_evals."""
    bench = load_benchmark("minerva_math500")
    items = bench.load()[:8]
    assert items[0].gold == "\\left(3,\\frac{\\pi}{2}\\right)" and items[3].gold == "9"
    assert items[0].prompt.startswith("Problem:\nFind the domain of the expression")
    assert items[0].prompt.endswith("\\theta < 2 \\pi.$\n\nSolution:")
    assert items[0].prompt.count("I hope it is correct.\n\nProblem:\n") == 4
    score = get_scorer(bench.scorer)
    got = [(m["extracted"], m["exact_match,none"], m["math_verify,none"])
           for m in (score(r, it) for r, it in zip(RESPONSES["minerva_math500"], items))]
    assert got == [("\\left(3,\\frac{\\pi}{2}\\right)", 1, 1), ("p-q", 1, 1),
                   ("\\frac{28}{6}", 1, 1),          # sympy: 28/6 - 14/3 simplifies to 0
                   ("9", 1, 1),                      # "degrees" removed
                   ("[invalidanswer]", 0, 1),        # no "Final Answer:", math-verify reads \boxed
                   ("[invalidanswer]", 0, 1),        # no ". I hope it is correct."
                   ("[invalidanswer]", 0, 0), ("0.5", 0, 0)]
