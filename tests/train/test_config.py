"""ember train's configuration: YAML sets, flags override, mistakes are one-line errors."""

from pathlib import Path

import pytest

from ember.cli.options import options
from ember.train.config import TrainConfig, load_config
from tests.conftest import ROOT

CONFIGS = sorted((ROOT / "examples" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_configs_load_and_say_how_to_run_them(path):
    cfg = load_config(path)
    assert cfg.stages
    assert f"ember train --config examples/configs/{path.name}" in path.read_text()


def test_yaml_sets_and_overrides_win(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stage: sft,rft\nseed: 3\nrft:\n  selector: bots\n  max_steps: 7\n"
                    "  selector_args: {lam: 0.2}\n")
    cfg = load_config(path, {"rft.max_steps": 2, "seed": 5})
    assert cfg.stages == ["sft", "rft"]
    assert (cfg.seed, cfg.rft.selector, cfg.rft.max_steps) == (5, "bots", 2)
    assert cfg.rft.selector_args == {"lam": 0.2}
    assert cfg.sft.max_steps == -1  # untouched section keeps its defaults


@pytest.mark.parametrize("text, message", [
    ("rft:\n  max_stepz: 3\n", "unknown option 'max_stepz'"),
    ("stage: rl\n", "--stage must be sft, rft or sft,rft"),
    ("- a list\n", "expected a mapping"),
    ("rft: [1\n", "cannot read config"),
])
def test_bad_configs_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(path).stages


def test_every_field_is_a_flag_with_a_stable_stage_prefix():
    flags = {o.flag: o.key for o in options(TrainConfig)}
    assert len(flags) == len(options(TrainConfig))
    # stage options always carry their stage's prefix; a stage's inputs have plain flags
    assert {"--data", "--tasks", "--selector", "--reward", "--sft-max-steps", "--rft-max-steps",
            "--sft-learning-rate", "--rft-learning-rate", "--rft-use-vllm", "--stage",
            "--sft-lora-r", "--rft-lora-r"} <= set(flags)
    assert flags["--rft-max-steps"] == "rft.max_steps" and flags["--data"] == "sft.data"
    plain = {f for f in flags if not f.startswith(("--sft-", "--rft-"))}
    assert plain == {"--stage", "--model", "--out", "--seed", "--resume", "--bf16", "--report-to",
                     "--logging-steps", "--data", "--tasks", "--selector", "--selector-arg",
                     "--selector-column", "--reward", "--reward-weights", "--success-threshold",
                     "--env", "--search-index"}


def test_cli_errors_before_loading_anything(ember, tmp_path):
    proc = ember("train", "--stage", "rft", "--out", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "needs --tasks" in proc.stderr
    proc = ember("train", "--tasks", tmp_path / "missing.jsonl", "--out", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    proc = ember("train", "--config", Path("nope.yaml"), check=False)
    assert proc.returncode == 2 and "cannot read config" in proc.stderr
    proc = ember("train", "--selector-arg", "lam", "--tasks", "x", check=False)
    assert proc.returncode == 2 and "KEY=VALUE" in proc.stderr


def test_both_stages_take_the_same_lora_options_into_one_lora_config():
    from ember.train.config import RFTOptions, SFTOptions
    from ember.train.lora import lora_config

    for cls in (SFTOptions, RFTOptions):
        assert lora_config(cls()) is None  # lora_r 0: full fine-tuning
        peft = lora_config(cls(lora_r=4, lora_alpha=8, lora_dropout=0.1))
        assert (peft.r, peft.lora_alpha, peft.lora_dropout) == (4, 8, 0.1)
        assert peft.target_modules == "all-linear" and peft.task_type == "CAUSAL_LM"
