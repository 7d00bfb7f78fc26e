"""Web and GUI agent steps -> ADP: a page or screen, a thought and an action per step.

Each step shows the agent a page (an accessibility tree, HTML, a URL, a screenshot with
labelled boxes) and records what it did. Actions are read from, per dataset:

- a call string (``action``, or the fenced/Python ``response``), in either spelling::

    click('12')   fill('5', 'text')   scroll(0, 200)   send_msg_to_user('done')  # BrowserGym
    click [12]    type [5] [text] [1]   scroll [down]   stop [answer]            # WebArena

  Python-like calls are parsed with ``ast`` (positional arguments are named from the
  BrowserGym signatures, ``arg_names`` adds or overrides some); WebArena's bracket syntax
  is translated to the BrowserGym call it stands for (``type`` keeps ADP's
  ``type(bid, text, press_enter_after)``);
- structured fields: ``action_name`` names the action, ``action_args`` and
  ``action_map`` say which fields hold its arguments (an element id, the typed text,
  coordinates, ...) and what function it is;
- ``code`` the agent ran, ``message`` it sent, ``answer`` it gave, or ``form_answers``:
  values it entered into the web form on the page, one action per input in page order.

Each action becomes ``api_action`` with typed arguments (``code_action`` for code);
``stop``/``send_msg_to_user``, messages and answers become a message to the user, final
when it ends the trajectory (``stop``'s argument and answers are also the ``answer``).
Pages become ``web_observation`` (with the screenshot as its ``image_observation``), or
an ``image_observation`` of the screenshot alone; the page after an action carries that
action's ``tool_call_id``. A step's ``thought`` may be missing or null.

Where a step's parts are, per dataset:

- fields: ``goal``, ``axtree``, ``html``, ``url``, ``screenshot``, ``action``, ``thought``
  name them directly (``screenshot`` may be a template such as ``{path}.png``);
- ``prompt`` (``prompt_format: webarena``): the WebArena prompt text with ``OBSERVATION:``,
  ``URL:``, ``OBJECTIVE:`` and ``PREVIOUS ACTIONS:`` sections;
- ``prompt`` (``prompt_format: python``): a Python-like prompt assigning the page, goal and
  site to variables (``prompt_vars``), then the past actions as a ``def`` block, which
  ``history_header`` appends to the page text;
- ``response`` (``response_format: fenced``): a thought, then the action in a ```` ``` ````
  fence (the last fenced text that reads as an action wins);
- ``response`` (``response_format: python``): ``#`` comment lines (the thought) around one
  call line.

Steps of one trajectory are consecutive records sharing ``group_by`` (a mapping option
every shape has), a record that is itself a list of steps, or the list in a record's
``steps`` field (each step also sees the record's own fields); a step that cannot be
read rejects the whole trajectory with that step's reason. With
``trajectory_per_step`` each step is a trajectory of its own, with id ``<id>_<n>``.
"""

from __future__ import annotations

import ast
import html as html_lib
import keyword
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from ember.adp.mapping import (BaseMapping, ConvertError, get_field, has_content, is_template,
                               option, record_details, record_id, render, template_fields,
                               typed)
from ember.adp.model import (annotation, api_action, code_action, image_observation,
                             message_action, text_observation, trajectory, web_observation)
from ember.adp.text import compile_phrases

# Parameter names of the BrowserGym action set (browsergym.core.action.functions), used
# to name positional arguments; `type` and `stop` are the WebArena actions ADP keeps.
BROWSERGYM_ARGS = {
    "send_msg_to_user": ["text"], "report_infeasible": ["reason"], "noop": ["wait_ms"],
    "fill": ["bid", "value"], "check": ["bid"], "uncheck": ["bid"],
    "select_option": ["bid", "options"], "click": ["bid", "button", "modifiers"],
    "dblclick": ["bid", "button", "modifiers"], "hover": ["bid"], "press": ["bid", "key_comb"],
    "focus": ["bid"], "clear": ["bid"], "drag_and_drop": ["from_bid", "to_bid"],
    "scroll": ["delta_x", "delta_y"], "mouse_move": ["x", "y"],
    "mouse_up": ["x", "y", "button"], "mouse_down": ["x", "y", "button"],
    "mouse_click": ["x", "y", "button"], "mouse_dblclick": ["x", "y", "button"],
    "mouse_drag_and_drop": ["from_x", "from_y", "to_x", "to_y"],
    "keyboard_press": ["key"], "keyboard_up": ["key"], "keyboard_down": ["key"],
    "keyboard_type": ["text"], "keyboard_insert_text": ["text"], "goto": ["url"],
    "go_back": [], "go_forward": [], "new_tab": [], "tab_close": [], "tab_focus": ["index"],
    "upload_file": ["bid", "file"], "mouse_upload_file": ["x", "y", "file"],
    "type": ["bid", "text", "press_enter_after"], "stop": ["answer"],
}

# Actions that speak to the user: function -> the argument holding the text.
MESSAGES = {"stop": "answer", "send_msg_to_user": "text"}

