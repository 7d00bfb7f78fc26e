"""Checkpoints and final models of `ember train`: where the last checkpoint is, and saving
the trained model whole.

    from ember.train.checkpoints import last_checkpoint, save_final
    save_final(trainer, Path("runs/rft/rft/model"))
"""

from __future__ import annotations

from pathlib import Path

from ember.adp.io import publish
from ember.llm.model_folder import make_portable


def last_checkpoint(out: Path) -> Path | None:
    found = [p for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def save_final(trainer, path: Path, base_model: str | None = None,
               command: str | None = None) -> Path:
    """Save the trained model and tokenizer to `path` (all or nothing), merging LoRA
    adapters into the weights so that any loader (ember eval, vLLM, transformers 4.x or
    5.x) reads it as is, with a model card naming `base_model` (default: the folder or hub
    id the trainer's model was loaded from) and `command` (default: this process's).
    `trainer.save_model` gathers weights sharded by DeepSpeed ZeRO-3 or FSDP."""
    if base_model is None:
        model = getattr(trainer.model, "base_model", trainer.model)  # through a peft wrapper
        base_model = getattr(getattr(model, "config", None), "_name_or_path", None) or \
            getattr(getattr(trainer.model, "config", None), "_name_or_path", None) or None
    tmp = path.with_name(path.name + ".partial")  # one name: every rank writes into it
    trainer.save_model(str(tmp))
    if trainer.accelerator.is_main_process:
        if (tmp / "adapter_config.json").exists():
            from peft import AutoPeftModelForCausalLM

            merged = AutoPeftModelForCausalLM.from_pretrained(str(tmp)).merge_and_unload()
            for f in tmp.glob("adapter_*"):
                f.unlink()
            merged.save_pretrained(str(tmp))
        trainer.processing_class.save_pretrained(str(tmp))
        make_portable(tmp, base_model=base_model, command=command)
        publish(tmp, path)
    trainer.accelerator.wait_for_everyone()
    return path
