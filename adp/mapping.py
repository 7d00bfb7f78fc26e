"""Declarative dataset mappings: which raw shape a dataset has and where its fields are.

A mapping is a small YAML file (``adp/mappings/<dataset>.yaml`` for the built-ins, or
any file a user passes to ``ember convert --from my_mapping.yaml``)::

    shape: sharegpt          # one of SHAPES below
    id: id                   # field holding the record id (dotted paths allowed)
    messages: conversations  # shape-specific options, checked against the shape's dataclass

Each shape module declares its options as a dataclass named ``Mapping`` that extends
``BaseMapping`` below; unknown keys are an error that lists the accepted ones.
"""

from __future__ import annotations

import contextvars
import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import yaml

from ember.adp.dotted import load_function

Converter = Callable[[dict], dict]

MAPPINGS_DIR = Path(__file__).parent / "mappings"

# Raw shapes (adp/shapes/): one parser module per way agent datasets are written down.
SHAPES = {
    "openai-messages": "ember.adp.shapes.openai_messages",  # role/content + tool_calls
    "sharegpt": "ember.adp.shapes.sharegpt",                # from/value turns
    "react": "ember.adp.shapes.react",                      # Think:/Act: text
    "function-tags": "ember.adp.shapes.function_tags",      # <function=..><parameter=..>
    "swe-agent": "ember.adp.shapes.swe_agent",              # DISCUSSION + ```command```
    "codeact": "ember.adp.shapes.codeact",                  # <execute>/<solution>
    "browsergym": "ember.adp.shapes.browsergym",            # click('12') call strings
    "atif": "ember.adp.shapes.atif",                        # Harbor ATIF trajectories
    "adp": "ember.adp.shapes.adp",                          # ADP already: check, upgrade
}