# WebArena `name [arg] ...` -> (BrowserGym function, argument names); `type` and
# `scroll` are read by their own rules below.
WEBARENA = {
    "click": ("click", ["bid"]), "hover": ("hover", ["bid"]),
    "press": ("keyboard_press", ["key"]), "goto": ("goto", ["url"]),
    "tab_focus": ("tab_focus", ["index"]), "stop": ("stop", ["answer"]),
    "new_tab": ("new_tab", []), "close_tab": ("tab_close", []),
    "go_back": ("go_back", []), "go_forward": ("go_forward", []),
}
SCROLL_PIXELS = 500  # what ADP writes for one WebArena `scroll [down]`

_WEBARENA_CALL = re.compile(r"\s*([a-z_]+)\s*(.*?)\s*", re.S)
_TYPE_ARGS = re.compile(r"\[([^\]]*)\]\s*\[(.*?)\](?:\s*\[([01])\])?", re.S)
_FENCE = re.compile(r"`{3,}")
_HISTORY = re.compile(r"^def \w+\(.*?\):", re.M)
_ASSIGN = re.compile(r"(\w+)\s*=\s*(.*)")
_CLOSING = {q: re.compile(rf"{q}[^\S\n]*$", re.M) for q in ('"""', "'''")}
# A call line `name(key="text", key='text')` whose values hold no quote, backslash or
# line break: the shape past actions take, read without ast. Names are ASCII (ast would
# normalise others) and no Python keyword (ast would reject the line).
_NAME = rf"(?!(?:{'|'.join(keyword.kwlist)})(?![A-Za-z0-9_]))[A-Za-z_][A-Za-z0-9_]*"
_STRING = r"""(?:"[^"\\\r\n\x00\ud800-\udfff]*"|'[^'\\\r\n\x00\ud800-\udfff]*')"""
_SIMPLE_CALL = re.compile(rf"({_NAME})\(((?:{_NAME}={_STRING}(?:, ?{_NAME}={_STRING})*)?)\) *")
_KEYWORD_ARG = re.compile(rf"({_NAME})(={_STRING})")


