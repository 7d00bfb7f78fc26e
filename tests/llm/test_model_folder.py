"""Model folders ember saves load the same with transformers 4.x as with 5.x.

CI has transformers 5 only, so `assert_reads_like_transformers_5` checks the fields that
transformers 4.x reads from each file, found by loading ember's folders with 4.57.6 (see
docs, "Portable model folders"): without them 4.x fails on the tokenizer class, reads
rope_theta as 10000 instead of 100000 and answers in garbage, and `extra_special_tokens`
as a list crashes it. The same folders are then loaded with the installed 5.x to show
that nothing changed for it.
"""

import json
import sys
from pathlib import Path

import pytest

from ember.llm.model_folder import (PORTABLE_TOKENIZER_CLASS, UPSTREAM, current_command,
                                    is_portable, make_portable)
from ember.llm.models import resolve_model

# What transformers 4.57.6 gave for this chat with the embedded folder (identical to 5.x).
CHAT = [{"role": "user", "content": "What is the capital of France?"}]
CHAT_IDS_4X = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28,
               7018, 411, 407, 19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282,
               4649, 47, 2, 198, 1, 520, 9531, 198]


def read(folder, name):
    return json.loads((Path(folder) / name).read_text())


def assert_reads_like_transformers_5(folder, base_model=None):
    """The fields transformers 4.x reads differently from 5.x, per file."""
    folder = Path(folder)
    config = read(folder, "config.json")
    rope = config.get("rope_parameters")
    if rope:
        # 4.x reads only the top-level copies (default rope_theta 10000, rope_scaling None)
        assert config.get("rope_theta") == rope["rope_theta"], "config.json: rope_theta"
        if rope.get("rope_type", "default") == "default":
            assert "rope_scaling" in config and config["rope_scaling"] is None
        else:
            scaling = config.get("rope_scaling") or {}
            assert scaling.get("rope_type") == rope["rope_type"], "config.json: rope_scaling"
            assert all(scaling.get(k) == v for k, v in rope.items()
                       if k not in ("rope_theta", "partial_rotary_factor"))
    assert config.get("torch_dtype", config.get("dtype")) == config.get("dtype")
    tok = read(folder, "tokenizer_config.json")
    # TokenizersBackend does not exist in 4.x; a model-specific class changes tokenization
    assert tok.get("tokenizer_class") == PORTABLE_TOKENIZER_CLASS, "tokenizer_class"
    assert (folder / "tokenizer.json").exists()
    if (folder / "chat_template.jinja").exists():  # 4.x before 4.43 reads only this field
        assert tok.get("chat_template") == (folder / "chat_template.jinja").read_text()
    assert not isinstance(tok.get("extra_special_tokens"), list), "extra_special_tokens"
    added = {t["content"]: t["id"] for t in read(folder, "tokenizer.json")["added_tokens"]}
    gen = read(folder, "generation_config.json")
    eos = gen["eos_token_id"] if isinstance(gen["eos_token_id"], list) else [gen["eos_token_id"]]
    assert added[tok["eos_token"]] in eos
    if "<|im_end|>" in tok.get("chat_template", ""):
        assert added["<|im_end|>"] in eos, "generation must stop at the end of the turn"
    assert gen["bos_token_id"] == added[tok["bos_token"]]
    assert gen["pad_token_id"] == added[tok["pad_token"]]
    card = (folder / "README.md").read_text()
    assert "```sh\n" in card and "ember" in card
    if base_model:
        assert f"\nbase_model: {base_model}\n" in card


def older_copy(src, dst):
    """`src` as ember saved it before make_portable existed (transformers 5 conventions),
    the weights linked, not copied."""
    dst.mkdir(parents=True)
    for f in Path(src).iterdir():
        if f.name in ("config.json", "tokenizer_config.json", "README.md"):
            continue
        (dst / f.name).symlink_to(f)
    config = read(src, "config.json")
    for key in ("rope_theta", "rope_scaling"):
        config.pop(key, None)
    (dst / "config.json").write_text(json.dumps(config))
    tok = read(src, "tokenizer_config.json")
    tok.pop("chat_template", None)
    tok["tokenizer_class"] = "TokenizersBackend"
    (dst / "tokenizer_config.json").write_text(json.dumps(tok))


