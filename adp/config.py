"""Command configuration: one dataclass per command, the single source of its options.

    from ember.adp.config import opt, section, load_config
    @dataclass
    class EvalConfig:
        model: str = opt("smollm2", "model to evaluate", short="-m")
        limit: int | None = opt(None, "first N items per benchmark", min=1)

    cfg = load_config(EvalConfig, "eval.yaml", {"limit": 20})   # YAML sets, overrides win

Each field carries its help text, short flag, bounds and (rarely) an explicit flag name in
its metadata; ``ember.cli.options`` turns the fields into command-line options, so the
defaults and help a user sees are the ones the library uses. A field whose value is
another config dataclass is a *section*: with a ``prefix`` (``sft-``) its options are
``--sft-max-steps`` and its YAML keys sit under ``sft:``; without one (the LLM options of
``eval`` and ``synth``) its options and YAML keys are at the top level. A field whose
``flag`` is given keeps that flag whatever section it is in (``--tasks``), so adding a
field to one section never renames another's option.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any



def opt(default: Any, help: str, *, short: str | None = None, flag: str | None = None,
        min: float | None = None, max: float | None = None, argument: bool = False,
        metavar: str | None = None, cli: bool = True) -> Any:
    """A config field: its default, the help text the CLI and docs show, and how it is
    spelled on the command line (``flag`` overrides the name-derived ``--field-name``;
    ``argument`` makes it positional; ``cli=False`` keeps it to YAML and Python)."""
    meta = {"help": help, "short": short, "flag": flag, "min": min, "max": max,
            "argument": argument, "metavar": metavar, "cli": cli}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, prefix: str = "", help: str = "") -> Any:
    """A nested config dataclass; ``prefix`` ("sft-") prefixes its flags and nests its
    YAML keys under the field's name; "" puts both at the top level."""
    return dataclasses.field(default_factory=cls, metadata={"section": True, "prefix": prefix,
                                                            "help": help})


def is_section(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("section"))


def _build(cls, values: dict, where: str):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    flat = [f for f in fields.values() if is_section(f) and not f.metadata["prefix"]]
    own: dict = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name in fields:
            own[name] = value
            continue
        home = next((s for s in flat if name in {g.name for g in dataclasses.fields(hints[s.name])}),
                    None)
        if home is None:
            known = sorted(n for n, f in fields.items() if not (is_section(f) and not f.metadata["prefix"]))
            known += sorted(g.name for s in flat for g in dataclasses.fields(hints[s.name]))
            raise ValueError(f"{where}: unknown option {key!r}; known: {', '.join(known)}")
        own.setdefault(home.name, {})[name] = value
    for name, value in list(own.items()):
        if not is_section(fields[name]):
            own[name] = _checked(value, hints[name], f"{where}: {name}")
    for name, f in fields.items():
        if is_section(f):
            sub = own.get(name, {})
            if not isinstance(sub, dict):
                raise ValueError(f"{where}: {name!r} must be a mapping of options, got "
                                 f"{type(sub).__name__}")
            own[name] = _build(hints[name], sub, f"{where} [{name}]")
    try:
        return cls(**own)
    except TypeError as e:  # a required field without a value
        raise ValueError(f"{where}: {e}") from None


def _checked(value: Any, hint: Any, where: str) -> Any:
    """``value`` if it fits the field's type (an int where a float is wanted is widened);
    a ValueError that names the option and the types otherwise."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        hint, origin, args = inner[0], typing.get_origin(inner[0]), typing.get_args(inner[0])
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    base = origin or hint
    ok = isinstance(value, base) and not (base in (int, float) and isinstance(value, bool))
    if ok and base is list and args:
        ok = all(isinstance(v, args[0]) for v in value)
    if not ok:
        want = getattr(hint, "__name__", str(hint))
        raise ValueError(f"{where} should be {want}, got {type(value).__name__} {value!r}")
    return value


def load_config(cls: type, path: str | Path | None = None, overrides: dict | None = None):
    """``cls`` from a YAML file (or its defaults), then ``overrides`` on top. Override keys
    are field names, with a section's name and a dot for prefixed sections
    (``{"rft.max_steps": 4, "seed": 1, "model": "m"}``). Unknown keys are a ValueError."""
    raw: dict = {}
    where = str(path) if path else "options"
    if path:
        import yaml  # only when a file is read: `ember --help` need not load it

        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"cannot read config {path}: {' '.join(str(e).split())}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping of options at the top level")
    raw = {k: dict(v) if isinstance(v, dict) and _is_prefixed_section(cls, k) else v
           for k, v in raw.items()}
    for key, value in (overrides or {}).items():
        head, _, name = key.rpartition(".")
        (raw.setdefault(head, {}) if head else raw)[name] = value
    return _build(cls, raw, where)


def from_dict(cls: type, data: dict):
    """``cls`` from plain data such as ``to_dict`` wrote (a run's recorded config)."""
    return _build(cls, data, cls.__name__)


def _is_prefixed_section(cls, name: str) -> bool:
    f = {f.name: f for f in dataclasses.fields(cls)}.get(name.replace("-", "_"))
    return f is not None and is_section(f) and bool(f.metadata["prefix"])


def to_dict(cfg) -> dict:
    """The config as plain data (what a run records beside its outputs)."""
    return dataclasses.asdict(cfg)
