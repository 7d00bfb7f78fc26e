"""Declarative dataset mappings: which raw shape a dataset has and where its fields are.

A mapping is a small YAML file (``adp/mappings/<dataset>.yaml`` for the built-ins, or
any file a user passes to ``ember convert --from my_mapping.yaml``)::

    shape: sharegpt          # one of SHAPES below
    id: id                   # field holding the record id (dotted paths allowed)
    messages: conversations  # shape-specific options, checked against the shape's dataclass

Each shape module declares its options as a dataclass named ``Mapping`` that extends
``BaseMapping`` below; ``docs/mappings.md`` lists them all (``python -m
ember.adp.mapping_docs`` writes it from these dataclasses). When a mapping loads, unknown
keys, values of the wrong type and invalid regular expressions are errors that name the
file, the key and the cause, before any record is read.

The rules every shape shares:

- **Field paths** name a raw field: ``a.b`` is ``record["a"]["b"]``, ``a.0`` the first
  item of a list.
- **Templates** (``{field}`` placeholders, ``{field|url}`` URL-quoted, ``{{`` for a
  brace) build text from fields, e.g. ``id: "{source}-{@index}"``.
- **Text patterns**: every option that matches text is a Python regular expression.
  A prefix is matched at the start of the text and cut, a suffix at its end; other
  patterns are searched anywhere; replacement tables replace every match.
- **Nothing is lost silently**: a raw field that holds content and that no option reads
  is counted in the summary (``unmapped_fields``).
"""

from __future__ import annotations

import ast
import contextvars
import dataclasses
import functools
import importlib
import json
import re
import types
import typing
import urllib.parse
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
    "browsergym": "ember.adp.shapes.browsergym",            # pages + browser/GUI actions
    "atif": "ember.adp.shapes.atif",                        # Harbor ATIF trajectories
    "adp": "ember.adp.shapes.adp",                          # ADP already: check, upgrade
}


