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
    assert (len(data), empty) == (len(rows), [])  # every record keeps an assistant token
    row, rec = data[0], rows[0]
    # Cut before its first assistant token a record has nothing to learn: rejected, not kept.
    first = next(i for i, lab in enumerate(row["labels"]) if lab != -100)
    kept, truncated, empty = tokenize(rows[:1], tok, first, assistant_only=True)
    assert (kept, truncated) == ([], 1)
    assert [(r["reason"], r["record"]) for r in empty] == [("no-assistant-token", 0)]
    kept, truncated, empty = tokenize(rows[:1], tok, first + 1, assistant_only=True)
    assert (len(kept), truncated, empty) == (1, 1, [])
    assert sum(lab != -100 for lab in kept[0]["labels"]) == 1
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
           "--sft-max-length", "512", "--sft-learning-rate", "1e-3"]
    out = tmp_path / "sft"
    kill_ember_when(out / "sft" / "checkpoint-2" / "trainer_state.json", *run, "--out", out)
    assert not (out / "sft" / "model").exists()

    proc = ember(*run, "--out", out, "--resume", "--json")
    assert json.loads(proc.stdout)["stages"]["sft"] == str(out / "sft" / "model")
    state = json.loads((out / "sft" / "checkpoint-4" / "trainer_state.json").read_text())
    losses = [h for h in state["log_history"] if "loss" in h]
    assert [h["step"] for h in losses] == [1, 2, 3, 4]
    assert all(0 < h["loss"] < 20 for h in losses)
    rejects = [json.loads(line) for line in (out / "sft" / "rejects.jsonl").open()]
    assert [r["line"] for r in rejects[:2]] == [2, 4]
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "sft" / "model")


@pytest.mark.slow
def test_lora_packing_sft_then_rft_chain(ember, tmp_path, tiny_model, sft_data):
    out = tmp_path / "chain"
    proc = ember("train", "--stage", "sft,rft", "--model", tiny_model, "--data", sft_data,
                 "--sft-max-steps", "2", "--sft-batch-size", "2", "--sft-max-length", "256",
                 "--sft-packing", "--sft-lora-r", "4",
                 "--tasks", FIXTURES / "tasks" / "arithmetic.jsonl", "--selector", "uniform",
                 "--rft-max-steps", "1", "--rft-tasks-per-step", "2", "--rft-samples", "2",
                 "--rft-batch-size", "4", "--rft-max-new-tokens", "8",
                 "--rft-lora-r", "2", "--rft-lora-dropout", "0.1", "--out", out, "--json")
    stages = json.loads(proc.stdout)["stages"]
    assert stages == {"sft": str(out / "sft" / "model"), "rft": str(out / "rft" / "model")}
    # LoRA was merged: a plain model directory, no adapter left to load separately.
    assert not list((out / "sft" / "model").glob("adapter_*"))
    cfg = json.loads((out / "sft" / "model" / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 2
    # The RFT stage started from the SFT result: its weights are the SFT model's plus one
    # RFT step (lr 1e-6, so about 1e-6 per weight), far from the base model's, which SFT
    # moved by far more. An RFT started from the base would sit at the base.
    from safetensors.torch import load_file

    name = "model.layers.0.self_attn.q_proj.weight"
    base, sft, rft = (load_file(d / "model.safetensors")[name]
                      for d in (tiny_model, out / "sft" / "model", out / "rft" / "model"))
    moved_by_sft = (sft - base).abs().max().item()
    assert moved_by_sft > 1e-5
    assert (rft - sft).abs().max().item() < moved_by_sft / 10, "RFT did not start from SFT's model"
    assert not list((out / "rft" / "model").glob("adapter_*"))
    assert len((out / "rft" / "selection.jsonl").read_text().splitlines()) == 1
