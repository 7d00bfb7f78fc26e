"""RFT on the search environment (`--env search`), as users run it: bots choosing HotpotQA
questions, multi-turn rollouts in which the policy calls the search tool over a real BM25
index; tool results come back as tool messages and are left out of the loss. The policy
is the tiny model primed to call the tool (the embedded model does not call tools before
SFT). Resume with tools is not tested here (single-turn resume: test_rft.py)."""

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


def prime_tool_caller(tiny_model, out, tasks):
    """The tiny model taught to answer every search prompt with one tool call (what SFT on
    tool-call trajectories does for a real model: the embedded one, before SFT, wrote a
    tool call in 0 of 16 samples of this prompt). 300 Adam steps on the call's tokens
    after each task's rendered prompt; the loss reads only those positions."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ember.evaluate.search_tool import question_prompt, tool_specs

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    target = tok(CALL, add_special_tokens=False)["input_ids"]
    texts = [tok.apply_chat_template([{"role": "user", "content": question_prompt(t["prompt"], 1)}],
                                     tools=tool_specs(), add_generation_prompt=True, tokenize=False)
             for t in tasks]
    prompts = [tok(text, add_special_tokens=False)["input_ids"] for text in texts]
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(300):
        prompt = prompts[step % len(prompts)]
        hidden = model.model(torch.tensor([prompt + target])).last_hidden_state[0]
        logits = model.lm_head(hidden[len(prompt) - 1:-1])
        torch.nn.functional.cross_entropy(logits, torch.tensor(target)).backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.slow
def test_two_bots_steps_call_the_tool_and_mask_its_results(ember, tmp_path, monkeypatch,
                                                            tiny_model):
    index = tmp_path / "index"
    build_index(DATA / "corpus.jsonl", index)
    tasks = _tasks(tmp_path / "tasks.jsonl")
    model = prime_tool_caller(tiny_model, tmp_path / "caller", _lines(tasks))
    monkeypatch.setenv("EMBER_RANK_LOG", "1")
    out = tmp_path / "run"
    # 480 tokens: the call (28), three paragraphs as the tool message (~410), a little more.
    summary = json.loads(ember(
        "train", "--model", model, "--tasks", tasks, "--env", "search",
        "--search-index", index, "--selector", "bots", "--reward", "qa,format",
        "--rft-tasks-per-step", "2", "--rft-samples", "2", "--rft-batch-size", "4",
        "--rft-max-new-tokens", "480", "--rft-max-tool-calls", "1",
        "--rft-temperature", "0.2", "--rft-max-steps", "2", "--rft-save-steps", "2",
        "--out", out, "--json").stdout)
    assert summary["rft"]["steps"] == 2
    selections = _lines(out / "rft" / "selection.jsonl")
    assert [s["step"] for s in selections] == [0, 1]
    assert all({"effective_ratio", "posterior_mean"} <= set(s["metrics"]) for s in selections)
    assert (out / "rft" / "checkpoint-2" / "selector_state.json").exists()

    # Tool calls happened, and what the environment said is exactly what was masked.
    state = json.loads((out / "rft" / "checkpoint-2" / "trainer_state.json").read_text())
    logged = [h for h in state["log_history"] if "tools/call_frequency" in h]
    assert len(logged) == 2 and all(h["tools/call_frequency"] > 0 for h in logged)
    assert all(h["tools/masked_tokens"] > 0 for h in logged)
    assert all("selection/effective_ratio" in h for h in logged)
    rows = [(m, t) for line in _lines(out / "rft" / "masked-0.jsonl")
            for m, t in zip(line["masked"], line["trained"])]
    assert len(rows) == 8 and all(m for m, _ in rows), "every rollout called the tool"
    for masked, trained in rows:
        assert masked.startswith("\n<|im_start|>tool\nDoc 1 (Title: ")
        assert masked.endswith("<|im_end|>\n<|im_start|>assistant\n")
        assert "<tool_call>" not in masked
        assert trained.startswith(CALL) and "Doc 1 (Title: " not in trained