def test_embedded_model_folder_is_portable_and_an_older_one_is_upgraded(tmp_path,
                                                                       monkeypatch):
    from transformers import AutoConfig, AutoTokenizer

    real = resolve_model("smollm2")
    assert_reads_like_transformers_5(real, UPSTREAM["smollm2"])
    old = tmp_path / "cache" / "models" / "smollm2"
    older_copy(real, old)
    with pytest.raises(AssertionError):  # the check catches what 4.x misreads
        assert_reads_like_transformers_5(old)
    assert not is_portable(old)
    monkeypatch.setenv("EMBER_CACHE", str(tmp_path / "cache"))
    assert resolve_model("smollm2") == str(old)  # brought up to date in place
    assert_reads_like_transformers_5(old, UPSTREAM["smollm2"])
    assert (old / "model.safetensors").is_symlink()  # the weights were left alone
    assert "made portable" in (old / "README.md").read_text()
    assert make_portable(old, base_model=UPSTREAM["smollm2"]) == {}  # idempotent
    # transformers 5 reads the portable folder as before: RoPE, tokenizer, chat ids
    config = AutoConfig.from_pretrained(old)
    assert config.rope_parameters == {"rope_theta": 100000.0, "rope_type": "default"}
    tok = AutoTokenizer.from_pretrained(old)
    assert type(tok).__name__ == "TokenizersBackend"
    assert tok.apply_chat_template(CHAT, add_generation_prompt=True,
                                   return_dict=False) == CHAT_IDS_4X


def test_trained_model_folder_is_portable(tmp_path):
    """`save_final` (what `ember train` ends with) on a real Trainer: a tiny Llama with
    scaled RoPE and an extra special token, started from an ember folder."""
    import torch
    from transformers import (AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM,
                              Trainer, TrainingArguments)

    from ember.train.checkpoints import save_final

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2"))
    tok.add_special_tokens({"extra_special_tokens": ["<tool_result>"]})
    tok.eos_token = "<|endoftext|>"  # as a base model's: the chat turn ends on another token
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 256}
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, tie_word_embeddings=True,
                      rope_parameters=rope, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    start = tmp_path / "sft-model"  # an earlier stage's result, with its ember card
    LlamaForCausalLM(cfg).save_pretrained(start)
    tok.save_pretrained(start)
    make_portable(start, base_model="smollm2", command="ember train --stage sft")
    model = LlamaForCausalLM.from_pretrained(start)
    trainer = Trainer(model=model, processing_class=tok,
                      args=TrainingArguments(output_dir=str(tmp_path / "run"), use_cpu=True,
                                             report_to="none"))
    out = save_final(trainer, tmp_path / "run" / "model",
                     command="ember train --stage rft --model x")
    assert sorted(p.name for p in out.parent.iterdir()) == ["model"]  # no .partial left
    assert_reads_like_transformers_5(out, UPSTREAM["smollm2"])  # the chain keeps the hub id
    card = (out / "README.md").read_text()
    assert str(start) in card and "ember train --stage rft --model x" in card
    assert read(out, "tokenizer_config.json")["additional_special_tokens"] == ["<tool_result>"]
    assert read(out, "generation_config.json")["eos_token_id"] == [0, 2]  # endoftext, im_end
    again = AutoConfig.from_pretrained(out)  # 5.x: the same RoPE as the model was built with
    assert again.rope_parameters == model.config.rope_parameters
    assert AutoTokenizer.from_pretrained(out).extra_special_tokens == ["<tool_result>"]


def test_current_command_names_the_ember_command(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/ember", "train", "--data", "a b.jsonl"])
    assert current_command() == "ember train --data 'a b.jsonl'"
    monkeypatch.setattr(sys, "argv", ["/src/ember/cli/main.py", "train", "--stage", "sft"])
    assert current_command() == "ember train --stage sft"