class ConvertError(Exception):
    """A record that cannot be converted. ``reason`` is a short code for the summary."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def option(default: Any, help: str, *, reads: str | None = None,
           regex: str | None = None) -> Any:
    """A mapping option: its default, its help (``--list --shape`` and docs/mappings.md
    show it), what raw fields it ``reads`` (``path``: a field path; ``paths``: a dict of
    paths; ``keys``: a dict keyed by paths; ``template``) and where it holds regular
    expressions (``regex``: ``value``, ``list``, ``keys``, ``values``, ``pairs`` (the
    first of each pair) or ``rules`` (the ``match`` of each rule))."""
    meta = {"help": help, "reads": reads, "regex": regex}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


SYSTEM_HELP = ("System turns: `observation` (a user text_observation named 'system'; "
               "empty ones are skipped) or `drop`.")
SYSTEM_CHOICES = ("observation", "drop")


@dataclass
class BaseMapping:
    description: str = option("", "One line for `ember convert --list`.")
    id: str = option("id", "Field holding the record id, or a template such as "
                           "`{source}-{n}`; '@index' numbers records 0, 1, ... in input order "
                           "(for data without ids; a template may use `{@index}`).",
                     reads="template")
    details: dict[str, str] = option({}, "Trajectory `details` to copy: name -> field path "
                                         "in the raw record (fields it lacks are left out).",
                                     reads="paths")
    group_by: str | None = option(None, "Consecutive records sharing this field are the steps "
                                        "of one trajectory: the converter gets them together, "
                                        "as a list.", reads="path")
    final_last: bool = option(False, "Mark the last event final (it ends the episode) when it "
                                     "is a message from the agent.")
    rename_tools: dict[str, str] = option({}, "Tool renames, raw name -> name written: applied "
                                              "to every call, its output's name and the tool "
                                              "specs (after the shape's own tool options, "
                                              "which use raw names).")
    decode: dict[str, str] = option({}, "Top-level fields holding encoded values, decoded "
                                        "before anything else: field -> `json` or `python` "
                                        "(a Python literal such as \"{'a': '1'}\").",
                                    reads="keys")
    extract: dict[str, str] = option({}, "Fields to split with a regex before anything else: "
                                         "field -> pattern (searched); its named groups become "
                                         "fields of the record that other options can name.",
                                     reads="keys", regex="values")

    def __post_init__(self):
        check_options(self)

    def consumed(self) -> frozenset[str]:
        """Top-level raw fields this mapping reads (for the unmapped-fields report)."""
        return _consumed(self)

    def turn_keys(self) -> tuple[str, frozenset[str]] | None:
        """(field holding a list of turns, keys read from each turn); None: not checked."""
        return None

    def unmapped(self, record: Any) -> list[str]:
        """Raw fields of ``record`` that hold content and that this mapping never reads."""
        if isinstance(record, list):
            found: dict[str, None] = {}
            for step in record:
                found.update(dict.fromkeys(self.unmapped(step)))
            return list(found)
        if not isinstance(record, dict):
            return []
        plan = self.__dict__.get("_unmapped_plan")
        if plan is None:  # worked out once per mapping: this runs for every record
            plan = self.__dict__["_unmapped_plan"] = (self.consumed(), self.turn_keys())
        consumed, turns = plan
        out = [] if consumed.issuperset(record) else \
            [k for k, v in record.items() if k not in consumed and has_content(v)]
        if turns is not None:
            path, keys = turns
            items = get_field(record, path, None)
            if isinstance(items, list):
                seen: dict[str, None] = {}
                within = keys.issuperset
                for item in items:
                    if isinstance(item, dict) and not within(item):
                        for k in item.keys() - keys:
                            if has_content(item[k]):
                                seen[f"{path}[].{k}"] = None
                out += sorted(seen)
        return out


def has_content(value: Any) -> bool:
    """Whether a raw value carries something: not null or an empty string, nor a list or
    object holding only such values."""
    if isinstance(value, (list, dict)):
        return any(map(has_content, value.values() if isinstance(value, dict) else value))
    return value is not None and value != ""


# --- checking options when a mapping loads ---------------------------------------------


@functools.cache
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


def check_options(mapping: BaseMapping) -> None:
    """Raise ValueError naming the key when an option has the wrong type or an invalid
    regular expression; ``load_mapping`` adds the file."""
    hints = _hints(type(mapping))
    for f in dataclasses.fields(mapping):
        value = getattr(mapping, f.name)
        problem = type_problem(value, hints[f.name])
        if problem:
            raise ValueError(f"key '{f.name}' {problem}")
        kind = f.metadata.get("regex")
        if kind:
            for where, pattern in _patterns(value, kind):
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise ValueError(f"key '{f.name}{where}': invalid regex {pattern!r}: "
                                     f"{e}") from None
                except TypeError:
                    raise ValueError(f"key '{f.name}{where}' should be a regex string, got "
                                     f"{_kind(pattern)}") from None
        if f.metadata.get("reads") == "template" and isinstance(value, str):
            try:
                template_fields(value)
            except ValueError as e:
                raise ValueError(f"key '{f.name}': {e}") from None


def _patterns(value: Any, kind: str) -> Iterator[tuple[str, Any]]:
    """(where inside the option, pattern) for each regex an option holds."""
    if value is None:
        return
    if kind == "value":
        yield "", value
    elif kind == "list":
        for i, p in enumerate(value):
            yield f"[{i}]", p
    elif kind == "keys":
        for k in value:
            yield f".{k}", k
    elif kind == "values":
        for k, p in value.items():
            yield f".{k}", p
    elif kind == "pairs":
        for i, pair in enumerate(value):
            if isinstance(pair, list) and pair:
                yield f"[{i}][0]", pair[0]
    elif kind == "rules":
        for i, rule in enumerate(value):
            if isinstance(rule, dict) and "match" in rule:
                yield f"[{i}].match", rule["match"]


_KINDS = {str: "a string", bool: "true or false", int: "an integer", float: "a number",
          dict: "a mapping", list: "a list", type(None): "null"}


def _kind(value: Any) -> str:
    for kind, name in _KINDS.items():
        if type(value) is kind:
            return name
    return type(value).__name__


def type_name(hint: Any) -> str:
    """A type hint as docs and `--list --shape` show it: ``list[str]``, ``str | null``."""
    plain = isinstance(hint, type) and typing.get_origin(hint) is None
    text = hint.__name__ if plain else str(hint)
    return text.replace("typing.", "").replace("NoneType", "null").replace("None", "null")


def type_problem(value: Any, hint: Any) -> str | None:
    """Why ``value`` does not fit ``hint`` (``should be ..., got ...``), or None."""
    if _fits(value, hint):
        return None
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return f"should be {type_name(hint)}, got {_kind(value)} ({shown})"


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in (dict, list):
        return isinstance(value, hint)
    args = typing.get_args(hint)
    if origin is list:
        return isinstance(value, list) and (not args or all(_fits(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict) and (not args or all(
            _fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()))
    return isinstance(value, hint)


# --- templates ---------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}|]*)(?:\|([a-z]+))?\}|[{}]")
FILTERS = {"url": lambda s: urllib.parse.quote(s, safe="")}


@functools.lru_cache(maxsize=256)
def template_fields(template: str) -> tuple[str, ...]:
    """The names a template reads; ValueError for an unknown filter or a stray brace."""
    names = []
    for m in _PLACEHOLDER.finditer(template):
        token = m.group(0)
        if token in ("{{", "}}"):
            continue
        if m.group(1) is None or not m.group(1).strip():
            raise ValueError(f"template {template!r}: a '{{' or '}}' without a field name "
                             "(write {{ or }} for a brace)")
        if m.group(2) and m.group(2) not in FILTERS:
            raise ValueError(f"template {template!r}: unknown filter |{m.group(2)} "
                             f"(known: {', '.join(FILTERS)})")
        names.append(m.group(1).strip())
    return tuple(names)


def is_template(text: str) -> bool:
    return "{" in text or "}" in text


def render(template: str, record: dict, values: dict | None = None) -> str:
    """``template`` with each ``{name}`` filled from ``values`` or the record's field."""
    def fill(m: re.Match) -> str:
        token = m.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = m.group(1).strip()
        if values is not None and name in values:
            value = values[name]
        else:
            value = get_field(record, name)
        if value is None:
            raise ConvertError("missing-field", f"template {template!r}: field '{name}' is null")
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False) \
            if isinstance(value, (dict, list)) else str(value)
        return FILTERS[m.group(2)](text) if m.group(2) else text

    return _PLACEHOLDER.sub(fill, template)


