"""Compare our ADP output with ADP's own ``sample_std.json`` (the golden files).

Equal means: same ids, same event classes in the same order, and the same content after
whitespace normalisation. The only differences tolerated are the documented improvements
in docs/adp-differences.md, switched on per dataset in
``tests/fixtures/adp/<dataset>/golden.yaml``:

- ``fabricated_finish``: ADP appends a randomly worded ``<finish>`` turn that is not in
  the raw data (sometimes after an invented user "well done" line); we do not, so ADP's
  trailing finish message, and such a user line before it, may be missing from ours.
- ``typed_kwargs`` is always on: ADP stores tool arguments as quoted strings
  (``{"bid": "\\"93\\""}``); we store typed values (``{"bid": "93"}``).
- ``source`` of observations is not compared (we label tool output ``environment``).
- ``ignore_kwargs``: tool arguments ADP's parser gets wrong (nnetnav's ``type`` Enter
  flag is "0" whenever the text has no ``[``); not compared on either side.
- ``adp_restarted``: ids where ADP's parser failed on a step it does not know and started
  the trajectory over after it, dropping the earlier steps; ADP's events must then equal
  the task plus the matching tail of ours.
- ``goal_as_message``: ADP writes the task as the agent's own message; we write it as the
  user's text. ADP's opening message is compared as a user text.
- ``page_before_task``: ADP shows the screenshot before the task, we the task first; ADP's
  first two events are compared in our order.
- ``label_descriptions``: descriptions ADP took from a label in the raw text (OmniAct's
  "Output Script"), not a thought; we leave the description empty.
- ``image_placeholder``: where ADP kept the placeholder (``<image>``) in the user's text
  and made no image observation, we made one; the placeholder is not compared and our
  image observations are left out of trajectories where ADP has none.
- ``adp_repeats``: ADP's file repeats trajectories under one id, each later copy a
  truncated prefix of the first; ember converts each raw record once. Repeats are keyed
  by ember's id rule (``ID#2``, ``ID#3``, ...) and must be prefixes of ADP's first copy.
- ``form_pages``: the pages after a web-form action are compared by class only: ADP
  re-serialises the page with BeautifulSoup and drops its URL; we mark the filled input
  in the raw page and keep the URL.
- ``xpath_spacing``: ADP writes a space before some XPaths' closing bracket; whitespace
  before ``]`` in arguments is not compared.
"""

from __future__ import annotations

import json
import re

from ember.adp.model import code_language, normalize_language, split_final_tags


def norm(text) -> str:
    return " ".join(str(text or "").split())


def _arg(value, quoted: bool) -> str:
    """One tool argument as text; ADP's (``quoted``) lose one layer of string quotes."""
    if isinstance(value, str):
        v = value.strip()
        if quoted and len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1]
        return norm(v)
    return norm(json.dumps(value))


def event_key(event: dict, adp_side: bool = False, ignore_kwargs=(), opts=None) -> tuple:
    opts = opts or {}
    cls = event["class_"]
    desc = norm(event.get("description"))
    if adp_side and desc in opts.get("label_descriptions", ()):
        desc = ""
    if cls == "message_action":
        text, _, _ = split_final_tags(event.get("content") or "")
        return cls, norm(text), desc
    if cls == "api_action":
        kwargs = {k: _arg(v, adp_side) for k, v in sorted((event.get("kwargs") or {}).items())
                  if k not in ignore_kwargs}
        if opts.get("xpath_spacing"):
            kwargs = {k: re.sub(r"\s+\]", "]", v) for k, v in kwargs.items()}
        return cls, event["function"], json.dumps(kwargs), desc
    if cls == "code_action":
        return cls, normalize_language(code_language(event)), norm(event["content"]), desc
    if cls == "web_observation":
        return cls, norm(event.get("axtree")), norm(event.get("url")), norm(event.get("html"))
    text = event.get("content")
    if adp_side and opts.get("image_placeholder") and cls == "text_observation":
        text = (text or "").replace(opts["image_placeholder"], "")
    return cls, norm(text)


def _form_page(events: list[dict], i: int) -> bool:
    """Whether event ``i`` is the page a web-form action (fill, click, ...) left."""
    return i > 0 and events[i]["class_"] == "web_observation" and \
        events[i - 1]["class_"] == "api_action" and events[i - 1]["function"] != "goto"


def is_finish(event: dict) -> bool:
    if event["class_"] != "message_action":
        return False
    return event.get("final") is True or split_final_tags(event.get("content") or "")[1]


def compare(ours: dict, theirs: dict, fabricated_finish: bool = False, ignore_kwargs=(),
            adp_restarted=(), opts=None, their_id=None) -> list[str]:
    """Differences between one of our trajectories and ADP's; empty when they match.
    ``opts``: the golden.yaml switches described above; ``their_id``: ADP's trajectory
    under ember's id rule, when ADP repeats ids."""
    opts = opts or {}
    diffs = []
    if ours["id"] != (their_id or str(theirs["id"])):
        diffs.append(f"id {ours['id']!r} != {theirs['id']!r}")
    mine, adp = list(ours["content"]), list(theirs["content"])
    if opts.get("image_placeholder") and not any(e["class_"] == "image_observation" for e in adp):
        mine = [e for e in mine if e["class_"] != "image_observation"]
    if opts.get("goal_as_message") and adp and adp[0]["class_"] == "message_action":
        adp[0] = {"class_": "text_observation", "content": adp[0]["content"], "source": "user"}
    if opts.get("page_before_task") and len(adp) > 1:
        adp[0], adp[1] = adp[1], adp[0]
    a = [event_key(e, ignore_kwargs=ignore_kwargs, opts=opts) for e in mine]
    b = [event_key(e, adp_side=True, ignore_kwargs=ignore_kwargs, opts=opts) for e in adp]
    if opts.get("form_pages"):
        a = [k[:1] if _form_page(mine, i) else k for i, k in enumerate(a)]
        b = [k[:1] if _form_page(adp, i) else k for i, k in enumerate(b)]
    if ours["id"] in adp_restarted and 1 < len(b) < len(a):
        a = a[:1] + a[len(a) - len(b) + 1:]
    if fabricated_finish and len(b) > len(a) and is_finish(adp[-1]):
        b = b[:-1]
        # Some scripts also invent the user's "well done" line before that finish.
        before = adp[len(b) - 1] if b else None
        if len(b) == len(a) + 1 and before and before["class_"] == "text_observation" \
                and before.get("source") == "user":
            b = b[:-1]
    if len(a) != len(b):
        diffs.append(f"{ours['id']}: {len(a)} events, ADP has {len(b)}: "
                     f"ours {[k[0] for k in a]} vs ADP {[k[0] for k in b]}")
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            diffs.append(f"{ours['id']} event {i}: ours {str(x)[:300]} != ADP {str(y)[:300]}")
            break
    return diffs
