"""ReAct text -> ADP: assistant turns that write a thought, then an action, as plain text.

A record holds a list of ``{role, content}`` turns (AgentInstruct / AgentTuning style).
The first user turn is the task prompt; ``prompt_rewrites`` (regex substitutions) can
trim or reword it. Each assistant turn is split into a thought and an action text by the
first matching ``turn`` pattern (named groups ``thought`` and ``action``), and the action
text is read by the first matching ``actions`` rule (``re.match``, so anchored at the
start); the rule's named groups fill the event::

    {match: 'go to (?P<location>.+)', api: go}             # api_action(go, {location})
    {match: '(?P<function>\\w+)\\((?P<args>.*)\\)', api: true} # name(a, b); names from tools
    {match: '(?s)```bash\\n(?P<code>.*)\\n```', code: bash}   # code_action
    {match: 'answer\\((?P<answer>.*)\\)', answer: true}        # message carrying the answer
    {match: 'finish', finish: true}                          # final message (group message)

An assistant turn without an action is an acknowledgement message when it matches
``acknowledgement``; otherwise ``unparsed`` says what it becomes. A user turn right after
a tool action is that action's output (``tool_call_id`` ``call_<n>``; the
``observation_prefix`` and ``observation_suffix`` are cut); other user turns are user
messages, and ``system_roles`` turns follow ``system``. With ``final_last`` (the default)
a message action that ends the trajectory is final.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ember.adp.mapping import (SYSTEM_CHOICES, SYSTEM_HELP, BaseMapping, ConvertError, get_field,
                               mark_final, option, record_details, record_id, role_and_text,
                               typed)
from ember.adp.text import (Alternatives, compile_phrases, compile_suffix, cut_suffix,
                             required_text)
from ember.adp.model import (api_action, code_action, message_action, text_observation,
                             trajectory)

KINDS = ("api", "code", "answer", "finish")
RESERVED_GROUPS = {"thought", "function", "args", "code", "answer", "message"}


@dataclass
class Mapping(BaseMapping):
    final_last: bool = option(True, "Mark the last event final when it is an assistant message.")
    messages: str = option("conversations", "Field holding the list of turns.", reads="path")
    role_key: str = option("role", "Key of a turn's role.")
    content_key: str = option("content", "Key of a turn's text.")
    assistant_roles: list[str] = option(["assistant", "gpt"], "Role names of the agent; every "
                                        "other role speaks for the user/environment.")
    system_roles: list[str] = option(["system"], "Role names of system turns (see `system`).")
    system: str = option("observation", SYSTEM_HELP)
    prompt_rewrites: list[list[str]] = option([], "[pattern, replacement] regex substitutions "
                                              "applied in order to the first user turn (the "
                                              "task prompt).", regex="pairs")
    turn: list[str] = option([], "Regexes splitting an assistant turn into named groups "
                                 "`thought` and `action`; the first that matches (re.search) "
                                 "wins.", regex="list")
    actions: list[dict] = option([], "Rules reading the action text: `match` (regex) plus one "
                                     "of `api` (function name, or true to take group "
                                     "`function`), `code` (language), `answer: true` or "
                                     "`finish: true`. See the module docstring.", regex="rules")
    lowercase_action: bool = option(False, "Lower-case the action text before matching (and so "
                                           "the arguments).")
    non_actions: list[str] = option([], "Regexes (searched, case-insensitive) that make an "
                                        "action text no action at all, e.g. 'task failed'; the "
                                        "turn then counts as unparsed.", regex="list")
    acknowledgement: str | None = option(None, "Regex (re.search, case-insensitive) for "
                                               "assistant turns that only acknowledge the "
                                               "prompt, e.g. 'Ok.'; they become plain messages.",
                                         regex="value")
    unparsed: str = option("message", "An assistant turn with no action: `message` "
                                      "(message_action), `observation` (text_observation from "
                                      "the agent, as ADP writes it) or `error` (reject the "
                                      "record as unparseable-action).")
    observation_prefix: str | None = option(None, "Regex cut from the start of a tool's output, "
                                                  "e.g. 'Observation:\\s*'.", regex="value")
    observation_suffix: str | None = option(None, "Regex cut from the end of a tool's output, "
                                                  "e.g. '\\s*Please respond\\.$'.",
                                            regex="value")
    tools: dict[str, dict] = option({}, "name -> {description, parameters: [names] or {name: "
                                        "description}}: the tools, copied into the trajectory "
                                        "as OpenAI specs; their parameter order names "
                                        "positional `args`, and api actions must name one of "
                                        "them.")

    def __post_init__(self):
        super().__post_init__()
        if self.system not in SYSTEM_CHOICES:
            raise ValueError(f"system must be one of {', '.join(SYSTEM_CHOICES)}, "
                             f"got {self.system!r}")
        if self.unparsed not in ("message", "observation", "error"):
            raise ValueError(f"unparsed must be message, observation or error, "
                             f"got {self.unparsed!r}")
        for rule in self.actions:
            kinds = [k for k in KINDS if k in rule]
            if "match" not in rule or len(kinds) != 1:
                raise ValueError(f"action rule {rule!r} needs `match` and one of "
                                 f"{', '.join(KINDS)}")
            unknown = set(rule) - set(KINDS) - {"match"}
            if unknown:
                raise ValueError(f"action rule {rule!r}: unknown key(s) {sorted(unknown)}")
            if "api" in rule and not (rule["api"] is True or isinstance(rule["api"], str)):
                raise ValueError(f"action rule {rule!r}: `api` is a function name or true")
        for pattern in self.turn:
            if "action" not in re.compile(pattern).groupindex:
                raise ValueError(f"turn pattern {pattern!r} needs a group named `action`")
        for pair in self.prompt_rewrites:
            if not (isinstance(pair, list) and len(pair) == 2):
                raise ValueError(f"prompt_rewrites entries are [pattern, replacement], "
                                 f"got {pair!r}")


def _params(spec: dict) -> dict[str, str]:
    params = spec.get("parameters") or {}
    return {p: "" for p in params} if isinstance(params, list) else dict(params)


def _openai_tools(tools: dict[str, dict]) -> list[dict] | None:
    if not tools:
        return None
    out = []
    for name, spec in tools.items():
        params = _params(spec)
        props = {p: ({"type": "string", "description": d} if d else {"type": "string"})
                 for p, d in params.items()}
        out.append({"type": "function", "function": {
            "name": name, "description": spec.get("description", ""),
            "parameters": {"type": "object", "properties": props, "required": list(params)}}})
    return out


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def converter(mapping: Mapping):
    turn_res = [(regex, required_text(regex)) for regex in map(re.compile, mapping.turn)]
    rewrites = [(re.compile(p), r) for p, r in mapping.prompt_rewrites]
    ack = re.compile(mapping.acknowledgement, re.I) if mapping.acknowledgement else None
    obs_prefix = re.compile(mapping.observation_prefix) if mapping.observation_prefix else None
    obs_suffix = compile_suffix(mapping.observation_suffix)
    system_roles = frozenset(mapping.system_roles)
    # one search for all the patterns, in the lower-cased action; on ASCII text it can
    # match only where one phrase's longest required text is, which one case-sensitive
    # search finds ~3x faster than the case-insensitive one (none: always search)
    non_actions = compile_phrases(mapping.non_actions, re.I)
    needles = [max(required_text(re.compile(p, re.I), folded=True), key=len, default="")
               for p in mapping.non_actions]
    maybe_non_action = (re.compile("|".join(map(re.escape, needles))).search
                        if needles and all(needles) else None)
    params = {name: list(_params(spec)) for name, spec in mapping.tools.items()}
    tools = _openai_tools(mapping.tools)

    # Resolved once per mapping, not per turn: the rules as one alternation, the keys.
    kinds = [(next(k for k in KINDS if k in r), r) for r in mapping.actions]
    alternatives = Alternatives([r["match"] for r in mapping.actions])
    lowercase = mapping.lowercase_action
    role_key, content_key, messages = mapping.role_key, mapping.content_key, mapping.messages
    plain_keys = "." not in role_key and "." not in content_key
    assistant_roles = frozenset(mapping.assistant_roles)
    splitters = [(regex, tuple(required), "thought" in regex.groupindex)
                 for regex, required in turn_res]
    # The common rules, an api action of a fixed tool or code in a fixed language, read in
    # the loop below straight from the alternation's match: branch group -> (tool name,
    # ((argument, group), ...)) or (None, language, the code's group); every other rule
    # goes through `act`.
    fast: dict[int, tuple] = {}
    for slot, (i, own) in (alternatives.slots() if alternatives.regex is not None else {}).items():
        kind, rule = kinds[i]
        name = rule.get("api")
        if (kind == "api" and isinstance(name, str) and name and (not params or name in params)
                and all(n != "args" for n, _ in own)):
            fast[slot] = (name, tuple((n, k) for n, k in own if n not in RESERVED_GROUPS))
        elif kind == "code" and isinstance(rule["code"], str):
            fast[slot] = (None, rule["code"], dict(own).get("code"))
    rules_match = alternatives.regex.match if fast else None

    # A dataset's task prompt is mostly one instruction text shared by every record (one
    # distinct prompt in each AgentTuning sample but mind2web's), so its rewrite is kept.
    rewritten: dict[str, str] = {}

    def rewrite(text: str) -> str:
        out = rewritten.get(text)
        if out is None:
            out = text
            for regex, repl in rewrites:
                out = regex.sub(repl, out)
            if len(rewritten) < 64 and len(text) <= 65536:  # bounded: kept prompts are small
                rewritten[text] = out
        return out

    def api(groups: dict, fixed, text: str) -> tuple[str, dict]:
        name = groups.get("function") if fixed is True else fixed
        if not name:
            raise ConvertError("unparseable-action", f"no function name in {text[:200]!r}")
        if params and name not in params:
            raise ConvertError("unknown-tool", f"{name!r} is not one of {', '.join(params)}")
        kwargs = {k: v.strip() for k, v in groups.items()
                  if v is not None and k not in RESERVED_GROUPS}
        if groups.get("args") is not None:
            names = params.get(name, [])
            args = groups["args"].strip()
            # split from the right so commas inside the first (entity) argument survive
            parts = args.rsplit(",", len(names) - 1) if names and args else []
            if len(parts) != len(names):
                raise ConvertError("bad-arguments", f"{name} takes {len(names)} argument(s) "
                                                    f"({', '.join(names)}), got {args!r}")
            kwargs.update({n: _unquote(v) for n, v in zip(names, parts)})
        return name, kwargs

    def split(text: str) -> tuple[str | None, str | None]:
        """An assistant turn -> (thought, action text) by the first turn pattern that
        matches (one whose required text is missing is skipped without a search); the
        action is None if there is none or it is a non-action."""
        for pattern, required, has_thought in splitters:
            for part in required:
                if part not in text:
                    break
            else:
                m = pattern.search(text)
                if m:
                    thought = (m.group("thought") or "").strip() or None if has_thought else None
                    action = m.group("action").strip()
                    if lowercase:
                        action = action.lower()
                    if non_actions is not None:
                        lowered = action if lowercase else action.lower()
                        # without a phrase's required text the full search cannot match
                        if ((maybe_non_action is None or not lowered.isascii()
                             or maybe_non_action(lowered)) and non_actions.search(lowered)):
                            action = None
                    return thought, action
        return None, None

    def act(action: str, thought: str | None, call_id: str) -> dict:
        found = alternatives.match(action)
        if found is None:
            raise ConvertError("unparseable-action", f"no action rule matches {action[:200]!r}")
        i, g, whole = found
        kind, rule = kinds[i]
        if kind == "code":
            code = whole if g.get("code") is None else g["code"]
            return code_action(rule["code"], code, thought, tool_call_id=call_id)
        if kind == "api":
            name, kwargs = api(g, rule["api"], action)
            return api_action(name, kwargs, thought, tool_call_id=call_id)
        if kind == "answer":
            answer = (g.get("answer") or "").strip()
            return message_action(answer, thought, answer=answer)
        return message_action((g.get("message") or "").strip(), thought, final=True)

    def convert(record: dict) -> dict:
        traj_id = record_id(record, mapping)
        raw = typed(get_field(record, mapping.messages), list, f"field '{mapping.messages}'")
        events: list[dict] = []
        pending = None  # tool_call_id of the last action, until its output arrives
        n_calls = n_agent = 0
        seen_prompt = False
        for i, turn in enumerate(raw):
            try:  # plain keys holding strings: no helper call per turn
                role, text = turn[role_key], turn[content_key]
                if not (plain_keys and type(role) is str and type(text) is str
                        and type(turn) is dict):
                    raise TypeError
            except (KeyError, TypeError, IndexError):
                role, text = role_and_text(turn, i, messages, role_key, content_key)
            if role in system_roles:
                if mapping.system == "observation" and text.strip():
                    events.append(text_observation(text, "user", name="system"))
                continue
            if role not in assistant_roles:
                if pending is not None:
                    if obs_prefix and (m := obs_prefix.match(text)):
                        text = text[m.end():]
                    if obs_suffix is not None:
                        text = cut_suffix(obs_suffix, text)
                    events.append(text_observation(text, "environment", tool_call_id=pending))
                    pending = None
                    continue
                if not seen_prompt:
                    seen_prompt = True
                    if rewrites:
                        text = rewrite(text)
                events.append(text_observation(text, "user"))
                continue
            pending = None
            n_agent += 1
            thought, action = split(text)
            if action is None:
                if ack and ack.search(text.strip()):
                    events.append(message_action(text))
                    continue
                if mapping.unparsed == "error":
                    raise ConvertError("unparseable-action", f"{mapping.messages}[{i}]: "
                                                             f"no action in {text[:200]!r}")
                body = thought or text
                events.append(text_observation(body, "agent") if mapping.unparsed == "observation"
                              else message_action(body))
                continue
            m = rules_match(action) if rules_match is not None else None
            plan = fast.get(m.lastindex) if m is not None else None
            if plan is not None:
                group = m.group
                pending = f"call_{n_calls}"
                n_calls += 1
                if plan[0] is None:  # code: its group, else all the rule matched
                    code = group(plan[2]) if plan[2] is not None else None
                    events.append(code_action(plan[1], group(m.lastindex) if code is None
                                              else code, thought, tool_call_id=pending))
                    continue
                kwargs = {}
                for n, k in plan[1]:
                    v = group(k)
                    if v is not None:
                        kwargs[n] = v.strip()
                events.append(api_action(plan[0], kwargs, thought, tool_call_id=pending))
                continue
            event = act(action, thought, f"call_{n_calls}")
            if event.get("tool_call_id"):
                pending = event["tool_call_id"]
                n_calls += 1
            events.append(event)
        if not n_agent:
            raise ConvertError("empty-trajectory", "the record has no assistant turns")
        mark_final(events, mapping)
        return trajectory(traj_id, events, record_details(record, mapping), tools=tools)

    return convert
