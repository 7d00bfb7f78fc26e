"""ADP -> Harbor's Agent Trajectory Interchange Format (ATIF v1.7).

One ATIF trajectory per ADP trajectory: ``session_id`` is the ADP id, ``steps`` are
numbered from 1 and each has a ``source`` of ``system``, ``user`` or ``agent``:

- user text or image -> a ``user`` step (a ``text_observation`` named ``system`` -> a
  ``system`` step); text the agent said -> an ``agent`` step;
- a run of actions -> one ``agent`` step whose ``message`` is the first description (the
  thought) and whose ``tool_calls`` are the calls (api_action: function + kwargs;
  code_action: the code tools of the sft-chat export, ``execute_bash`` ``{"command"}``,
  ``execute_ipython_cell`` ``{"code"}``, ``execute_<language>`` ``{"code"}``);
- a message_action -> an ``agent`` step whose ``message`` is its content;
- observations -> ``observation.results`` of the agent step before them
  (``source_call_id`` names the call they answer); an environment observation with no
  agent step before it (a page loaded before the first action) goes in a ``system``
  step's observation. Images become ATIF image content parts.

What ATIF has no field for is kept under ``extra.adp`` (the trajectory's ``details``, a
message's description, ``final`` and ``answer``, a user-sourced observation's source, a
web page's URL, ...), so ``--from atif`` (``ember.adp.shapes.atif``) reads the ADP back.
``tools`` become ``agent.tool_definitions``; ``agent`` is otherwise ``unknown``, as ADP does
not record which agent produced a trajectory.
"""

from __future__ import annotations

import mimetypes

from ember.adp.export.sft_chat import (CALLS, CODE_TOOLS, call_of, events_of, final_parts,
                                       is_linked, link)
from ember.adp.model import SCHEMA_VERSION, code_language, details_of, normalize_language

ATIF_VERSION = "ATIF-v1.7"
ID_KEY = "session_id"  # where the trajectory id is (ember convert makes it unique)
CODE_TOOL_NAMES = {name for name, _ in CODE_TOOLS.values()}
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def image_part(path: str) -> dict:
    media = mimetypes.guess_type(path)[0]
    media = media if media in IMAGE_TYPES else "image/png"
    return {"type": "image", "source": {"media_type": media, "path": path}}


def _extra(target: dict, **values) -> None:
    """Put the non-empty values into ``target["extra"]["adp"]``."""
    values = {k: v for k, v in values.items() if not (v is None or v is False or v == "")}
    if values:
        target.setdefault("extra", {}).setdefault("adp", {}).update(values)


def _result(event: dict, call_id: str | None) -> dict:
    cls = event["class_"]
    result: dict = {}
    if call_id is not None:
        result["source_call_id"] = call_id
    if cls == "text_observation":
        result["content"] = event.get("content") or ""
        source = event.get("source")
        _extra(result, source=source if source != "environment" else None, name=event.get("name"),
               reward=event.get("reward"))
    elif cls == "image_observation":
        result["content"] = [image_part(event.get("content") or "")]
        _extra(result, class_=cls, source=event.get("source"), annotations=event.get("annotations"),
               reward=event.get("reward"))
    else:  # web_observation: the page text is the content, the rest is kept aside
        field = "axtree" if event.get("axtree") is not None else "html"
        text = event.get(field) or ""
        image = event.get("image_observation")
        if isinstance(image, dict) and image.get("content"):
            result["content"] = [{"type": "text", "text": text}, image_part(image["content"])]
        else:
            result["content"] = text
        _extra(result, class_=cls, page=field, url=event.get("url"),
               html=event.get("html") if field == "axtree" else None,
               viewport_size=event.get("viewport_size"), image_observation=image,
               reward=event.get("reward"))
    return result


def export(trajectory: dict) -> dict:
    events = events_of(trajectory)
    linked = is_linked(events)
    ids = link(events)
    steps: list[dict] = []
    agent_step: dict | None = None  # the step observations attach to
    previous_was_call = False

    def new_step(source: str, message: str = "") -> dict:
        step = {"step_id": len(steps) + 1, "source": source, "message": message}
        steps.append(step)
        return step

    for event, cid in zip(events, ids):
        cls = event["class_"]
        if cls in CALLS:
            name, args = call_of(event, linked)
            call = {"tool_call_id": cid, "function_name": name, "arguments": args}
            _extra(call, id_added=linked and not event.get("tool_call_id"))
            if previous_was_call:  # a run of calls is one step: parallel calls
                _extra(call, description=event.get("description"),
                       reasoning_content=event.get("reasoning_content"))
            else:
                agent_step = new_step("agent", event.get("description") or "")
                if event.get("reasoning_content"):
                    agent_step["reasoning_content"] = event["reasoning_content"]
            if cls == "code_action":
                _extra(call, language=normalize_language(code_language(event)))
            elif name in CODE_TOOL_NAMES:
                _extra(call, class_=cls)
            _extra(call, reward=event.get("reward"))
            agent_step.setdefault("tool_calls", []).append(call)
        elif cls == "message_action":
            text, final, answer = final_parts(event)
            agent_step = new_step("agent", text)
            if event.get("reasoning_content"):
                agent_step["reasoning_content"] = event["reasoning_content"]
            _extra(agent_step, description=event.get("description"), final=final, answer=answer,
                   reward=event.get("reward"))
        elif cls == "text_observation" and event.get("source") == "agent" and cid is None:
            agent_step = new_step("agent", event.get("content") or "")
            _extra(agent_step, class_=cls, name=event.get("name"), reward=event.get("reward"))
        elif cls == "text_observation" and event.get("source") == "user" and cid is None:
            is_system = event.get("name") == "system"
            step = new_step("system" if is_system else "user", event.get("content") or "")
            _extra(step, name=None if is_system else event.get("name"), reward=event.get("reward"))
            agent_step = None
        elif cls == "image_observation" and event.get("source") == "user" and cid is None:
            step = new_step("user")
            step["message"] = [image_part(event.get("content") or "")]
            _extra(step, annotations=event.get("annotations"), reward=event.get("reward"))
            agent_step = None
        else:
            if agent_step is None:
                agent_step = new_step("system")
            result = _result(event, cid)
            _extra(result, id_added=linked and cid is not None and not event.get("tool_call_id"))
            own_calls = {c["tool_call_id"] for c in agent_step.get("tool_calls", ())}
            if cid is not None and cid not in own_calls:
                del result["source_call_id"]  # ATIF links results to calls of their own step
                _extra(result, tool_call_id=cid)
            agent_step.setdefault("observation", {"results": []})["results"].append(result)
        previous_was_call = cls in CALLS
    out = {"schema_version": ATIF_VERSION, "session_id": str(trajectory.get("id")),
           "agent": {"name": "unknown", "version": "unknown"}, "steps": steps}
    if trajectory.get("tools"):
        out["agent"]["tool_definitions"] = trajectory["tools"]
    _extra(out, details=details_of(trajectory) or None,
           schema_version=trajectory.get("schema_version", SCHEMA_VERSION))
    return out
