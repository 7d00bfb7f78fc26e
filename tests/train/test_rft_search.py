"""RFT on the search environment (`--env search`), as users run it: bots choosing HotpotQA
questions, multi-turn rollouts in which the policy calls the search tool over a real BM25
index; tool results come back as tool messages and are left out of the loss; a run
resumed from its checkpoint makes the same selections. The policy is the embedded model,
primed first to call the tool (before SFT it wrote a tool call in 0 of 16 samples of this
prompt; 4 Adam steps on one call teach it, ~20 s)."""

import json

import pytest

from ember.evaluate.search import build_index
from tests.conftest import ROOT

DATA = ROOT / "examples" / "data" / "search"


def _tasks(path, n=6):
    rows = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines()[:n]]
    path.write_text("".join(json.dumps({"id": r["id"], "prompt": r["question"],
                                        "answer": r["answer"], "scorer": "qa"}) + "\n"
                            for r in rows))
    return path


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_env_options_are_checked_before_any_model_loads(ember, tmp_path):
    tasks = _tasks(tmp_path / "t.jsonl")
    proc = ember("train", "--tasks", tasks, "--env", "search", "--out", tmp_path / "a",
                 check=False)
    assert proc.returncode == 2 and "--search-index" in proc.stderr
    proc = ember("train", "--tasks", tasks, "--env", "web", "--search-index", tmp_path,
                 "--out", tmp_path / "b", check=False)
    assert proc.returncode == 2 and "--env must be one of none, search" in proc.stderr
    proc = ember("train", "--tasks", tasks, "--search-index", tmp_path, "--out", tmp_path / "c",
                 check=False)
    assert proc.returncode == 2 and "only with --env search" in proc.stderr


CALL = '<tool_call>{"name": "search", "arguments": {"query": "film director"}}</tool_call><|im_end|>'


def prime_tool_caller(model_path, out, tasks, steps=4, lr=3e-4):
    """The model taught to answer every search prompt with one tool call (what SFT on
    tool-call trajectories does): Adam steps on the call's tokens after each task's
    rendered prompt; the loss reads only those positions."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ember.evaluate.search_tool import question_prompt, tool_specs

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    target = tok(CALL, add_special_tokens=False)["input_ids"]
    texts = [tok.apply_chat_template([{"role": "user", "content": question_prompt(t["prompt"], 1)}],
                                     tools=tool_specs(), add_generation_prompt=True, tokenize=False)
             for t in tasks]
    prompts = [tok(text, add_special_tokens=False)["input_ids"] for text in texts]
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        prompt = prompts[step % len(prompts)]
        hidden = model.model(torch.tensor([prompt + target])).last_hidden_state[0]
        logits = model.lm_head(hidden[len(prompt) - 1:-1])
        torch.nn.functional.cross_entropy(logits, torch.tensor(target)).backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def short_corpus(path):
    """The demo's corpus with each paragraph cut to its first sentence: a real BM25 index
    whose tool messages are ~100 tokens instead of ~400 (the rollouts' forward and
    backward passes are most of this test's time)."""
    import re

    with open(path, "w") as f:
        for line in (DATA / "corpus.jsonl").read_text().splitlines():
            doc = json.loads(line)
            m = re.match(r"(.+?[.!?])(\s|$)", doc["text"])
            f.write(json.dumps(doc | {"text": (m.group(1) if m else doc["text"])[:200]}) + "\n")
    return path


@pytest.mark.slow
def test_two_bots_steps_on_the_embedded_model_call_the_tool_mask_it_and_resume(
        ember, tmp_path, monkeypatch):
    from ember.llm.models import resolve_model
    from ember.train.grpo_trainer import _from_jsonable
    from ember.train.selectors import load_selector

    index = tmp_path / "index"
    build_index(short_corpus(tmp_path / "corpus.jsonl"), index)
    tasks = _tasks(tmp_path / "tasks.jsonl")
    model = prime_tool_caller(resolve_model("smollm2"), tmp_path / "caller", _lines(tasks))
    monkeypatch.setenv("EMBER_RANK_LOG", "1")
    out = tmp_path / "run"
    # one task a step, 2 rollouts; 240 tokens: the call (28), the tool message (~100), more
    run = ["train", "--model", model, "--tasks", tasks, "--env", "search",
           "--search-index", index, "--selector", "bots", "--reward", "qa,format",
           "--rft-tasks-per-step", "1", "--rft-samples", "2", "--rft-batch-size", "2",
           "--rft-max-new-tokens", "240", "--rft-max-tool-calls", "1",
           "--rft-temperature", "0.2", "--rft-max-steps", "2", "--rft-save-steps", "1",
           "--out", out]
    summary = json.loads(ember(*run, "--json").stdout)
    assert summary["stages"]["rft"] == str(out / "rft" / "model")
    assert summary["rft"]["steps"] == 2 and 0 <= summary["rft"]["effective_ratio"] <= 1
    selections = _lines(out / "rft" / "selection.jsonl")
    assert [s["step"] for s in selections] == [0, 1]
    for s in selections:
        assert len(s["task_ids"]) == 1 and all(p in (0.0, 0.5, 1.0) for p in s["pass_rate"])
        assert {"effective_ratio", "strict_ratio", "posterior_mean", "select_ms"} <= set(s["metrics"])

    # Tool calls happened, and what the environment said is exactly what was masked.
    state = json.loads((out / "rft" / "checkpoint-2" / "trainer_state.json").read_text())
    logged = [h for h in state["log_history"] if "tools/call_frequency" in h]
    assert len(logged) == 2 and all(h["tools/call_frequency"] > 0 for h in logged)
    assert all(h["tools/masked_tokens"] > 0 for h in logged)
    assert all("selection/effective_ratio" in h and "selection/posterior_mean" in h
               for h in logged)  # the selector's metrics reach TRL's loggers
    rows = [(m, t) for line in _lines(out / "rft" / "masked-0.jsonl")
            for m, t in zip(line["masked"], line["trained"])]
    assert len(rows) == 4 and all(m for m, _ in rows), "every rollout called the tool"
    for masked, trained in rows:
        assert masked.startswith("\n<|im_start|>tool\nDoc 1 (Title: ")
        assert masked.endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert "<tool_call>" not in masked
        assert trained.startswith(CALL) and "Doc 1 (Title: " not in trained

    # bots' state in the checkpoint restores to the same posterior.
    saved = json.loads((out / "rft" / "checkpoint-1" / "selector_state.json").read_text())
    sel = load_selector("bots", n_tasks=6)
    sel.load_state_dict(_from_jsonable(saved))
    assert sel.alpha.sum() + sel.beta.sum() == pytest.approx(
        sum(saved["alpha"]["__ndarray__"]) + sum(saved["beta"]["__ndarray__"]))

    # Resume: the run as a kill after its first checkpoint leaves it (checkpoint-1, the
    # logs of both steps, no final model; a real SIGKILL: test_rft.py), continued with
    # --resume, selects and scores step 1 as the uninterrupted run did.
    import shutil

    shutil.rmtree(out / "rft" / "checkpoint-2")
    shutil.rmtree(out / "rft" / "model")
    ember(*run, "--resume")
    resumed = _lines(out / "rft" / "selection.jsonl")
    assert [s["step"] for s in resumed] == [0, 1]
    assert [(s["task_ids"], s["pass_rate"]) for s in resumed] == \
        [(s["task_ids"], s["pass_rate"]) for s in selections]
    assert (out / "rft" / "model" / "model.safetensors").exists()
