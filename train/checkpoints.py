"""Checkpoints and final models of `ember train`: where the last checkpoint is, and saving
the trained model whole.

    from ember.train.checkpoints import last_checkpoint, save_final
    save_final(trainer, Path("runs/rft/rft/model"))
"""

from __future__ import annotations

from pathlib import Path

from ember.adp.io import publish


def last_checkpoint(out: Path) -> Path | None:
    found = [p for p in out.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1])) if found else None


def save_final(trainer, path: Path) -> Path:
    """Save the trained model and tokenizer to `path` (all or nothing), merging LoRA
    adapters into the weights so that any loader (ember eval, vLLM) reads it as is.
    `trainer.save_model` gathers weights sharded by DeepSpeed ZeRO-3 or FSDP."""
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
        publish(tmp, path)
    trainer.accelerator.wait_for_everyone()
    return path
