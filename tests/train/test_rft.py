"""RFT: prompts cut to max_prompt_length (fast), then through the CLI, as users run it.

- Fast, no training: an over-long task prompt keeps its last tokens and fits the limit,
  both in `fit_prompt` and in the rows `run_rft` hands to the trainer.
- A tiny random model (fast) with a reward that depends on the generated text: the
  reward TRL logs is the pass rate the selector was given, and a run SIGKILLed after its
  third checkpoint resumes into exactly the selections (and pass rates) of an
  uninterrupted run.

`bots` on the embedded model (selection metrics in selection.jsonl and TRL's log history,
the selector's state in the checkpoint, a resume) is tested on the search environment:
tests/train/test_rft_search.py.
"""

import json

import pytest

from tests.conftest import FIXTURES, kill_ember_when

TASKS = FIXTURES / "tasks" / "arithmetic.jsonl"
LONG = " ".join(f"item{i}" for i in range(300)) + ". How many items are listed?"


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_an_over_long_prompt_keeps_its_last_tokens_and_fits(tokenizer):
    from ember.evaluate.tasks import task_item
    from ember.train.rft import fit_prompt, prompt_length

    messages = task_item({"id": "long", "prompt": LONG, "answer": "300"}).messages
    full = prompt_length(messages, tokenizer)
    assert full > 300
    assert fit_prompt(messages, tokenizer, full) == (messages, False)
    assert fit_prompt(messages, tokenizer, 0) == (messages, False)  # 0 = no limit
    for limit in (full - 1, 100, 40):
        cut, was_cut = fit_prompt(messages, tokenizer, limit)
        assert was_cut and limit - 2 <= prompt_length(cut, tokenizer) <= limit
        text, kept = messages[-1]["content"], cut[-1]["content"]
        assert text.endswith(kept) and len(kept) < len(text)
        assert kept.endswith("How many items are listed?\n\nSolve the problem step by step, "
                             "then give the final answer inside \\boxed{}.") or limit == 40
    # The chat around the text (system prompt, role markers) is kept, not cut.
    rendered = tokenizer.apply_chat_template(cut, add_generation_prompt=True, tokenize=False)
    assert rendered.startswith("<|im_start|>system") and rendered.endswith("<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="max_prompt_length=10 leaves no room"):
        fit_prompt(messages, tokenizer, 10)


def test_run_rft_hands_the_trainer_prompts_within_max_prompt_length(tmp_path, tiny_model,
                                                                    monkeypatch):
    """From the option to the dataset TRL generates from: fails if the option is ignored."""
    from ember.evaluate.tasks import task_item
    from ember.train import grpo_trainer
    from ember.train.config import load_config
    from ember.train.rft import prompt_length, run_rft

    tasks = [{"id": "long", "prompt": LONG, "answer": "300"},
             {"id": "short", "prompt": "What is 1 + 1?", "answer": "2"}]
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    seen = {}

    class Built(Exception):
        pass

    class RecordingTrainer:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def train(self, **_):
            raise Built

    monkeypatch.setattr(grpo_trainer, "SelectiveGRPOTrainer", RecordingTrainer)
    cfg = load_config(overrides={"rft.tasks": str(path), "rft.max_prompt_length": 64,
                                 "rft.tasks_per_step": 2, "rft.samples": 2,
                                 "rft.batch_size": 4})
    with pytest.raises(Built):
        run_rft(cfg, str(tiny_model), tmp_path / "rft")
    rows, tok = seen["train_dataset"], seen["processing_class"]
    assert prompt_length(task_item(tasks[0]).messages, tok) > 64
    assert [prompt_length(r["prompt"], tok) <= 64 for r in rows] == [True, True]
    assert rows[0]["prompt"][-1]["content"].endswith("inside \\boxed{}.")
    assert rows[1]["prompt"] == task_item(tasks[1]).messages  # short prompts untouched


def _selections(out):
    return [json.loads(line) for line in (out / "rft" / "selection.jsonl").open()]


RUN = ["train", "--tasks", TASKS, "--selector", "bots",
       "--reward", "tests.train.toy_rewards:even_length", "--rft-tasks-per-step", "2",
       "--rft-samples", "4", "--rft-batch-size", "4", "--rft-max-new-tokens", "12",
       "--rft-max-steps", "6", "--rft-save-steps", "3", "--rft-learning-rate", "1e-3"]


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_selections(ember, tmp_path, tiny_model):
    run = [*RUN, "--model", tiny_model]
    straight = tmp_path / "straight"
    ember(*run, "--out", straight)
    steps = _selections(straight)
    assert [s["step"] for s in steps] == list(range(6))
    rates = [p for s in steps for p in s["pass_rate"]]
    assert 0 < sum(rates) < len(rates), "outcomes should vary, or the test proves little"
    # The reward TRL logs for a step is the pass rate the selector saw (a 0/1 reward).
    state = json.loads((straight / "rft" / "checkpoint-6" / "trainer_state.json").read_text())
    logged = [h for h in state["log_history"] if "selection/effective_ratio" in h]
    assert [h["rewards/even_length/mean"] for h in logged] == pytest.approx(
        [sum(s["pass_rate"]) / len(s["pass_rate"]) for s in steps])

    resumed = tmp_path / "resumed"
    kill_ember_when(resumed / "rft" / "checkpoint-3" / "selector_state.json", *run, "--out", resumed)
    assert not (resumed / "rft" / "model").exists()

    # Without --resume the half-done run is not silently overwritten.
    again = ember(*run, "--out", resumed, check=False)
    assert again.returncode == 2 and "--resume" in again.stderr

    ember(*run, "--out", resumed, "--resume")
    got = _selections(resumed)
    assert [s["step"] for s in got] == list(range(6))
    assert [s["task_ids"] for s in got] == [s["task_ids"] for s in steps]
    assert [s["pass_rate"] for s in got] == [s["pass_rate"] for s in steps]
