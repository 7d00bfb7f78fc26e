"""SWE-agent text turns: a discussion, then one command in a fenced block.

The agent writes ``DISCUSSION`` text and a single command between triple backticks; the
shell's reply is the next user turn. The system prompt's ``COMMANDS:`` section documents
the special commands (``open <path> [<line_number>]``, ``edit <start_line>:<end_line>``
with a body ending in ``end_of_edit``, ...): a command named there becomes an API action
whose arguments are matched to its signature and typed by its argument list, and the
section becomes the trajectory's tool specs. Any other command is a shell command
(the call ``bash`` with argument ``command``; map it with ``code_tools``). A turn
without a fenced block is a message. The rest is the shared walk of ``openai_messages``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from ember.adp.mapping import option
from ember.adp.shapes.openai_messages import (Call, Mapping as MessagesMapping,
                                              make_converter, message_text)

_ARG = re.compile(r"^\s+- (\w+) \((\w+)\) \[(required|optional)\]: ?(.*)$")
_HEADER = re.compile(r"(\w+):")
_SLOT_NAME = re.compile(r"<(\w+)>")
_SLOT_PART = re.compile(r"(<\w+>)")
_INT = re.compile(r"-?\d+")
_LANGUAGE_TAG = re.compile(r"\w+\s*")
# Quotes, backslashes or whitespace other than shlex's own: text shlex would read
# differently from str.split().
_SHLEX_SPECIAL = re.compile(r"['\"\\]|(?![ \t\r\n])\s")
_TYPES = {"int": "integer", "str": "string", "bool": "boolean", "float": "number"}


@dataclass
class Mapping(MessagesMapping):
    user_outputs: bool = option(True, "Tool output comes back as the next user turn.")
    content_keys: list[str] = option(["text", "content", "system_prompt"],
                                     "Keys of a turn's text, tried in order.")
    shell_call: str = option("bash", "Call name given to plain shell commands (argument "
                                     "`command`).")


def commands_from_prompt(prompt: str) -> dict[str, dict]:
    """The ``COMMANDS:`` section -> {name: {doc, signature: [lines], args: {arg: (type,
    required, doc)}}}."""
    commands: dict[str, dict] = {}
    lines = prompt.splitlines()
    if "COMMANDS:" not in lines:
        return commands
    cmd, mode, blank = None, None, False
    for line in lines[lines.index("COMMANDS:") + 1:]:
        if not line.strip():
            blank, mode = True, None
            continue
        header = _HEADER.fullmatch(line)
        if header:
            cmd = commands[header.group(1)] = {"doc": "", "signature": [], "args": {}}
            mode, blank = None, False
        elif cmd is None or (blank and not line.startswith(" ")):
            break  # prose after the section
        elif line.startswith("  docstring:"):
            cmd["doc"], mode = line.split(":", 1)[1].strip(), None
        elif line.startswith("  signature:"):
            cmd["signature"], mode = [line.split(":", 1)[1].strip()], "signature"
        elif line.startswith("  arguments:"):
            mode = "arguments"
        elif mode == "signature" and not line.startswith(" "):
            cmd["signature"].append(line.strip())
        elif mode == "arguments" and (arg := _ARG.match(line)):
            name, kind, need, doc = arg.groups()
            cmd["args"][name] = (_TYPES.get(kind, kind), need == "required", doc)
        blank = False
    return commands


def tool_specs(commands: dict[str, dict]) -> list[dict]:
    return [{"type": "function", "function": {
        "name": name, "description": c["doc"],
        "parameters": {"type": "object",
                       "properties": {a: {"type": t, "description": d}
                                      for a, (t, _, d) in c["args"].items()},
                       "required": [a for a, (_, req, _) in c["args"].items() if req]}}}
        for name, c in commands.items()]


def _typed(value: str, kind: str | None):
    if kind == "integer" and _INT.fullmatch(value.strip()):
        return int(value)
    return value


def parse_command(command: str, commands: dict[str, dict], shell_call: str) -> Call:
    """``open src/a.py 40`` -> Call("open", {"path": "src/a.py", "line_number": 40})."""
    first, _, rest = command.partition("\n")
    shell = Call(shell_call, {"command": command})
    try:
        words = shlex.split(first) if _SHLEX_SPECIAL.search(first) else first.split()
    except ValueError:
        return shell
    spec = commands.get(words[0]) if words else None
    if spec is None or not spec["signature"]:
        return shell
    sig = spec["signature"]
    slots = sig[0].split()[1:]
    if len(words) - 1 > len(slots):
        return shell
    kwargs: dict = {}
    for word, slot in zip(words[1:], slots):
        slot = slot.strip("[]")
        names = _SLOT_NAME.findall(slot)
        if [f"<{n}>" for n in names] == [slot]:
            kwargs[names[0]] = word
            continue
        # a slot like <start_line>:<end_line>: literal parts split the word
        pattern = "".join("(.+?)" if p.startswith("<") else re.escape(p)
                          for p in _SLOT_PART.split(slot) if p)
        m = re.fullmatch(pattern, word)
        if not m:
            return shell
        kwargs.update(zip(names, m.groups()))
    if len(sig) > 1:  # a body on the following lines, up to the terminator line
        body_names = _SLOT_NAME.findall(" ".join(sig[1:-1] or sig[1:]))
        terminator = sig[-1] if len(sig) > 2 else None
        body = rest.split("\n")
        if terminator and terminator in [b.strip() for b in body]:
            body = body[:[b.strip() for b in body].index(terminator)]
        if body_names:
            kwargs[body_names[0]] = "\n".join(body)
    types = {a: t for a, (t, _, _) in spec["args"].items()}
    return Call(words[0], {k: _typed(v, types.get(k)) for k, v in kwargs.items()})


def parse_turn(text: str, commands: dict[str, dict], shell_call: str):
    """(thought, [call]) for a turn with a fenced command; (text, []) otherwise."""
    parts = text.rsplit("```", 2)
    if len(parts) != 3:
        return text, []
    thought, command, remainder = parts
    if _LANGUAGE_TAG.fullmatch(command.partition("\n")[0]):  # a ```bash language tag
        command = command.partition("\n")[2]
    thought, command, remainder = thought.strip(), command.strip(), remainder.strip()
    if not command:
        return text, []
    thought = thought.removeprefix("DISCUSSION").strip()
    thought = thought.removesuffix("COMMAND").strip()
    if remainder:
        thought = f"{thought} {remainder}" if thought else remainder
    return thought, [parse_command(command, commands, shell_call)]


def converter(mapping: Mapping):
    def prepare(record: dict, messages: list[dict]):
        prompt = "\n".join(message_text(m, mapping.content_keys) for m in messages
                           if m.get(mapping.role_key) == "system")
        commands = commands_from_prompt(prompt)
        tools = tool_specs(commands) or None
        return tools, lambda msg, text: parse_turn(text, commands, mapping.shell_call)

    return make_converter(mapping, prepare)