class ConvertError(Exception):
    """A record that cannot be converted. ``reason`` is a short code for the summary."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class BaseMapping:
    description: str = field(default="", metadata={"help": "One line for `ember convert --list`."})
    id: str = field(default="id", metadata={
        "help": "Field holding the record id; '@index' numbers records 0, 1, ... in input "
                "order (for data without ids)."})
    details: dict[str, str] = field(default_factory=dict, metadata={
        "help": "Trajectory `details` to copy: name -> field path in the raw record."})
    group_by: str | None = field(default=None, metadata={
        "help": "Consecutive records sharing this field are the steps of one trajectory: "
                "the converter gets them together, as a list."})


# The position of the record being converted in its input, set by `apply` (so '@index'
# ids are the same whichever worker process converts the record).
_INDEX: contextvars.ContextVar[int | None] = contextvars.ContextVar("record_index", default=None)


def apply(convert: Converter, payload: dict | list, index: int) -> dict:
    """Run a converter on one record (or one group of step records) at input position ``index``."""
    token = _INDEX.set(index)
    try:
        return convert(payload)
    finally:
        _INDEX.reset(token)


def convert_records(convert: Converter, records: list[dict]) -> list[dict]:
    """Library use: convert a list of raw records in order, grouping steps as the CLI does."""
    group_by = getattr(convert, "group_by", None)
    units = group_records(records, group_key(group_by)) if group_by else records
    return [apply(convert, unit, i) for i, unit in enumerate(units)]


def group_key(group_by: str) -> Callable[[Any], Any]:
    return lambda record: get_field(record, group_by, None) if isinstance(record, dict) else None


def group_records(items: Iterable, key: Callable[[Any], Any]) -> Iterator[list]:
    """Split consecutive items into lists with equal ``key`` (a None key stands alone)."""
    group: list = []
    current: Any = None
    for item in items:
        k = key(item)
        if group and (k is None or k != current):
            yield group
            group = []
        group.append(item)
        current = k
    if group:
        yield group


_MISSING = object()


def get_field(record: dict, path: str, default: Any = _MISSING) -> Any:
    """``record["a"]["b"]`` for ``path="a.b"``; a missing field is a ConvertError."""
    if isinstance(record, dict) and path in record and "." not in path:
        return record[path]  # the common case, one plain key
    value: Any = record
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            if default is not _MISSING:
                return default
            have = ", ".join(sorted(map(str, value))) if isinstance(value, dict) \
                else type(value).__name__
            raise ConvertError("missing-field", f"field '{path}' is missing from the record "
                               f"(at '{part}'; there is: {have})")
    return value


def typed(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ConvertError("wrong-type", f"{what} should be {name}, got {type(value).__name__}")
    return value


def role_and_text(turn: Any, i: int, messages: str, role_key: str, content_key: str
                  ) -> tuple[str, str]:
    """(role, text) of chat turn ``i`` of the list at field ``messages``, both checked to
    be strings; the checks build their messages only when they fail (a hot path)."""
    if not isinstance(turn, dict):
        typed(turn, dict, f"{messages}[{i}]")
    role = get_field(turn, role_key)
    if not isinstance(role, str):
        typed(role, str, f"{messages}[{i}].{role_key}")
    text = get_field(turn, content_key)
    if not isinstance(text, str):
        typed(text, str, f"{messages}[{i}].{content_key}")
    return role, text


def record_id(record: dict, mapping: BaseMapping) -> str:
    if mapping.id == "@index":
        index = _INDEX.get()
        if index is None:
            raise ConvertError("missing-field", "id '@index' needs the record's position: "
                               "convert with ember.adp.mapping.apply or convert_records")
        return str(index)
    value = get_field(record, mapping.id)
    typed(value, (str, int), f"id field '{mapping.id}'")
    return str(value)


def record_details(record: dict, mapping: BaseMapping) -> dict:
    return {name: get_field(record, path, None) for name, path in mapping.details.items()}


def builtin_names() -> list[str]:
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))


def load_mapping(source: str | Path) -> tuple[str, BaseMapping]:
    """Read a mapping file and return (shape name, checked options)."""
    path = Path(source)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"mapping {path}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or "shape" not in data:
        raise ValueError(f"mapping {path}: needs a top-level 'shape:' key "
                         f"(one of: {', '.join(SHAPES)})")
    shape = data.pop("shape")
    if shape not in SHAPES:
        raise ValueError(f"mapping {path}: unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    cls = importlib.import_module(SHAPES[shape]).Mapping
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"mapping {path}: unknown key(s) {', '.join(unknown)} for shape "
                         f"{shape!r}; accepted: {', '.join(sorted(known))}")
    return shape, cls(**data)


def load_converter(spec: str) -> Converter:
    """Resolve ``--from``: a built-in dataset name, a mapping file, or ``pkg.module:function``.

    A dotted path may name a module with a ``convert(record) -> trajectory`` function.
    """
    builtin = MAPPINGS_DIR / f"{spec}.yaml"
    if builtin.exists():
        path = builtin
    elif spec.endswith((".yaml", ".yml")):
        path = Path(spec)
        if not path.exists():
            raise ValueError(f"mapping file {spec} does not exist")
    elif spec in SHAPES:
        module = importlib.import_module(SHAPES[spec])
        return module.converter(module.Mapping())
    else:
        return _import_callable(spec)
    shape, mapping = load_mapping(path)
    convert = importlib.import_module(SHAPES[shape]).converter(mapping)
    convert.group_by = mapping.group_by  # read by the driver, which forms the groups
    return convert


def _import_callable(spec: str) -> Converter:
    if "." not in spec and ":" not in spec:
        raise ValueError(f"--from {spec!r} is not a built-in dataset "
                         f"({', '.join(builtin_names())}), a shape ({', '.join(SHAPES)}), a "
                         "mapping file (.yaml) or a dotted path package.module:function")
    return load_function(spec, what="--from converter", default_attr="convert",
                         builtins=builtin_names() + ["a mapping .yaml file"])