# --- reading raw records -------------------------------------------------------------------

# The position of the record being converted in its input, set by `apply` (so '@index'
# ids are the same whichever worker process converts the record).
_INDEX: contextvars.ContextVar[int | None] = contextvars.ContextVar("record_index", default=None)


def apply(convert: Converter, payload: dict | list, index: int) -> dict | list:
    """Run a converter on one record (or one group of step records) at input position ``index``."""
    token = _INDEX.set(index)
    try:
        return convert(payload)
    finally:
        _INDEX.reset(token)


class UniqueIds:
    """Output ids made unique: the first record with an id keeps it; each later one gets
    ``#k`` appended, k the smallest number from 2 on that gives an id not yet written
    (``ID``, ``ID#2``, ``ID#3``, ...). The driver applies it in output order, so the ids do
    not depend on ``--workers``."""

    def __init__(self):
        self.seen: set[str] = set()
        self._next: dict[str, int] = {}

    def take(self, tid: str) -> str:
        if tid not in self.seen:
            self.seen.add(tid)
            return tid
        k = self._next.get(tid, 2)
        while f"{tid}#{k}" in self.seen:
            k += 1
        self._next[tid] = k + 1
        new = f"{tid}#{k}"
        self.seen.add(new)
        return new


def convert_records(convert: Converter, records: list[dict]) -> list[dict]:
    """Library use: convert a list of raw records in order, grouping steps and making ids
    unique as the CLI does."""
    group_by = getattr(convert, "group_by", None)
    units = group_records(records, group_key(group_by)) if group_by else records
    ids = UniqueIds()
    out = []
    for i, unit in enumerate(units):
        result = apply(convert, unit, i)
        for traj in result if isinstance(result, list) else [result]:
            traj["id"] = ids.take(traj["id"])
            out.append(traj)
    return out


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
    try:  # the common case: plain keys, both present, both strings
        role, text = turn[role_key], turn[content_key]
    except (KeyError, TypeError, IndexError):
        pass
    else:
        if type(role) is str and type(text) is str and type(turn) is dict \
                and "." not in role_key and "." not in content_key:
            return role, text
    if not isinstance(turn, dict):
        typed(turn, dict, f"{messages}[{i}]")
    role = get_field(turn, role_key)
    if not isinstance(role, str):
        typed(role, str, f"{messages}[{i}].{role_key}")
    text = get_field(turn, content_key)
    if not isinstance(text, str):
        typed(text, str, f"{messages}[{i}].{content_key}")
    return role, text


