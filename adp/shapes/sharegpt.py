"""Plain chat turns -> ADP: ShareGPT ``from``/``value`` and its ``role``/``content`` kin.

A record holds a list of turns, each with a role and a text. User turns become user text
observations, assistant turns become message actions (the last one, if it ends the chat,
is marked final), tool turns become environment observations. System turns become a
user observation named ``system`` or are dropped, and a phrase worth keeping can be
lifted out of them into the first user turn. The key and role names are mapping options,
so both spellings of chat data share this module; ``codeact`` builds on its turn reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ember.adp.mapping import (SYSTEM_CHOICES, SYSTEM_HELP, BaseMapping, ConvertError, get_field,
                               mark_final, option, record_details, record_id, role_and_text,
                               typed)
from ember.adp.model import message_action, text_observation, trajectory

ROLES = ("user", "assistant", "system", "environment")

DEFAULT_ROLES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "model": "assistant",
    "system": "system",
    "tool": "environment", "observation": "environment", "function": "environment",
}


@dataclass
class Mapping(BaseMapping):
    final_last: bool = option(True, "Mark the last event final when it is an assistant message.")
    messages: str = option("conversations", "Field holding the list of turns.", reads="path")
    role_key: str = option("from", "Key of a turn's role (`from` in ShareGPT, `role` in "
                                   "OpenAI-style chats).")
    content_key: str = option("value", "Key of a turn's text (`value` in ShareGPT, `content` "
                                       "in OpenAI-style chats).")
    roles: dict[str, str] = option(dict(DEFAULT_ROLES), "Raw role name -> one of user, "
                                   "assistant, system, environment. A role not listed is an "
                                   "`unknown-role` reject.")
    system: str = option("observation", SYSTEM_HELP)
    system_note: str | None = option(None, "Regex; its first match in the system turn is "
                                           "appended to the first user turn after a blank line "
                                           "(keeps e.g. a turn budget when the system prompt "
                                           "is dropped).", regex="value")

    def __post_init__(self):
        super().__post_init__()
        if self.system not in SYSTEM_CHOICES:
            raise ValueError(f"system must be 'observation' or 'drop', got {self.system!r}")
        bad = sorted(set(self.roles.values()) - set(ROLES))
        if bad:
            raise ValueError(f"roles may map only to {', '.join(ROLES)}; got {', '.join(bad)}")


    def turn_keys(self):
        return self.messages, frozenset((self.role_key, self.content_key))


def turns(record: dict, mapping: Mapping) -> list[tuple[str, str]]:
    """The record's turns as ``(role, text)``, roles in ROLES; system turns already handled."""
    raw = typed(get_field(record, mapping.messages), list, f"field '{mapping.messages}'")
    out: list[tuple[str, str]] = []
    note = None
    for i, turn in enumerate(raw):
        name, text = role_and_text(turn, i, mapping.messages, mapping.role_key,
                                   mapping.content_key)
        role = mapping.roles.get(name)
        if role is None:
            raise ConvertError("unknown-role", f"{mapping.messages}[{i}] has role {name!r}; the "
                                               f"mapping knows {', '.join(sorted(mapping.roles))}")
        if role == "system":
            if mapping.system_note and note is None:
                found = re.search(mapping.system_note, text)
                note = found.group(0) if found else None
            if mapping.system == "drop" or not text.strip():
                continue
        out.append((role, text))
    if note:
        for i, (role, text) in enumerate(out):
            if role == "user":
                out[i] = (role, f"{text}\n\n{note}")
                break
    return out


def build(record: dict, mapping: Mapping, events: list[dict]) -> dict:
    """Wrap events into a trajectory: reject one with no agent turn, mark the final message."""
    if not any(e["class_"].endswith("_action") for e in events):
        raise ConvertError("empty-trajectory", "the record has no assistant turn")
    mark_final(events, mapping)
    return trajectory(record_id(record, mapping), events, record_details(record, mapping))


def converter(mapping: Mapping):
    def convert(record: dict) -> dict:
        events = []
        for role, text in turns(record, mapping):
            if role == "assistant":
                events.append(message_action(text))
            elif role == "system":
                events.append(text_observation(text, "user", name="system"))
            else:
                events.append(text_observation(text, role))  # user or environment
        return build(record, mapping, events)

    return convert
