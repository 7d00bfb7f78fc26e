"""sft-chat output trains: rendered by the embedded model's chat template, one TRL SFT step
(on the tests' tiny model, which has that tokenizer and template: the step checks the
data path, not the weights)."""

import json

import pytest

from tests.conftest import FIXTURES, make_tiny_llama

DATASETS = ["agenttuning_os", "agenttuning_kg", "swe-gym_openhands_sampled_trajectories"]


@pytest.mark.slow
def test_sft_chat_renders_and_trains_one_trl_step(ember, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from ember.adp.export.sft_chat import tools_of
    from ember.llm.models import resolve_model

    rows = []
    for name in DATASETS:
        out = tmp_path / f"{name}.jsonl"
        ember("convert", FIXTURES / "adp" / name / "sample_raw.json", "--from", name,
              "--to", "sft-chat", "-o", out)
        rows += [json.loads(line) for line in out.open()]
    path = resolve_model("smollm2")
    tok = AutoTokenizer.from_pretrained(path)

    # Every tool call and tool result reaches the rendered text, and the assistant mask
    # covers exactly the assistant turns (what assistant-only loss trains on).
    for row in rows:
        text = tok.apply_chat_template(row["messages"], tools=tools_of(row), tokenize=False)
        for tool in tools_of(row):
            assert json.dumps(tool["function"]["name"]) in text
        text = text.split("<|im_end|>", 1)[1]  # past the system turn, which explains the syntax
        calls = [c for m in row["messages"] for c in m.get("tool_calls") or []]
        assert text.count("<tool_call>") == len(calls)
        assert text.count("<|im_start|>tool\n") == sum(m["role"] == "tool" for m in row["messages"])
    first = rows[0]
    enc = tok.apply_chat_template(first["messages"], tools=tools_of(first), return_dict=True,
                                  return_assistant_tokens_mask=True)
    trained = tok.decode([t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m])
    assistant = [m for m in first["messages"] if m["role"] == "assistant"]
    assert trained.count("<|im_end|>") == len(assistant)
    assert assistant[0]["content"] in trained
    assert first["messages"][0]["content"] not in trained  # the user's task is not trained on

    model = AutoModelForCausalLM.from_pretrained(make_tiny_llama(tmp_path / "tiny"))
    args = SFTConfig(output_dir=str(tmp_path / "run"), max_steps=1, per_device_train_batch_size=2,
                     max_length=512, assistant_only_loss=True, report_to=[], logging_steps=1,
                     use_cpu=True, save_strategy="no", disable_tqdm=True)
    # the rows as they are: TRL reads `tools` as JSON text
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows[:4]),
                         processing_class=tok)
    trainer.train()
    (log, *_) = trainer.state.log_history
    assert log["step"] == 1 and 0 < log["loss"] < 20
    assert log["num_tokens"] > 0