@dataclass
class Mapping(BaseMapping):
    final_last: bool = option(True, "Mark the last event final when it is a message to the "
                                    "user.")
    steps: str | None = option(None, "Field holding the trajectory's steps as a list (each step "
                                     "is read like a record of its own that also sees the "
                                     "record's fields).", reads="path")
    goal: str | None = option(None, "Field holding the task.", reads="path")
    axtree: str | None = option(None, "Field holding the page's accessibility tree.",
                                reads="path")
    html: str | None = option(None, "Field holding the page's HTML.", reads="path")
    page_vars: bool = option(False, "Fill `${name}` placeholders in the page HTML with the "
                                    "record's field `name` (Mechanical Turk templates).")
    url: str | None = option(None, "Field holding the page URL.", reads="path")
    screenshot: str | None = option(None, "Field (or template, e.g. `{image_path}.png`) "
                                          "holding the path of the step's screenshot.",
                                    reads="template")
    annotations: dict[str, str] = option({}, "Labelled boxes on the screenshot, as parallel "
                                         "lists: `text` and `element_type` (field paths, or "
                                         "`=VALUE` for one value for all), and `box` (boxes of "
                                         "4 numbers) with `box_format` `xywh`, `yxhw` or "
                                         "`xyxy`, or `top_left` and `bottom_right` (lists of "
                                         "[x, y]).")
    start_url: str | None = option(None, "Template of a URL the trajectory opens with: a "
                                         "`goto(url)` action whose result is the first page.",
                                   reads="template")
    action: str | None = option(None, "Field holding the action call string.", reads="path")
    thought: str | None = option(None, "Field holding the agent's reasoning before the action "
                                       "(may be missing or null).", reads="path")
    action_name: str | None = option(None, "Field holding the name of a structured action "
                                           "(instead of a call string).", reads="path")
    action_args: dict[str, str] = option({}, "Structured actions: argument -> field path read "
                                             "for every action (fields missing or empty are "
                                             "left out), e.g. `{bid: element_id, text: value}`.",
                                         reads="paths")
    action_map: dict[str, dict] = option({}, "Structured actions by name: `{function: NAME, "
                                             "args: {argument: field path or =VALUE}}`, or "
                                             "`{message: field path or =VALUE}` for a message "
                                             "to the user; names not listed keep their name "
                                             "and `action_args`.")
    code: str | None = option(None, "Field holding code the agent ran as the step's action.",
                              reads="path")
    code_language: str = option("python", "Language of `code`.")
    message: str | None = option(None, "Field holding a message to the user that is the step's "
                                       "action.", reads="path")
    answer: str | None = option(None, "Field holding the step's final answer; when it is not "
                                      "empty the step answers instead of acting.", reads="path")
    form_answers: str | None = option(None, "Field holding the values entered into the page's "
                                            "web form (`{input name: value}`); each input with "
                                            "a value is one action, in page order, and the "
                                            "page after it shows the input filled.",
                                      reads="path")
    prompt: str | None = option(None, "Field holding the prompt text that shows the page and "
                                      "the task (instead of goal/axtree/url).", reads="path")
    prompt_format: str = option("webarena", "How `prompt` is written: `webarena` "
                                            "(OBSERVATION/URL/OBJECTIVE sections) or `python` "
                                            "(variables, then a `def` block of past actions).")
    prompt_vars: dict[str, str] = option({"goal": "objective", "axtree": "observation",
                                          "url": "website"},
                                         "For `prompt_format: python`: goal/axtree/url -> the "
                                         "variable holding it.")
    history_header: str | None = option(None, "For `prompt_format: python`: append the "
                                              "past-actions block to the page text under this "
                                              "header line.")
    response: str | None = option(None, "Field holding the model output with thought and "
                                        "action (instead of action/thought).", reads="path")
    response_format: str = option("fenced", "How `response` is written: `fenced` (thought, "
                                            "then the action in ``` fences) or `python` (# "
                                            "comment lines and one call line).")
    strip_phrases: list[str] = option([], "Regexes removed from thoughts (e.g. a fixed lead-in "
                                          "to the action).", regex="list")
    full_stop_after: list[str] = option([], "For `response_format: python`: comment lines "
                                            "starting with one of these regexes get a closing "
                                            "full stop when they lack one.", regex="list")
    rename_args: dict[str, str] = option({}, "Argument renames for all calls (and past "
                                             "actions), e.g. element_id: bid.")
    arg_names: dict[str, list[str]] = option({}, "Names of positional arguments per function, "
                                                 "over the BrowserGym ones.")
    task_template: str = option("{goal}", "The first user message, a template: `{goal}` is the "
                                          "task, `{start_url}` the start URL, other names are "
                                          "fields.", reads="template")
    reward: str | None = option(None, "Field holding the trajectory's reward; records below "
                                      "`min_reward` are rejected (`low-reward`).", reads="path")
    min_reward: float = option(1.0, "See `reward`.")
    viewport_size: list[int] | None = option(None, "Browser viewport [width, height] the pages "
                                                   "were taken at.")
    trajectory_per_step: bool = option(False, "Each step is a trajectory of its own (the task, "
                                              "the step's page and action), with id "
                                              "`<id>_<n>`, n counting steps from 0.")

    def consumed(self) -> frozenset[str]:
        names = set(super().consumed())
        for spec in self.action_map.values():
            if isinstance(spec, dict):
                for value in [*(spec.get("args") or {}).values(), spec.get("message")]:
                    if isinstance(value, str) and not value.startswith("="):
                        names.add(value.split(".")[0])
        for key, value in self.annotations.items():
            if key != "box_format" and isinstance(value, str) and not value.startswith("="):
                names.add(value.split(".")[0])
        return frozenset(names)

    def unmapped(self, record):
        out = super().unmapped(record)
        if self.page_vars and isinstance(record, dict) and self.html:
            page = get_field(record, self.html, None)
            if isinstance(page, str):  # the fields its ${name} placeholders show
                shown = set(_PAGE_VAR.findall(page))
                out = [name for name in out if name not in shown]
        return out


class Step(NamedTuple):
    goal: str | None
    page: dict | None     # web_observation fields, or None when the step shows no page
    image: dict | None    # the screenshot: {content, annotations}
    thought: str | None
    actions: list         # ("api", function, kwargs, page after or None) / ("message", text,
                          # answer or None) / ("code", language, code)


# --- reading one call string ----------------------------------------------------------


def parse_action(text: str, arg_names: dict | None = None,
                 renames: dict | None = None) -> tuple[str, dict] | None:
    """``"fill('5', 'hi')"`` or ``"type [5] [hi] [0]"`` -> ``(function, kwargs)``.

    None when the text is no action of either syntax; ConvertError when it is a call
    whose arguments cannot be read.
    """
    call = _python_call(text, arg_names or {})
    if call is None:
        call = _webarena_call(text)
    if call is None:
        return None
    function, kwargs = call
    if renames:
        kwargs = {renames.get(k, k): v for k, v in kwargs.items()}
    return function, kwargs


def _python_call(text: str, arg_names: dict) -> tuple[str, dict] | None:
    """``arg_names`` adds to / overrides BROWSERGYM_ARGS."""
    simple = _SIMPLE_CALL.fullmatch(text.strip())
    if simple:  # name(key="text", ...): what ast would read
        return simple[1], {m[1]: m[2][2:-1] for m in _KEYWORD_ARG.finditer(simple[2])}
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None
    function = node.func.id
    names = arg_names[function] if function in arg_names else BROWSERGYM_ARGS.get(function, [])
    if len(node.args) > len(names):
        raise ConvertError("unparseable-action",
                           f"{function}() takes {len(names)} positional argument(s): {text!r}")
    kwargs = {}
    try:
        for name, arg in zip(names, node.args):
            kwargs[name] = ast.literal_eval(arg)
        for kw in node.keywords:
            if kw.arg is None:
                raise ValueError("**kwargs")
            kwargs[kw.arg] = ast.literal_eval(kw.value)
    except (ValueError, TypeError, SyntaxError) as e:
        raise ConvertError("unparseable-action",
                           f"argument of {function}() is not a literal ({e}): {text!r}") from None
    return function, kwargs


