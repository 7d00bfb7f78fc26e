"""Compare our ShareGPT exports with ADP's ``sample_sft_<format>.json``, turn by turn.

Both sides start from ADP's ``sample_std.json`` read as users do (``--from adp``), so a
difference is a rendering difference. Turns are compared whitespace-normalised. The
differences we keep on purpose are undone here, each named where it is handled:

- first turn: ADP puts randomly worded documentation of the dataset's functions, taken
  from a per-dataset ``api.py`` that is not part of the ADP record, in front of the first
  turn; we list the functions the trajectory calls, in our words. The rest of the turn
  (from the first event's text on) must match: both sides must contain that text, and
  what follows it must be the same, so an empty or cut first turn is a difference.

Every trajectory in ADP's SFT file must be compared (an export that loses records, or a
fixture folder that lost its samples, fails), and ``datasets`` finding none is an error.
- first page: ADP's "Focused element bid" is a module-level variable that leaks from the
  previous trajectory into the first page of the next one; ours starts at None.
- ``RANDOM_TAIL``: datasets whose last turns ADP invented with random wording, drawn
  separately for its std and SFT files, so the words cannot agree.
- ``undo`` (per format): where ADP writes code into a string literal without escaping
  it, we escape it; the test unescapes ours before comparing.
- ``fmt=""``: ADP's older SFT file ``sample_sft.json`` (llava_plus, screenagent) writes a
  call as its own ``function_call`` turn and its result as an ``observation`` turn; they
  are folded into the gpt and human turns around them before comparing. It appends its
  function documentation to the first turn instead of putting it in front; that tail is
  the documentation described above and is cut.
"""

from __future__ import annotations

import json
import re

from ember.adp.mapping import ConvertError, load_converter
from tests.conftest import FIXTURES

# dataset -> number of trailing turns ADP invented (a "task solved" user line and a finish)
RANDOM_TAIL = {"nebius_SWE-agent-trajectories": 2}

_FOCUSED = re.compile(r"\[Focused element bid: [^\]]*\]")


def norm(text: str) -> str:
    return " ".join(str(text).split())


def datasets(fmt: str) -> list[str]:
    found = sorted(p.parent.name for p in (FIXTURES / "adp").glob(f"*/sample_sft_{fmt}.json"))
    if not found:  # parametrize over nothing would skip the golden test, not fail it
        raise FileNotFoundError(f"no {FIXTURES / 'adp'}/*/sample_sft_{fmt}.json")
    return found


def std_trajectories(dataset: str) -> list[dict]:
    read = load_converter("adp")
    path = FIXTURES / "adp" / dataset / "sample_std.json"
    return [read(t) for t in json.loads(path.read_text())]


def compare(dataset: str, fmt: str, export, undo=lambda value: value) -> tuple[list[str], dict]:
    """Differences between our export and ADP's SFT file; and what we made per id."""
    name = f"sample_sft_{fmt}.json" if fmt else "sample_sft.json"
    theirs = {str(r["id"]): r for r in
              json.loads((FIXTURES / "adp" / dataset / name).read_text())}
    diffs, ours_by_id, compared = [], {}, set()
    for traj in std_trajectories(dataset):
        try:
            ours = export(traj)
        except ConvertError as exc:
            ours_by_id[traj["id"]] = exc
            if traj["id"] in theirs:
                diffs.append(f"{traj['id']}: we reject ({exc.reason}) what ADP exports")
            continue
        ours_by_id[traj["id"]] = ours
        if traj["id"] not in theirs:
            continue  # ADP dropped it (the tests say which and why)
        compared.add(traj["id"])
        a = [(t["from"], norm(undo(t["value"]))) for t in ours["conversations"]]
        b = [(t["from"], norm(t["value"])) for t in fold(theirs[traj["id"]]["conversations"])]
        if not fmt and b:  # the older format's function docs follow the first turn's text
            b[0] = (b[0][0], b[0][1].split(" The following pre-defined functions are")[0])
        if len(a) != len(b):
            diffs.append(f"{traj['id']}: {len(a)} turns, ADP has {len(b)}")
            continue
        tail = RANDOM_TAIL.get(dataset, 0)
        for i, ((who_a, x), (who_b, y)) in enumerate(zip(a, b)):
            if i == 0:  # from the first event's text on; an empty text anchors nothing
                first = _FOCUSED.sub("[F]", norm(traj["content"][0].get("content") or ""))
                x, y = _FOCUSED.sub("[F]", x), _FOCUSED.sub("[F]", y)
                same = bool(first) and first in x and first in y and \
                    x[x.index(first):] == y[y.index(first):]
            elif i >= len(a) - tail:
                same = (x.startswith("<function=finish>") == y.startswith("<function=finish>"))
            else:
                same = x == y
            if who_a != who_b or not same:
                diffs.append(f"{traj['id']} turn {i}:\n  ours {who_a}: {x[:300]}\n  "
                             f"ADP  {who_b}: {y[:300]}")
                break
    missing = sorted(set(theirs) - compared - {str(i) for i, r in ours_by_id.items()
                                               if isinstance(r, ConvertError)})
    if missing:
        diffs.append(f"ADP exports {missing}, which we never compared")
    if not compared:
        diffs.append(f"{dataset}: no trajectory compared")
    return diffs, ours_by_id


OLDER_ROLES = {"function_call": "gpt", "observation": "human"}


def fold(turns: list[dict]) -> list[dict]:
    """ADP's older SFT turns as gpt/human turns: a call joins the gpt turn before it, a
    result the human turn after it (as our exporters join a speaker's turns)."""
    out: list[dict] = []
    for turn in turns:
        who = OLDER_ROLES.get(turn["from"], turn["from"])
        if out and out[-1]["from"] == who:
            out[-1] = {"from": who, "value": f"{out[-1]['value']}\n\n{turn['value']}"}
        else:
            out.append({"from": who, "value": turn["value"]})
    return out


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.S)