def record_id(record: dict, mapping: BaseMapping, values: dict | None = None) -> str:
    """The id of ``record``: its id field, the ``id`` template filled (``values`` adds
    names of the caller's own), or its input position for '@index'."""
    spec = mapping.id
    if spec == "@index":
        return str(_index())
    if is_template(spec):
        values = dict(values or {})
        if "@index" in template_fields(spec):
            values["@index"] = _index()
        return render(spec, record, values)
    value = get_field(record, spec)
    typed(value, (str, int), f"id field '{spec}'")
    return str(value)


def _index() -> int:
    index = _INDEX.get()
    if index is None:
        raise ConvertError("missing-field", "id '@index' needs the record's position: "
                           "convert with ember.adp.mapping.apply or convert_records")
    return index


def record_details(record: dict, mapping: BaseMapping) -> dict:
    """The ``details`` the mapping names; fields the record lacks or holds null are left out."""
    out = {}
    for name, path in mapping.details.items():
        value = get_field(record, path, None)
        if value is not None:
            out[name] = value
    return out


def mark_final(events: list[dict], mapping: BaseMapping) -> None:
    """With ``final_last``, a trailing message from the agent ends the episode."""
    if mapping.final_last and events and events[-1]["class_"] == "message_action":
        events[-1]["final"] = True


def _consumed(mapping: BaseMapping) -> frozenset[str]:
    names: set[str] = set()
    for f in dataclasses.fields(mapping):
        reads, value = f.metadata.get("reads"), getattr(mapping, f.name)
        if not reads or value in (None, "", [], {}):
            continue
        if reads == "path":
            paths = [value] if isinstance(value, str) else list(value)
        elif reads == "paths":
            paths = list(value.values()) if isinstance(value, dict) else list(value)
        elif reads == "keys":
            paths = list(value)
        else:  # template: a plain value is a field path
            paths = list(template_fields(value)) if is_template(value) else [value]
        names.update(str(p).split(".")[0] for p in paths if isinstance(p, str))
    return frozenset(names)


# --- built-ins, loading, the converter ------------------------------------------------------


def builtin_names() -> list[str]:
    return sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml"))


def shape_class(shape: str) -> type:
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    return importlib.import_module(SHAPES[shape]).Mapping


def shape_options(shape: str) -> list[dict]:
    """Every option of a shape: ``{name, type, default, help}`` in declaration order."""
    cls = shape_class(shape)
    hints = _hints(cls)
    defaults = cls()
    return [{"name": f.name, "type": type_name(hints[f.name]),
             "default": json.dumps(getattr(defaults, f.name), ensure_ascii=False),
             "help": f.metadata.get("help", "")} for f in dataclasses.fields(cls)]


