"""LoRA for both stages of `ember train`: one peft.LoraConfig built from a stage's options.

    from ember.train.lora import lora_config
    peft_config = lora_config(cfg.sft)  # None when lora_r is 0 (full fine-tuning)

SFTOptions and RFTOptions carry the same three fields (lora_r, lora_alpha, lora_dropout);
adapters go on every linear layer, and save_final merges them into the weights.
"""

from __future__ import annotations


def lora_config(opts):
    """peft.LoraConfig from `opts.lora_r`, `opts.lora_alpha`, `opts.lora_dropout`, or None
    when lora_r is 0. Imports peft only when LoRA is asked for."""
    if not opts.lora_r:
        return None
    from peft import LoraConfig

    return LoraConfig(r=opts.lora_r, lora_alpha=opts.lora_alpha, lora_dropout=opts.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
