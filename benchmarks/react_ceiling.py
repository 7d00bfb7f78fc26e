"""How fast can pure Python write ember's exact ADP output for a ReAct dataset?

    python benchmarks/react_ceiling.py --mb 50 --runs 3

convert_throughput.py's skeleton writes a bare event per turn (no thought, no call ids,
no arguments, no prompt rewrite, no tools list), so its speed is not a ceiling for a
converter whose output keeps all of that. This script holds the other yardstick: a
straight-line converter written for agenttuning_alfworld alone (its mapping's regexes,
no ember import, no per-event helper calls, the ids made unique as the driver does)
whose output must be byte-identical to `ember convert --from agenttuning_alfworld`'s —
the script checks that, then reports both as whole-process MB/s, best of --runs, with
the bytes each writes (JSON in benchmarks/results/react_ceiling.json).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATASET = "agenttuning_alfworld"
SCHEMA_VERSION = "1.1.0"  # checked by the byte comparison


def ceiling(src: str, dst: str) -> None:
    """agenttuning_alfworld -> ADP, written out by hand (see the module docstring)."""
    m = yaml.safe_load((ROOT / "adp" / "mappings" / f"{DATASET}.yaml").read_text())
    (rewrite, repl), = m["prompt_rewrites"]
    rewrite = re.compile(rewrite)
    with_thought, bare = (re.compile(p) for p in m["turn"])
    non_action = re.compile("|".join(f"(?:{p})" for p in m["non_actions"]), re.I)
    ack = re.compile(m["acknowledgement"], re.I)
    # the action rules as one alternation: branch group -> (tool, ((argument, group), ...))
    parts, plans = [], {}
    for i, rule in enumerate(m["actions"]):
        body = re.sub(r"\(\?P<(\w+)>", lambda g: f"(?P<r{i}_{g.group(1)}>", rule["match"])
        parts.append(f"(?P<r{i}>{body})")
    rules = re.compile("|".join(parts))
    for i, rule in enumerate(m["actions"]):
        names = re.findall(r"\(\?P<(\w+)>", rule["match"])
        plans[rules.groupindex[f"r{i}"]] = (rule["api"], tuple(
            (n, rules.groupindex[f"r{i}_{n}"]) for n in names))
    tools = [{"type": "function", "function": {
        "name": name, "description": spec["description"], "parameters": {
            "type": "object", "properties": {p: {"type": "string"} for p in spec["parameters"]},
            "required": list(spec["parameters"])}}} for name, spec in m["tools"].items()]
    seen: set[str] = set()
    following: dict[str, int] = {}
    rewritten: dict[str, str] = {}
    loads, dumps, nl = orjson.loads, orjson.dumps, orjson.OPT_APPEND_NEWLINE
    with open(src, "rb") as f, open(dst, "wb") as out:
        write = out.write
        for line in f:
            record = loads(line)
            events = []
            add = events.append
            pending = None
            calls = 0
            prompt = True
            for turn in record["conversations"]:
                text = turn["content"]
                if turn["role"] != "assistant":
                    if pending is not None:
                        add({"class_": "text_observation", "content": text,
                             "source": "environment", "tool_call_id": pending})
                        pending = None
                        continue
                    if prompt:
                        prompt = False
                        new = rewritten.get(text)
                        if new is None:
                            new = rewritten[text] = rewrite.sub(repl, text)
                        text = new
                    add({"class_": "text_observation", "content": text, "source": "user"})
                    continue
                pending = thought = action = None
                found = with_thought.search(text) if "THOUGHT:" in text and "ACTION:" in text \
                    else None
                if found:
                    thought = found.group("thought").strip() or None
                else:
                    found = bare.search(text)
                if found:
                    action = found.group("action").strip().lower()
                    if non_action.search(action):
                        action = None
                if action is None:
                    if ack.search(text.strip()):
                        add({"class_": "message_action", "content": text})
                    else:
                        add({"class_": "text_observation", "content": thought or text,
                             "source": "agent"})
                    continue
                hit = rules.match(action)
                name, args = plans[hit.lastindex]
                group = hit.group
                kwargs = {n: group(k).strip() for n, k in args if group(k) is not None}
                event = {"class_": "api_action", "function": name, "kwargs": kwargs}
                if thought is not None:
                    event["description"] = thought
                pending = event["tool_call_id"] = f"call_{calls}"
                calls += 1
                add(event)
            if events[-1]["class_"] == "message_action":
                events[-1]["final"] = True
            tid = record["id"]
            if tid in seen:  # the driver's UniqueIds: ID, ID#2, ID#3, ...
                k = following.get(tid, 2)
                while f"{tid}#{k}" in seen:
                    k += 1
                following[tid] = k + 1
                tid = f"{tid}#{k}"
            seen.add(tid)
            write(dumps({"id": tid, "schema_version": SCHEMA_VERSION, "content": events,
                         "details": {}, "tools": tools}, option=nl))


def best(cmd: list[str], runs: int) -> float:
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t)
    return min(walls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=50, help="input MB")
    ap.add_argument("--runs", type=int, default=3, help="runs each (best kept)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from convert_throughput import machine, write_repeated

    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        src, mine, theirs = (str(Path(tmp) / n) for n in ("in.jsonl", "ember.jsonl", "ceil.jsonl"))
        size = write_repeated(DATASET, Path(src), args.mb)
        ember = [sys.executable, "-m", "ember.cli.main", "convert", src, "--from", DATASET,
                 "-o", mine, "--workers", "1"]
        ours = [sys.executable, __file__, "--run", src, theirs]
        t_ember, t_ceiling = best(ember, args.runs), best(ours, args.runs)
        same = Path(mine).read_bytes() == Path(theirs).read_bytes()
        out_mb = Path(mine).stat().st_size / 1e6
    row = {"dataset": DATASET, "input_mb": size / 1e6, "output_mb": out_mb,
           "byte_identical": same, "ember_mb_s": size / 1e6 / t_ember,
           "ceiling_mb_s": size / 1e6 / t_ceiling, "ratio": t_ceiling / t_ember,
           "runs": args.runs, "machine": machine()}
    print(json.dumps(row, indent=1))
    (ROOT / "benchmarks" / "results" / "react_ceiling.json").write_text(json.dumps(row, indent=1))
    if not same:
        sys.exit("the hand-written converter's output differs from ember's: no ceiling")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--run"]:
        ceiling(sys.argv[2], sys.argv[3])
    else:
        main()
