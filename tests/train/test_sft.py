"""SFT through the CLI on sft-chat data exported from real ADP samples (tiny model)."""

import json

import pytest

from tests.conftest import FIXTURES, kill_ember_when


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    """sft-chat records from two ADP datasets, plus two bad lines."""
    from tests.conftest import run_ember

    d = tmp_path_factory.mktemp("sft_data")
    lines = []
    for name in ("agenttuning_os", "code_feedback"):
        out = d / f"{name}.jsonl"
        run_ember("convert", FIXTURES / "adp" / name / "sample_raw.json", "--from", name,
                  "--to", "sft-chat", "-o", out)
        lines += out.read_text().splitlines()
    lines.insert(1, '{"messages": "not a list"}')
    lines.insert(3, '{"messages": [{"role": "user", "content": "hi"}]')  # truncated
    path = d / "sft.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_chatml_templates_get_generation_marks_and_others_are_refused():
    from types import SimpleNamespace

    from ember.train.sft import ensure_generation_marks

    tok = SimpleNamespace(chat_template="{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}")
    ensure_generation_marks(tok)
    assert "{%- generation -%}" in tok.chat_template
    tok = SimpleNamespace(chat_template="{% for m in messages %}[INST]{{ m.content }}{% endfor %}")
    with pytest.raises(ValueError, match="no-assistant-only-loss"):
        ensure_generation_marks(tok)


def test_tokenize_labels_only_assistant_tokens(tiny_model, sft_data):
    from transformers import AutoTokenizer

    from ember.train.sft import read_sft, tokenize

    rows, rejects = read_sft(str(sft_data))
    assert [r["line"] for r in rejects] == [2, 4]
    assert "no `messages` list" in rejects[0]["detail"]
    tok = AutoTokenizer.from_pretrained(tiny_model)
    data, truncated, empty = tokenize(rows, tok, 4096, assistant_only=True)
    assert len(data) + len(empty) == len(rows)
    row, rec = data[0], rows[0]
    trained = tok.decode([t for t, lab in zip(row["input_ids"], row["labels"]) if lab != -100])
    assistant = [m for m in rec["messages"] if m["role"] == "assistant"]
    assert trained.count("<|im_end|>") == len(assistant)
    user = next(m for m in rec["messages"] if m["role"] == "user")
    assert user["content"][:40] not in trained
    full, *_ = tokenize(rows[:1], tok, 4096, assistant_only=False)
    assert all(lab != -100 for lab in full[0]["labels"])


@pytest.mark.slow
def test_sft_trains_rejects_bad_lines_and_resumes_after_kill(ember, tmp_path, tiny_model, sft_data):
    run = ["train", "--stage", "sft", "--model", tiny_model, "--data", sft_data,
           "--sft-max-steps", "4", "--sft-save-steps", "2", "--sft-batch-size", "2",
           "--max-length", "512", "--sft-learning-rate", "1e-3"]
    out = tmp_path / "sft"
    kill_ember_when(out / "sft" / "checkpoint-2" / "trainer_state.json", *run, "--out", out)
    assert not (out / "sft" / "model").exists()

    proc = ember(*run, "--out", out, "--resume", "--json")
    assert json.loads(proc.stdout)["stages"]["sft"] == str(out / "sft" / "model")
    state = json.loads((out / "sft" / "checkpoint-4" / "trainer_state.json").read_text())
    losses = [h for h in state["log_history"] if "loss" in h]
    assert [h["step"] for h in losses] == [1, 2, 3, 4]
    assert all(0 < h["loss"] < 20 for h in losses)
    rejects = [json.loads(line) for line in (out / "sft" / "data.rejects.jsonl").open()]
    assert [r["line"] for r in rejects[:2]] == [2, 4]
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "sft" / "model")


@pytest.mark.slow
def test_lora_packing_sft_then_rft_chain(ember, tmp_path, tiny_model, sft_data):
    out = tmp_path / "chain"
    proc = ember("train", "--stage", "sft,rft", "--model", tiny_model, "--data", sft_data,
                 "--sft-max-steps", "2", "--sft-batch-size", "2", "--max-length", "256",
                 "--packing", "--sft-lora-r", "4",
                 "--tasks", FIXTURES / "tasks" / "arithmetic.jsonl", "--selector", "uniform",
                 "--rft-max-steps", "1", "--tasks-per-step", "2", "--num-generations", "2",
                 "--rft-batch-size", "4", "--max-completion-length", "8", "--out", out, "--json")
    stages = json.loads(proc.stdout)["stages"]
    assert stages == {"sft": str(out / "sft" / "model"), "rft": str(out / "rft" / "model")}
    # LoRA was merged: a plain model directory, no adapter left to load separately.
    assert not list((out / "sft" / "model").glob("adapter_*"))
    cfg = json.loads((out / "sft" / "model" / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 2
    # The RFT stage started from the SFT result (its config.yaml records the chain).
    assert "sft,rft" in (out / "config.yaml").read_text()
    assert len((out / "rft" / "selection.jsonl").read_text().splitlines()) == 1
