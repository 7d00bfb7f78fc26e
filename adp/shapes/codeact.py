"""CodeAct chats -> ADP: the agent writes the code it runs inside its own message text.

Turns are read as in ``sharegpt``. In an assistant turn, ``<solution> X </solution>``
becomes a message whose answer is X; otherwise the first ``<execute> … </execute>``
block (CodeActInstruct) or, with ``fenced``, the first Markdown fence that names a
language (```` ```python ````, Code-Feedback) becomes a ``code_action``. The text before
the tag is the description; text after the closing tag is dropped, as in ADP. Any other
assistant turn is a plain message. A user turn starting with ``observation_prefix`` is
the environment's reply: the prefix (and an ``observation_suffix``) is cut and, right
after a code action, both get a ``tool_call_id`` (``call_0``, ``call_1``, …). Other user
turns are user messages, with ``task_prefix`` cut. A last assistant message is final.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ember.adp.mapping import ConvertError, option
from ember.adp.model import code_action, message_action, text_observation
from ember.adp.shapes import sharegpt
from ember.adp.text import (compile_replacements, compile_suffix, cut_prefix, cut_suffix,
                            replace_all)

FENCE_OPENING = re.compile(r"```(\w*)\n")


@dataclass
class Mapping(sharegpt.Mapping):
    execute_tag: str | None = option("execute", "Tag around code to run (`<execute>`); null to "
                                                "ignore such tags.")
    solution_tag: str | None = option("solution", "Tag around a proposed answer (`<solution>`); "
                                                  "null to ignore such tags.")
    fenced: bool = option(False, "The first Markdown code fence with a language in an "
                                 "assistant turn is a code action (tags, when set, are tried "
                                 "first).")
    language: str = option("python", "Language of code inside the execute tag.")
    observation_prefix: str = option(r"Observation:\n", "Regex matched at the start of a user "
                                     "turn that marks it as the environment's reply; the match "
                                     "is cut.", regex="value")
    observation_suffix: str | None = option(None, "Regex matched at the end of the "
                                                  "environment's reply and cut.", regex="value")
    task_prefix: str | None = option(r"Task:\n", "Regex matched at the start of other user "
                                                 "turns and cut.", regex="value")
    replace: dict[str, str] = option({}, "Regex -> replacement (re.sub, every match) in user "
                                         "and environment turns, e.g. rewording a warning that "
                                         "spells out the raw action syntax.", regex="keys")

    def __post_init__(self):
        super().__post_init__()
        self._replace = compile_replacements(self.replace)
        self._suffix = compile_suffix(self.observation_suffix)
        self._tags = [(kind, _tag_finder(tag)) for kind, tag in (("solution", self.solution_tag),
                                                                 ("execute", self.execute_tag))
                      if tag]
        if self.fenced:
            self._tags.append(("fence", _find_fence))
        self._observation = re.compile(self.observation_prefix)
        self._task = re.compile(self.task_prefix) if self.task_prefix else None


# The finders return (start, language, inner text) of the first block, or None: what
# re.search(r"<tag>(.*?)</tag>") and re.search(r"```(\w+)?\n(.*?)\n```") (re.S) find,
# with str.find looking for the closing text (a lazy .*? costs a step per character).

def _tag_finder(tag: str):
    opening, closing = f"<{tag}>", f"</{tag}>"

    def find(text: str) -> tuple[int, None, str] | None:
        start = text.find(opening)
        end = text.find(closing, start + len(opening)) if start >= 0 else -1
        return None if end < 0 else (start, None, text[start + len(opening):end])

    return find


def _find_fence(text: str) -> tuple[int, str | None, str] | None:
    opening = FENCE_OPENING.search(text)
    end = text.find("\n```", opening.end()) if opening else -1
    return None if end < 0 else (opening.start(), opening[1] or None, text[opening.end():end])


def _assistant(text: str, mapping: Mapping) -> dict:
    for kind, find in mapping._tags:
        found = find(text)
        if found is None:
            continue
        start, language, inner = found
        description = text[:start].strip() or None
        if kind == "solution":
            answer = inner.strip()
            return message_action(answer, description, answer=answer)
        if kind == "fence":
            if not language:  # the first fence names no language: prose, as in ADP
                break
            code = inner.strip("\r\n")
        else:
            language, code = mapping.language, inner.strip()
        if not code.strip():
            raise ConvertError("unparseable-action", f"empty {kind} block in: {text[:200]!r}")
        return code_action(language, code, description)
    return message_action(text)


def converter(mapping: Mapping):
    def convert(record: dict) -> dict:
        events: list[dict] = []
        calls = 0
        for role, text in sharegpt.turns(record, mapping):
            if role == "assistant":
                events.append(_assistant(text, mapping))
                continue
            if role == "system":
                events.append(text_observation(text, "user", name="system"))
                continue
            if role == "user":
                text, observed = cut_prefix(mapping._observation, text)
                if observed:
                    role = "environment"
                    text = cut_suffix(mapping._suffix, text)
                else:
                    text, _ = cut_prefix(mapping._task, text)
            text = replace_all(mapping._replace, text)
            call_id = None
            if role == "environment" and events and events[-1]["class_"] == "code_action":
                call_id = events[-1]["tool_call_id"] = f"call_{calls}"
                calls += 1
            events.append(text_observation(text, role, tool_call_id=call_id))
        return sharegpt.build(record, mapping, events)

    return convert
