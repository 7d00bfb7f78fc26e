"""The embedded default model resolves to a real safetensors directory and generates."""

import pytest

from ember.llm.models import cache_dir, resolve_model


def test_local_directory_and_hub_id_pass_through(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("org/some-model") == "org/some-model"
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_model(str(tmp_path.parent))


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBER_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path


@pytest.mark.slow
def test_smollm2_loads_and_generates():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model("smollm2")
    assert resolve_model("smollm2") == path  # built once, then reused
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert "quantization_config" not in model.config.to_dict()
    inputs = tok.apply_chat_template([{"role": "user", "content": "What is 2+3?"}],
                                     add_generation_prompt=True, return_tensors="pt",
                                     return_dict=True)
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    reply = tok.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "5" in reply