def _webarena_call(text: str) -> tuple[str, dict] | None:
    m = _WEBARENA_CALL.fullmatch(text)
    if not m:
        return None
    name, rest = m.groups()
    if name == "type":
        t = _TYPE_ARGS.fullmatch(rest)
        if not t:
            return None
        # WebArena presses Enter after typing unless told `[0]`.
        enter = 1 if t.group(3) is None else int(t.group(3))
        return "type", {"bid": t.group(1).strip(), "text": t.group(2),
                        "press_enter_after": enter}
    if name == "scroll":
        direction = rest.strip("[] ").removeprefix("direction=").strip()
        if direction not in ("up", "down"):
            return None
        return "scroll", {"delta_x": 0,
                          "delta_y": SCROLL_PIXELS if direction == "down" else -SCROLL_PIXELS}
    if name not in WEBARENA:
        return None
    function, names = WEBARENA[name]
    if not names:
        return (function, {}) if not rest else None
    if name == "stop" and not rest:
        return function, {"answer": ""}
    if not (rest.startswith("[") and rest.endswith("]")):
        return None
    arg: Any = rest[1:-1]
    if name == "tab_focus":
        if not arg.strip().isdigit():
            return None
        arg = int(arg)
    elif name != "stop":
        arg = arg.strip()
    return function, {names[0]: arg}


# --- reading one step ----------------------------------------------------------------


def _text(record: dict, path: str, what: str) -> str:
    return typed(get_field(record, path), str, what)


def _read_webarena_prompt(text: str) -> tuple[str, dict]:
    # The sections are found with str.find, as the regexes `OBSERVATION:(.*?)\nURL: ([^\n]*)`
    # and `OBJECTIVE:(.*?)(?:PREVIOUS ACTIONS:|\Z)` (re.S) would read them: a lazy .*?
    # costs a step per character of the page.
    start = text.find("OBSERVATION:")
    url = text.find("\nURL: ", start + len("OBSERVATION:")) if start >= 0 else -1
    if url < 0:
        raise ConvertError("unparseable-observation",
                           "prompt has no 'OBSERVATION: ... URL:' section")
    url_end = _line_end(text, url + len("\nURL: "))
    goal = ""
    objective = text.find("OBJECTIVE:", url_end)
    if objective >= 0:
        objective += len("OBJECTIVE:")
        actions = text.find("PREVIOUS ACTIONS:", objective)
        goal = text[objective:actions if actions >= 0 else len(text)].strip()
    return goal, {"axtree": text[start + len("OBSERVATION:"):url].strip(),
                  "url": text[url + len("\nURL: "):url_end].strip()}


def _read_python_prompt(text: str, mapping: Mapping) -> tuple[str, dict]:
    first = text.find("def ")  # where a match could start at the earliest
    m = _HISTORY.search(text, first) if first >= 0 else None
    head, history = (text[:m.start()], text[m.start():]) if m else (text, None)
    values = _assignments(head)
    names = mapping.prompt_vars
    missing = [names[k] for k in ("goal", "axtree") if names.get(k) not in values]
    if missing:
        raise ConvertError("missing-field", f"prompt assigns no {', '.join(missing)}")
    axtree = values[names["axtree"]]
    if mapping.history_header and history:
        history = _rename_keywords(history, mapping.rename_args)
        axtree = f"{axtree}\n\n{mapping.history_header}\n{history}"
    return values[names["goal"]], {"axtree": axtree, "url": values.get(names.get("url", ""))}


def _assignments(source: str) -> dict[str, str]:
    """``name = "text"`` and ``name = \"\"\"...\"\"\"`` string assignments of a Python-like text.

    Values are read as Python literals; one that is not valid Python (Synatra leaves
    quotes inside its strings unescaped) is taken verbatim between its outer quotes.
    """
    values = {}
    pos = 0  # start of the next line; the lines are walked in place, not split
    while pos <= len(source):
        end = _line_end(source, pos)
        m = _ASSIGN.match(source, pos, end)
        pos = end + 1
        if not m:
            continue
        name, value = m.group(1), m.group(2).strip()
        quote = value[:3] if value[:3] in ('"""', "'''") else value[:1]
        if quote not in ('"""', "'''", '"', "'"):
            continue
        if len(quote) == 3 and not (len(value) >= 6 and value.endswith(quote)):
            value, pos = _triple_quoted(source, pos, value, quote)
        if len(value) < 2 * len(quote) or not value.endswith(quote):
            continue
        body = value[len(quote):-len(quote)]
        if "\\" in body or "\r" in body or quote in body or body.endswith(quote[0]):
            try:
                text = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                text = body
        else:  # no escape, newline to translate or closing quote inside: the body it is
            text = body
        if isinstance(text, str):
            values[name] = text
    return values


