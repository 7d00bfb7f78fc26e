"""Model folders that load the same with transformers 4.x and 5.x, and say where they came from.

    from ember.llm.model_folder import make_portable
    make_portable("runs/sft/model", base_model="smollm2", command="ember train --stage sft ...")

transformers 5 saves folders that transformers 4.x misreads: ``tokenizer_class:
TokenizersBackend`` (a class 4.x does not have: the tokenizer fails to load), RoPE settings
only inside ``rope_parameters`` (4.x reads ``rope_theta`` and ``rope_scaling`` at the top
level and silently falls back to its defaults, e.g. rope_theta 10000 instead of SmolLM2's
100000: wrong output, no error) and ``extra_special_tokens`` as a list (4.x expects a dict
of named tokens there and fails; a list belongs under ``additional_special_tokens``). The
chat template lives in ``chat_template.jinja``, which older 4.x releases do not read.
``make_portable`` rewrites those JSON files in place so that both major versions read the
same model, tokenizer, template and stop tokens (5.x reads the top-level copies back into
the same ``rope_parameters``, so nothing changes for it), writes a
``generation_config.json`` whose ``eos_token_id`` includes the chat template's end-of-turn
token, and a model card (``README.md``) naming the base model and the command that made
the folder. Every place ember saves a model calls it (``ember.train.checkpoints``,
``ember.llm.models``). It reads and writes JSON only: no transformers import, milliseconds.

``PORTABLE_FIELDS`` is what the check in tests/llm/test_model_folder.py holds a folder to.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from ember.adp.io import atomic_writer

# What transformers 4.x needs, per file, and make_portable writes (see the module docstring).
PORTABLE_FIELDS = {
    "config.json": ("rope_theta", "rope_scaling"),
    "tokenizer_config.json": ("tokenizer_class", "chat_template", "bos_token", "eos_token",
                              "pad_token"),
    "generation_config.json": ("bos_token_id", "eos_token_id", "pad_token_id"),
}
# The tokenizer class 4.x and 5.x both build from tokenizer.json as it is (5.x maps it to
# TokenizersBackend). A model-specific class (LlamaTokenizerFast, GPT2TokenizerFast) would
# add its own BOS/prefix-space handling on 4.x and tokenize differently from 5.x.
PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"
# End-of-turn tokens of common chat templates: generation must stop on them.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")
CARD_MARK = "<!-- written by ember -->"
# ember's embedded model names (ember.llm.models.EMBEDDED) -> the hub model each was made from
UPSTREAM = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def make_portable(folder: str | Path, *, base_model: str | None = None,
                  command: str | None = None, note: str | None = None) -> dict:
    """Make the model folder ``folder`` load identically under transformers 4.x and 5.x
    and give it a model card; returns what changed, per file. Idempotent.

    ``base_model``: what the folder was made from (a hub id, an embedded name, a folder);
    ``command``: the command that made it (default: this process's command line);
    ``note``: a paragraph for the model card (how the folder was made)."""
    folder = Path(folder)
    changes = {}
    changes["config.json"] = _fix_config(folder / "config.json")
    tokens = _tokenizer_tokens(folder)
    changes["tokenizer_config.json"] = _fix_tokenizer_config(folder)
    changes["generation_config.json"] = _fix_generation_config(folder, tokens)
    _write_card(folder, base_model, command or current_command(), note)
    return {name: change for name, change in changes.items() if change}


def is_portable(folder: str | Path) -> bool:
    """True when ``folder`` already has what ``make_portable`` writes (and its card)."""
    folder = Path(folder)
    for name, fields in PORTABLE_FIELDS.items():
        data = _read(folder / name)
        if data is None:
            return False
        if name == "config.json":
            if "dtype" in data and data.get("torch_dtype") == data["dtype"]:
                return False
            if "rope_parameters" not in data:
                fields = ()
        if name == "tokenizer_config.json" and not (folder / "chat_template.jinja").exists():
            fields = tuple(f for f in fields if f != "chat_template")
        if any(f not in data for f in fields):
            return False
        if name == "tokenizer_config.json" and str(data["tokenizer_class"]).endswith("Backend"):
            return False
    card = folder / "README.md"
    return card.exists() and CARD_MARK in card.read_text(errors="replace")


def current_command() -> str:
    """This process's command line as the user typed it: ``ember ...`` when it runs the
    ember CLI (the entry point, ``python -m ember.cli.main``, under torchrun/accelerate)."""
    argv = list(sys.argv)
    head = Path(argv[0]).as_posix() if argv else ""
    if Path(head).name == "ember" or head.endswith(("cli/main.py", "ember.cli.main")):
        return shlex.join(["ember", *argv[1:]])
    return shlex.join([Path(sys.executable).name, *argv]) if argv else "(unknown)"


# --- config.json -----------------------------------------------------------------------


def _fix_config(path: Path) -> list[str]:
    config = _read(path)
    if config is None:
        return []
    changed = []
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and rope:
        nested = {k: v for k, v in rope.items() if isinstance(v, dict)}
        flat = rope if not nested else nested.get("full_attention") or next(iter(nested.values()))
        if "rope_theta" in flat and config.get("rope_theta") != flat["rope_theta"]:
            config["rope_theta"] = flat["rope_theta"]
            changed.append("rope_theta")
        if "partial_rotary_factor" in flat and "partial_rotary_factor" not in config:
            config["partial_rotary_factor"] = flat["partial_rotary_factor"]
            changed.append("partial_rotary_factor")
        if not nested:
            # 4.x: None means plain RoPE; a scaled one needs its type and factors here.
            # 5.x takes a non-null rope_scaling as rope_parameters, topped up with the
            # top-level rope_theta: the same values either way.
            kind = flat.get("rope_type", flat.get("type", "default"))
            scaling = None if kind == "default" else {
                k: v for k, v in flat.items() if k not in ("rope_theta", "partial_rotary_factor")}
            if "rope_scaling" not in config or config["rope_scaling"] != scaling:
                config["rope_scaling"] = scaling
                changed.append("rope_scaling")
    if "dtype" in config and config.get("torch_dtype") == config["dtype"]:
        del config["torch_dtype"]  # 4.56+ read dtype; 5.x warns that torch_dtype is deprecated
        changed.append("torch_dtype")
    if changed:
        _write(path, config)
    return changed


# --- tokenizer files --------------------------------------------------------------------


def _tokenizer_tokens(folder: Path) -> dict[str, int]:
    """token text -> id for the added (special) tokens of tokenizer.json."""
    data = _read(folder / "tokenizer.json") or {}
    tokens = {t["content"]: t["id"] for t in data.get("added_tokens") or []
              if isinstance(t, dict) and "content" in t and "id" in t}
    vocab = (data.get("model") or {}).get("vocab")
    if isinstance(vocab, dict):
        for text in END_OF_TURN:
            if text in vocab and text not in tokens:
                tokens[text] = vocab[text]
    return tokens


def _token_text(value) -> str | None:
    if isinstance(value, dict):  # a serialised AddedToken
        return value.get("content")
    return value if isinstance(value, str) else None


def _fix_tokenizer_config(folder: Path) -> list[str]:
    path = folder / "tokenizer_config.json"
    config = _read(path)
    if config is None:
        return []
    changed = []
    klass = str(config.get("tokenizer_class") or "")
    if (klass.endswith("Backend") or not klass) and (folder / "tokenizer.json").exists():
        config["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
        changed.append("tokenizer_class")
    template = folder / "chat_template.jinja"
    if template.exists() and config.get("chat_template") != template.read_text():
        config["chat_template"] = template.read_text()
        changed.append("chat_template")
    extra = config.get("extra_special_tokens")
    if isinstance(extra, list):  # 5.x's list is 4.x's additional_special_tokens
        config.pop("extra_special_tokens")
        if extra:
            config["additional_special_tokens"] = extra
        changed.append("extra_special_tokens")
    if not config.get("pad_token") and config.get("eos_token"):
        config["pad_token"] = config["eos_token"]
        changed.append("pad_token")
    if changed:
        _write(path, config)
    return changed


# --- generation_config.json -------------------------------------------------------------


def _fix_generation_config(folder: Path, tokens: dict[str, int]) -> list[str]:
    path = folder / "generation_config.json"
    gen = _read(path)
    created = gen is None
    gen = gen or {}
    tok = _read(folder / "tokenizer_config.json") or {}
    model = _read(folder / "config.json") or {}
    template = tok.get("chat_template") or ""

    def token_id(key: str):
        text = _token_text(tok.get(key))
        return tokens.get(text) if text else None

    eos = gen.get("eos_token_id", model.get("eos_token_id"))
    eos = [] if eos is None else list(eos) if isinstance(eos, list) else [eos]
    for candidate in [token_id("eos_token")] + [tokens.get(t) for t in END_OF_TURN
                                                if t in template]:
        if candidate is not None and candidate not in eos:
            eos.append(candidate)
    want = {
        "bos_token_id": token_id("bos_token") if token_id("bos_token") is not None
        else gen.get("bos_token_id", model.get("bos_token_id")),
        "eos_token_id": eos[0] if len(eos) == 1 else eos or None,
        "pad_token_id": token_id("pad_token") if token_id("pad_token") is not None
        else gen.get("pad_token_id", model.get("pad_token_id", eos[0] if eos else None)),
    }
    changed = [k for k, v in want.items() if k not in gen or gen[k] != v]
    if changed or created:
        gen.update(want)
        gen.setdefault("transformers_version", model.get("transformers_version", ""))
        _write(path, gen)
    return changed


# --- the model card ---------------------------------------------------------------------


def _write_card(folder: Path, base_model: str | None, command: str,
                note: str | None) -> None:
    """README.md: front matter (base_model when it is a hub id, library, tags) and what
    made the folder. A chain of ember folders (sft -> rft) keeps the first hub id."""
    upstream = _upstream(base_model) if base_model else None
    front = ["---", "library_name: transformers", "tags:", "- ember"]
    if upstream:
        front.insert(1, f"base_model: {upstream}")
    front.append("---")
    try:
        from importlib.metadata import version

        ember_version = version("ember")
    except Exception:  # running from a source tree
        ember_version = "unknown"
    lines = front + ["", CARD_MARK, "# A model made by ember", "",
                     f"Made by ember {ember_version} from **{base_model or 'unknown'}**"
                     + (f" (upstream: `{upstream}`)" if upstream and upstream != base_model
                        else "") + ".", ""]
    if note:
        lines += [note, ""]
    lines += ["Command:", "", "```sh", command, "```", "",
              "The folder loads the same with transformers 4.x and 5.x "
              "(`AutoModelForCausalLM.from_pretrained`, `AutoTokenizer.from_pretrained`); "
              "generation stops on the chat template's end-of-turn token "
              "(`generation_config.json`).", ""]
    with atomic_writer(folder / "README.md", "w") as f:
        f.write("\n".join(lines))


def _upstream(base_model: str) -> str | None:
    """The hub id at the root of ``base_model``: itself for a hub id, the embedded model's
    source, or what an ember-made folder's card names; None when unknown (a local folder)."""
    if base_model in UPSTREAM:
        return UPSTREAM[base_model]
    path = Path(base_model).expanduser()
    if path.is_dir():
        card = path / "README.md"
        if card.exists():
            for line in card.read_text(errors="replace").splitlines()[:10]:
                if line.startswith("base_model:"):
                    return line.split(":", 1)[1].strip() or None
        return None
    if base_model.count("/") == 1 and not base_model.startswith((".", "/", "~")):
        return base_model  # org/name: a hub id
    return None


# --- JSON files --------------------------------------------------------------------------


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: dict) -> None:
    with atomic_writer(path, "w") as f:
        f.write(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
    os.chmod(path, 0o644)