def load_mapping(source: str | Path) -> tuple[str, BaseMapping]:
    """Read a mapping file and return (shape name, checked options). ValueError names the
    file, the key and the cause for anything wrong with it."""
    path = Path(source)
    try:
        # libyaml's parser where PyYAML has it: the same values, ~10x faster than the
        # pure-Python one, which was a fifth of a small run's start-up
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise ValueError(f"mapping {path}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or "shape" not in data:
        raise ValueError(f"mapping {path}: needs a top-level 'shape:' key "
                         f"(one of: {', '.join(SHAPES)})")
    shape = data.pop("shape")
    if shape not in SHAPES:
        raise ValueError(f"mapping {path}: unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    cls = shape_class(shape)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ValueError(f"mapping {path}: unknown key(s) {', '.join(unknown)} for shape "
                         f"{shape!r}; accepted: {', '.join(sorted(known))}")
    try:
        return shape, cls(**data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"mapping {path}: {e}") from None


def build_converter(shape: str, mapping: BaseMapping) -> Converter:
    """The converter for ``mapping``: the shape's own, plus the options every shape shares
    (``decode`` and ``extract`` before it, ``rename_tools`` after). It carries
    ``group_by`` and ``unmapped`` for the driver."""
    inner = importlib.import_module(SHAPES[shape]).converter(mapping)
    prepare = _preparer(mapping)
    renames = mapping.rename_tools
    convert = inner
    if prepare is not None or renames:
        def convert(record):
            if prepare is not None:
                record = [prepare(r) for r in record] if isinstance(record, list) \
                    else prepare(record)
            out = inner(record)
            if renames:
                for traj in out if isinstance(out, list) else [out]:
                    rename_tools(traj, renames)
            return out
    convert.group_by = mapping.group_by
    convert.unmapped = None if shape == "adp" else mapping.unmapped
    convert.uses_index = mapping.id == "@index" or (
        is_template(mapping.id) and "@index" in template_fields(mapping.id))
    return convert


def _preparer(mapping: BaseMapping) -> Callable[[dict], dict] | None:
    if not mapping.decode and not mapping.extract:
        return None
    for name, how in mapping.decode.items():
        if how not in ("json", "python"):
            raise ValueError(f"key 'decode.{name}' should be json or python, got {how!r}")
    patterns = [(name, re.compile(p)) for name, p in mapping.extract.items()]

    def prepare(record: Any) -> Any:
        if not isinstance(record, dict):
            return record
        record = dict(record)
        for name, how in mapping.decode.items():
            value = record.get(name)
            if isinstance(value, str):
                try:
                    record[name] = json.loads(value) if how == "json" else ast.literal_eval(value)
                except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
                    raise ConvertError("wrong-type", f"field '{name}' is not {how} ("
                                       f"{type(e).__name__}): {value[:80]!r}") from None
        for name, pattern in patterns:
            value = get_field(record, name)
            if not isinstance(value, str):
                typed(value, str, f"field '{name}'")
            m = pattern.search(value)
            if m is None:
                raise ConvertError("unparseable-field", f"field '{name}' does not match "
                                                        f"{pattern.pattern!r}: {value[:120]!r}")
            record.update({k: v for k, v in m.groupdict().items() if v is not None})
        return record

    return prepare


def rename_tools(traj: dict, renames: dict[str, str]) -> None:
    """Rename calls, the names on their outputs and the tool specs, in place."""
    for event in traj.get("content", ()):
        cls = event.get("class_")
        if cls == "api_action" and event.get("function") in renames:
            event["function"] = renames[event["function"]]
        elif cls == "text_observation" and event.get("name") in renames \
                and event.get("source") == "environment":
            event["name"] = renames[event["name"]]
    for spec in traj.get("tools") or ():
        fn = spec.get("function") if isinstance(spec, dict) else None
        if isinstance(fn, dict) and fn.get("name") in renames:
            fn["name"] = renames[fn["name"]]


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
        return build_converter(spec, shape_class(spec)())
    else:
        return _import_callable(spec)
    shape, mapping = load_mapping(path)
    try:
        return build_converter(shape, mapping)
    except ValueError as e:  # a shape's own check of its options
        raise ValueError(f"mapping {path}: {e}") from None


def _import_callable(spec: str) -> Converter:
    if "." not in spec and ":" not in spec:
        raise ValueError(f"--from {spec!r} is not a built-in dataset "
                         f"({', '.join(builtin_names())}), a shape ({', '.join(SHAPES)}), a "
                         "mapping file (.yaml) or a dotted path package.module:function")
    return load_function(spec, what="--from converter", default_attr="convert",
                         builtins=builtin_names() + ["a mapping .yaml file"])