def _line_end(source: str, pos: int) -> int:
    end = source.find("\n", pos)
    return len(source) if end < 0 else end


def _triple_quoted(source: str, pos: int, value: str, quote: str) -> tuple[str, int]:
    """Extend an opened triple-quoted ``value`` with the lines from ``pos`` up to the first
    that ends in ``quote`` (trailing whitespace dropped); returns it and the next line's
    start. Blank lines right after an opening that is only quotes are dropped."""
    if value.endswith(quote):  # e.g. just \"\"\" on its line
        while pos <= len(source) and not source[pos:_line_end(source, pos)].strip():
            pos = _line_end(source, pos) + 1
    closing = _CLOSING[quote].search(source, pos) if pos <= len(source) else None
    if closing is None:  # never closed: not a value
        return value, len(source) + 1
    return f"{value}\n{source[pos:closing.start() + len(quote)]}", closing.end() + 1


def _rename_keywords(source: str, renames: dict) -> str:
    """Rename keyword arguments in the call lines of ``source``, keeping its layout."""
    if not renames:
        return source
    lines = source.split("\n")
    for i, line in enumerate(lines):
        body = line.lstrip()
        # A keyword argument needs an "=", and in ASCII text (no identifier normalisation)
        # its name spelled out; lines without both are left as they are, unparsed.
        if "=" not in body or (body.isascii() and not any(old in body for old in renames)):
            continue
        simple = _SIMPLE_CALL.fullmatch(body)
        if simple:
            # name(key="text", ...): the keywords are exactly these tokens
            args = _KEYWORD_ARG.sub(lambda m: renames.get(m[1], m[1]) + m[2], simple[2])
            lines[i] = line[:len(line) - len(body) + simple.start(2)] + args + body[simple.end(2):]
            continue
        try:
            tree = ast.parse(body, mode="eval")
        except (SyntaxError, ValueError):
            continue
        spots = sorted((kw.col_offset, kw.arg) for kw in ast.walk(tree)
                       if isinstance(kw, ast.keyword) and kw.arg in renames)
        data = body.encode()  # ast offsets count UTF-8 bytes
        for offset, name in reversed(spots):
            data = data[:offset] + renames[name].encode() + data[offset + len(name):]
        lines[i] = line[:len(line) - len(body)] + data.decode()
    return "\n".join(lines)


def _read_fenced(text: str, mapping: Mapping, clean) -> tuple[str | None, tuple[str, dict]]:
    parts = _FENCE.split(text)
    for part in reversed(parts[1:]):
        call = parse_action(part.strip(), mapping.arg_names, mapping.rename_args)
        if call is not None:
            return clean(parts[0]), call
    raise ConvertError("unparseable-action", f"no fenced action in response: {text[-200:]!r}")


def _read_python_response(text: str, mapping: Mapping, clean, full_stop
                          ) -> tuple[str | None, tuple[str, dict]]:
    lines = [line.strip() for line in text.splitlines()]
    call = None
    for line in reversed(lines):
        if line and not line.startswith("#"):
            call = parse_action(line, mapping.arg_names, mapping.rename_args)
            if call is not None:
                break
    if call is None:
        raise ConvertError("unparseable-action", f"no action call in response: {text[-200:]!r}")
    comments = []
    for line in lines:
        if line.startswith("#"):
            if full_stop is not None and full_stop.match(line) and not line.endswith("."):
                line += "."
            comments.append(line)
    return clean("\n\n".join(comments)), call


def _optional_text(record: dict, path: str | None, what: str) -> str | None:
    value = get_field(record, path, None) if path else None
    return None if value is None else typed(value, str, what)


def _value(record: dict, spec: Any, what: str) -> Any:
    """A field's value, or the literal after '=' (``=button``)."""
    if isinstance(spec, str) and spec.startswith("="):
        return spec[1:]
    return get_field(record, spec)


_PAGE_VAR = re.compile(r"\$\{(\w+)\}")
BOX_FORMATS = ("xywh", "yxhw", "xyxy")


