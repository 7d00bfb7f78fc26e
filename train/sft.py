"""SFT: TRL's SFTTrainer on `sft-chat` records (messages + tools), assistant-only loss.

    ember train --stage sft --model smollm2 --data sft.jsonl --out runs/sft

Reading top to bottom: read the records (bad lines go to OUT/rejects.jsonl with a
reason); render and tokenize each with the model's chat template, tools included, and
label only the assistant turns; hand the tokenized rows to SFTTrainer (optional LoRA,
packing, a held-out eval split); train with checkpoints; save OUT/model.

Records are read as `ember convert --to sft-chat` writes them (`tools` as JSON text, see
ember.adp.export.sft_chat) and as older files have them (`tools` a list). Why we
tokenize ourselves: rendering each record from its own Python dict keeps the text
exactly what the template writes, whatever shape a file's messages and tools have.

Assistant-only loss needs a chat template that marks assistant text with
`{% generation %}`. The embedded model already gets ember's ChatML template with those
marks (llm/models.py). A ChatML model (`<|im_start|>`) whose own template lacks them
gets the same template here; any other template without the marks is an error that says
so (or pass --no-assistant-only-loss).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ember.adp.export.sft_chat import tools_of
from ember.adp.io import InputError, iter_units
from ember.adp.rejects import default_rejects_path, reject, write_rejects
from ember.llm.models import CHAT_TEMPLATE
from ember.train.checkpoints import last_checkpoint, save_final
from ember.train.config import TrainConfig
from ember.train.lora import lora_config

log = logging.getLogger(__name__)


def read_sft(path: str) -> tuple[list[dict], list[dict]]:
    """sft-chat records, each with `tools` as a list: (records, rejects with reasons)."""
    import orjson

    rows, rejects = [], []
    try:
        for line, payload in iter_units(path):
            try:
                rec = orjson.loads(payload) if isinstance(payload, bytes) else payload
                msgs = rec.get("messages") if isinstance(rec, dict) else None
                if not isinstance(msgs, list) or not msgs:
                    raise ValueError("no `messages` list")
                if not all(isinstance(m, dict) and m.get("role") for m in msgs):
                    raise ValueError("a message without a role")
                if not any(m["role"] == "assistant" for m in msgs):
                    raise ValueError("no assistant turn to learn from")
                rec = {**rec, "tools": tools_of(rec)}  # JSON text (or a list, older files)
            except orjson.JSONDecodeError as exc:
                rejects.append(reject("invalid-json", str(exc), source=path, line=line))
                continue
            except ValueError as exc:
                rejects.append(reject("not-sft-chat", str(exc), source=path, line=line))
                continue
            rows.append(rec)
    except InputError as e:
        raise ValueError(str(e)) from e
    return rows, rejects


GENERATION_MARK = re.compile(r"\{%-?\s*generation\s*-?%\}")


def ensure_generation_marks(tokenizer) -> None:
    """Give a ChatML tokenizer ember's template with `{% generation %}` marks if its own
    has none; raise for other templates (see the module docstring)."""
    template = tokenizer.chat_template or ""
    if GENERATION_MARK.search(template):
        return
    if "<|im_start|>" in template:
        log.info("chat template has no generation marks; using ember's ChatML template")
        tokenizer.chat_template = CHAT_TEMPLATE.read_text()
        return
    raise ValueError("assistant-only loss needs a chat template with {% generation %} marks "
                     "around assistant text; this model's has none. Add them to the "
                     "template, or train on every token with --no-assistant-only-loss")


def tokenize(rows: list[dict], tokenizer, max_length: int, assistant_only: bool):
    """input_ids + labels (-100 outside assistant turns when assistant_only) per record;
    returns (tokenized rows, number truncated, rejects for rows with nothing to learn)."""
    out, truncated, rejects = [], 0, []
    for i, rec in enumerate(rows):
        enc = tokenizer.apply_chat_template(rec["messages"], tools=rec.get("tools") or None,
                                            tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=assistant_only)
        ids = list(enc["input_ids"])
        mask = list(enc["assistant_masks"]) if assistant_only else [1] * len(ids)
        if len(ids) > max_length:
            truncated += 1
            ids, mask = ids[:max_length], mask[:max_length]
        if not any(mask):
            rejects.append(reject("no-assistant-token", f"no assistant token within the "
                                  f"first {max_length} tokens", record=i))
            continue
        out.append({"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask)]})
    return out, truncated, rejects


def run_sft(cfg: TrainConfig, model_path: str, out: Path) -> Path:
    """Train with SFTTrainer; returns the directory of the final model (OUT/model)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    o = cfg.sft
    if not o.data:
        raise ValueError("the sft stage needs --data SFT.jsonl (ember convert --to sft-chat)")
    out.mkdir(parents=True, exist_ok=True)
    rows, rejects = read_sft(o.data)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if o.assistant_only_loss:
        ensure_generation_marks(tokenizer)
    data, truncated, empty = tokenize(rows, tokenizer, o.max_length, o.assistant_only_loss)
    rejects += empty
    if rejects:
        path = default_rejects_path(out, directory=True)
        write_rejects(path, rejects)
        log.warning("%d sft records rejected; reasons in %s", len(rejects), path)
    if truncated:
        log.warning("%d records longer than max_length=%d were truncated", truncated, o.max_length)
    if not data:
        raise ValueError(f"no usable sft-chat records in {o.data}")

    dataset = Dataset.from_list(data)
    eval_dataset = None
    if o.eval_fraction > 0 and len(dataset) >= 2:
        split = dataset.train_test_split(test_size=o.eval_fraction, seed=cfg.seed)
        dataset, eval_dataset = split["train"], split["test"]
    bf16 = torch.cuda.is_available() if cfg.bf16 is None else cfg.bf16
    args = SFTConfig(
        output_dir=str(out), max_steps=o.max_steps, num_train_epochs=o.epochs,
        learning_rate=o.learning_rate, per_device_train_batch_size=o.batch_size,
        gradient_accumulation_steps=o.grad_accum, max_length=o.max_length, packing=o.packing,
        seed=cfg.seed, data_seed=cfg.seed, bf16=bf16, use_cpu=not torch.cuda.is_available(),
        logging_steps=cfg.logging_steps, save_steps=o.save_steps, save_strategy="steps",
        eval_strategy="steps" if eval_dataset is not None else "no",
        eval_steps=o.save_steps if eval_dataset is not None else None,
        report_to=[r for r in cfg.report_to.split(",") if r and r != "none"] or "none",
        disable_tqdm=not os.isatty(2),
    )
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype="auto")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, eval_dataset=eval_dataset,
                         processing_class=tokenizer, peft_config=lora_config(o))
    checkpoint = last_checkpoint(out) if cfg.resume else None
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return save_final(trainer, out / "model")