def _annotations(record: dict, spec: dict) -> list[dict] | None:
    """Labelled boxes from parallel lists of texts, element types and boxes."""
    texts = _value(record, spec["text"], "annotation text")
    if "box" in spec:
        boxes = typed(get_field(record, spec["box"]), list, f"field '{spec['box']}'")
        fmt = spec.get("box_format", "xywh")
    else:
        tl = typed(get_field(record, spec["top_left"]), list, f"field '{spec['top_left']}'")
        br = typed(get_field(record, spec["bottom_right"]), list,
                   f"field '{spec['bottom_right']}'")
        if len(tl) != len(br):
            raise ConvertError("wrong-type", f"{len(tl)} top-left corners but {len(br)} "
                                             "bottom-right ones")
        boxes, fmt = [list(a) + list(b) for a, b in zip(tl, br)], "xyxy"
    n = len(boxes)
    texts = texts if isinstance(texts, list) else [texts] * n
    kinds = _value(record, spec.get("element_type", "="), "element_type")
    kinds = kinds if isinstance(kinds, list) else [kinds] * n
    if not (len(texts) == len(kinds) == n):
        raise ConvertError("wrong-type", f"annotations: {len(texts)} texts, {len(kinds)} "
                                         f"element types and {n} boxes")
    out = []
    for text, kind, box in zip(texts, kinds, boxes):
        if not (isinstance(box, list) and len(box) == 4 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            raise ConvertError("wrong-type", f"annotation box {box!r} is not 4 numbers")
        if fmt == "xywh":
            x, y, w, h = box
        elif fmt == "yxhw":
            y, x, h, w = box
        else:
            x, y, w, h = box[0], box[1], box[2] - box[0], box[3] - box[1]
        out.append(annotation(str(text), str(kind), x, y, w, h))
    return out


# --- web forms -------------------------------------------------------------------------------

_FORM_TAG = re.compile(r"<(input|textarea|select)\b([^>]*)>", re.I)
_ATTR = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")


def _attrs(text: str) -> dict[str, str]:
    out = {}
    for m in _ATTR.finditer(text):
        value = m.group(2) or ""
        if value[:1] in "\"'" and value[-1:] == value[:1]:
            value = value[1:-1]
        out.setdefault(m.group(1).lower(), html_lib.unescape(value))
    return out


def _xpath_literal(value: str) -> str:
    return f'"{value}"' if '"' not in value else f"'{value}'"


def fill_form(page: str, answers: dict) -> list[tuple[str, dict, str]]:
    """The actions that enter ``answers`` ({input name: value}) into the form of ``page``:
    ``(function, kwargs, page after)`` per input with a non-empty value, in page order.
    Radio buttons and checkboxes are clicked (the page marks them ``checked``), text
    fields filled (their value set), selects chosen. Hidden inputs are no user action and
    are skipped; an answer that names no input is a ConvertError."""
    todo = {str(k): v if isinstance(v, str) else str(v) for k, v in answers.items()
            if has_content(v)}
    out: list[tuple[str, dict, str]] = []
    done: set[str] = set()
    hidden: set[str] = set()
    offset = 0  # how much the edits so far moved the text after them
    for m in list(_FORM_TAG.finditer(page)):
        tag, attrs = m.group(1).lower(), _attrs(m.group(2))
        name = attrs.get("name")
        if name not in todo or name in done:
            continue
        value, kind = todo[name], attrs.get("type", "text").lower() if tag == "input" else tag
        where = f"@name={_xpath_literal(name)}"
        start, end = m.start() + offset, m.end() + offset
        opening = page[start:end]
        if kind == "hidden":
            hidden.add(name)
            continue
        if kind == "radio":
            if attrs.get("value") != value:
                continue
            call = ("click", {"xpath": f"//input[{where} and @type=\"radio\" and "
                                       f"@value={_xpath_literal(value)}]"})
            edited = _with_attr(opening, "checked", "checked")
        elif kind == "checkbox":
            call = ("click", {"xpath": f"//input[{where} and @type=\"checkbox\"]"})
            edited = _with_attr(opening, "checked", "checked")
        elif kind == "textarea":
            call = ("fill", {"xpath": f"//textarea[{where}]", "value": value})
            close = page.find("</textarea>", end)
            if close >= 0:  # the text between the tags is the field's value
                edited = opening + html_lib.escape(value, quote=False)
                end = close
            else:
                edited = opening
        elif kind == "select":
            call = ("select_option", {"xpath": f"//select[{where}]", "options": value})
            edited = opening
        else:
            call = ("fill", {"xpath": f"//input[{where}]", "value": value})
            edited = _with_attr(opening, "value", value)
        page = page[:start] + edited + page[end:]
        offset += len(edited) - (end - start)
        done.add(name)
        out.append((call[0], call[1], page))
    missing = sorted(set(todo) - done - hidden)
    if missing:
        raise ConvertError("unparseable-action", f"form answer(s) {', '.join(missing)} name no "
                                                 "input on the page")
    return out


def _with_attr(opening: str, name: str, value: str) -> str:
    """An opening tag with attribute ``name`` set to ``value``."""
    attr = f' {name}="{html_lib.escape(value)}"'
    existing = re.search(rf"\s{name}(\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+))?(?=[\s/>])",
                         opening, re.I)
    if existing:
        return opening[:existing.start()] + attr + opening[existing.end():]
    cut = len(opening) - (2 if opening.endswith("/>") else 1)
    body = opening[:cut].rstrip()
    return body + attr + opening[len(body):]


# --- reading one step ---------------------------------------------------------------------


def _step_reader(mapping: Mapping):
    if mapping.prompt_format not in ("webarena", "python"):
        raise ValueError(f"browsergym: unknown prompt_format {mapping.prompt_format!r}")
    if mapping.response_format not in ("fenced", "python"):
        raise ValueError(f"browsergym: unknown response_format {mapping.response_format!r}")
    sources = [mapping.response, mapping.action, mapping.action_name, mapping.code,
               mapping.message, mapping.answer, mapping.form_answers]
    if not any(sources):
        raise ValueError("browsergym: a mapping needs an action: `response`, `action`, "
                         "`action_name`, `code`, `message`, `answer` or `form_answers`")
    if not (mapping.prompt or mapping.axtree or mapping.html or mapping.screenshot
            or mapping.url or mapping.start_url or mapping.message):
        raise ValueError("browsergym: a mapping needs `prompt` or `axtree` (or `html`, `url`, "
                         "`screenshot`, `start_url`) to show a page")
    if "goal" in template_fields(mapping.task_template) and not (mapping.prompt or mapping.goal):
        raise ValueError("browsergym: a mapping needs `goal` (or a `prompt` holding it) for "
                         "the task_template's {goal}")
    if mapping.form_answers and not mapping.html:
        raise ValueError("browsergym: `form_answers` needs the page's `html`")
    ann = mapping.annotations
    if ann:
        if "text" not in ann or not ("box" in ann or {"top_left", "bottom_right"} <= set(ann)):
            raise ValueError("browsergym: annotations need `text` and `box` (or `top_left` "
                             "and `bottom_right`)")
        if ann.get("box_format", "xywh") not in BOX_FORMATS:
            raise ValueError(f"browsergym: annotations.box_format is one of "
                             f"{', '.join(BOX_FORMATS)}")
        unknown = set(ann) - {"text", "element_type", "box", "box_format", "top_left",
                              "bottom_right"}
        if unknown:
            raise ValueError(f"browsergym: unknown annotations key(s) {', '.join(sorted(unknown))}")
    for name, spec in mapping.action_map.items():
        if not isinstance(spec, dict) or not (set(spec) <= {"function", "args", "message"}) \
                or ("message" in spec and set(spec) != {"message"}):
            raise ValueError(f"browsergym: action_map.{name} is {{function, args}} or "
                             f"{{message}}, got {spec!r}")
    strip = compile_phrases(mapping.strip_phrases)
    full_stop = compile_phrases(mapping.full_stop_after)

    def clean(text: str | None) -> str | None:
        if text is None:
            return None
        if strip is not None:
            text = strip.sub("", text)
        return text.strip() or None

    def structured(record: dict) -> tuple:
        name = get_field(record, mapping.action_name)
        if not isinstance(name, str) or not name:
            raise ConvertError("unparseable-action", f"action name {name!r} is not a string")
        spec = mapping.action_map.get(name, {})
        if "message" in spec:
            text = _value(record, spec["message"], "message")
            return ("message", str(text), None)
        args = {}
        for arg, path in {**mapping.action_args, **(spec.get("args") or {})}.items():
            value = _value(record, path, arg) if str(path).startswith("=") \
                else get_field(record, path, None)
            if has_content(value):
                args[arg] = value
        return ("api", spec.get("function", name), args, None)

    def read(record: dict) -> Step:
        if mapping.reward is not None:
            reward = typed(get_field(record, mapping.reward), (int, float), "reward")
            if reward < mapping.min_reward:
                raise ConvertError("low-reward", f"reward {reward} < {mapping.min_reward}")
        goal = None
        page: dict | None = None
        if mapping.prompt:
            text = _text(record, mapping.prompt, "prompt")
            goal, page = (_read_webarena_prompt(text) if mapping.prompt_format == "webarena"
                          else _read_python_prompt(text, mapping))
        elif mapping.axtree or mapping.html or mapping.url:
            page = {"axtree": _text(record, mapping.axtree, "axtree") if mapping.axtree
                    else None,
                    "url": _text(record, mapping.url, "url") if mapping.url else None}
            if mapping.html:
                html = _text(record, mapping.html, "html")
                if mapping.page_vars:
                    html = _PAGE_VAR.sub(lambda m: _page_var(record, m.group(1)), html)
                page["html"] = html
        if page is None and mapping.start_url:  # the start URL's page, nothing recorded of it
            page = {"url": None}
        if mapping.goal:
            goal = _text(record, mapping.goal, "goal")
        image = None
        if mapping.screenshot:
            path = (render(mapping.screenshot, record) if is_template(mapping.screenshot)
                    else _text(record, mapping.screenshot, "screenshot"))
            image = {"content": path,
                     "annotations": _annotations(record, ann) if ann else None}
        thought = None
        answer = _optional_text(record, mapping.answer, "answer") if mapping.answer else None
        if answer is not None and answer.strip():
            actions = [("message", answer, answer)]
        elif mapping.action_name:
            actions = [structured(record)]
        elif mapping.response:
            text = _text(record, mapping.response, "response")
            thought, call = (_read_fenced(text, mapping, clean)
                             if mapping.response_format == "fenced"
                             else _read_python_response(text, mapping, clean, full_stop))
            actions = [("api", *call, None)]
        elif mapping.action:
            text = _text(record, mapping.action, "action")
            call = parse_action(text, mapping.arg_names, mapping.rename_args)
            if call is None:
                raise ConvertError("unparseable-action", f"not a browser action: {text!r}")
            actions = [("api", *call, None)]
        elif mapping.code:
            actions = [("code", mapping.code_language, _text(record, mapping.code, "code"))]
        elif mapping.message:
            actions = [("message", _text(record, mapping.message, "message"), None)]
        else:
            answers = get_field(record, mapping.form_answers)
            typed(answers, dict, f"field '{mapping.form_answers}'")
            actions = [("api", f, kw, after) for f, kw, after in
                       fill_form(page["html"], answers)]
        if mapping.thought and thought is None:
            thought = clean(_optional_text(record, mapping.thought, "thought"))
        if page is not None and mapping.viewport_size is not None:
            page["viewport_size"] = mapping.viewport_size
        return Step(goal, page, image, thought, actions)

    return read


def _page_var(record: dict, name: str) -> str:
    value = get_field(record, name)
    return value if isinstance(value, str) else str(value)


# --- steps -> trajectory ---------------------------------------------------------------


def _page_event(page: dict | None, image: dict | None, call_id: str | None) -> dict | None:
    shot = (image_observation(image["content"], "environment", annotations=image["annotations"],
                              tool_call_id=None if page is not None else call_id)
            if image else None)
    if page is None:
        return shot
    return web_observation(**page, image_observation=shot, tool_call_id=call_id)


def _events(steps: list[Step], mapping: Mapping, task: str, start_url: str | None) -> list[dict]:
    events = [text_observation(task, "user")]
    pending = None  # the tool_call_id the next page answers
    calls = 0
    if start_url is not None:
        pending = "call_0"
        calls = 1
        events.append(api_action("goto", {"url": start_url}, None, tool_call_id=pending))
    for i, step in enumerate(steps):
        fields = step.page
        if i == 0 and start_url is not None and fields is not None and fields.get("url") is None:
            fields = dict(fields, url=start_url)  # the page the trajectory opened with
        page = _page_event(fields, step.image, pending)
        if page is not None:
            events.append(page)
        pending = None
        for j, act in enumerate(step.actions):
            thought = step.thought if j == 0 else None
            last = i == len(steps) - 1 and j == len(step.actions) - 1
            if act[0] == "api" and act[1] in MESSAGES:  # stop / send_msg_to_user
                arg = MESSAGES[act[1]]
                text = str(act[2].get(arg, ""))
                act = ("message", text, text if arg == "answer" else None)
            if act[0] == "message":
                final = last and mapping.final_last
                events.append(message_action(act[1], thought, final=final,
                                             answer=act[2] if final else None))
                continue
            pending = f"call_{calls}"
            calls += 1
            if act[0] == "code":
                events.append(code_action(act[1], act[2], thought, tool_call_id=pending))
            else:
                events.append(api_action(act[1], act[2], thought, tool_call_id=pending))
                if act[3] is not None:  # the page the action left (a form input filled)
                    events.append(web_observation(**dict(fields or {}, html=act[3]),
                                                  tool_call_id=pending))
                    pending = None
    return events


def converter(mapping: Mapping):
    read = _step_reader(mapping)

    def read_steps(record) -> tuple[dict, list[Step]]:
        if isinstance(record, list):
            steps, first = record, record[0] if record else {}
        elif mapping.steps:
            inner = typed(get_field(record, mapping.steps), list, f"field '{mapping.steps}'")
            outer = {k: v for k, v in record.items() if k != mapping.steps}
            steps, first = [{**outer, **typed(s, dict, f"step {i}")}
                            for i, s in enumerate(inner)], record
        else:
            steps, first = [record], record
        if not steps:
            raise ConvertError("empty-trajectory", "the record has no steps")
        for i, step in enumerate(steps):
            typed(step, dict, f"step {i}")
        read_ = []
        for i, step in enumerate(steps):
            try:
                read_.append(read(step))
            except ConvertError as e:
                if len(steps) == 1:
                    raise
                raise ConvertError(e.reason, f"step {i} of {len(steps)}: {e.detail}") from None
        return first, read_

    def task_of(first: dict, step: Step) -> tuple[str, str | None]:
        start = render(mapping.start_url, first) if mapping.start_url else None
        values = {"goal": step.goal, "start_url": start}
        return render(mapping.task_template, first, values), start

    def convert(record: dict | list[dict]) -> dict | list[dict]:
        first, steps = read_steps(record)
        details = record_details(first, mapping)
        if not mapping.trajectory_per_step:
            task, start = task_of(first, steps[0])
            return trajectory(record_id(first, mapping), _events(steps, mapping, task, start),
                              details)
        base = record_id(first, mapping)
        out = []
        for i, step in enumerate(steps):  # each step with its own task
            task, start = task_of(first, step)
            out.append(trajectory(f"{base}_{i}", _events([step], mapping, task, start), details))
        return out

    return convert
