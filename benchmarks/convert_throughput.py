"""Convert throughput per dataset: ember with 1 and N workers against its two yardsticks.

    python benchmarks/convert_throughput.py [--mb 50] [--workers N] [--datasets a,b,...]

For each built-in dataset with a raw sample (tests/fixtures/adp/*/sample_raw.json) it
writes one JSONL input of --mb megabytes by repeating that sample, then times, each in a
fresh process and as the WHOLE process (interpreter start-up, imports and writing the
output included; wall clock, best of --runs):

- ember: `ember convert INPUT --from DATASET -o OUT --workers 1`, and `--workers N`;
- the round trip: the same bytes read line by line, `orjson.loads` + `orjson.dumps`,
  written out (the practical limit of any converter in Python);
- a skeleton: a minimal converter of the same shape family written here (orjson in and
  out, at most one precompiled regex and one dict per turn), i.e. what the per-event work
  costs when it does nothing but the essentials.

It reports MB/s (input bytes / wall seconds), the ratios ember/skeleton, ember/round
trip and N/1 workers, each run's peak RSS (the largest single process), and the machine.
For the workers it also splits ember's wall clock into the conversion (the summary's
seconds) and the rest (start-up, exit), and gives the N/1 ratio of the conversion alone
and the bound a perfect split would reach with that start-up (Amdahl).
Prints one line per dataset and one summary line; writes JSON to
benchmarks/results/convert_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "adp"
MAPPINGS = ROOT / "adp" / "mappings"
# ADP's own per-dataset conversion scripts, measured at 40-55 MB/s on this machine class
# on the same samples; they are not re-run here.
ADP_SCRIPTS_MB_S = (40, 55)


# --- the yardsticks (run in their own process: `--yardstick KIND DATASET IN OUT`) ---------


def round_trip(src: str, dst: str, dataset: str) -> None:
    loads, dumps, nl = orjson.loads, orjson.dumps, orjson.OPT_APPEND_NEWLINE
    with open(src, "rb") as f, open(dst, "wb") as out:
        write = out.write
        for line in f:
            write(dumps(loads(line), option=nl))


# One regex per shape family: what its converter must find in an agent turn.
FAMILY_REGEX = {
    "react": None,  # the mapping's first `turn` pattern
    "codeact": r"(?s)```(\w*)\n(.*?)```|<execute>(.*?)</execute>",
    "function-tags": r"(?s)<function=([^>]+)>(.*?)</function>",
    "swe-agent": r"(?s)```\w*\n(.*?)```",
    "browsergym": r"(?s)```(.*?)```",
    "sharegpt": None,
    "openai-messages": None,
}


def skeleton_plan(dataset: str) -> dict | None:
    """What the skeleton reads for ``dataset`` (from its mapping, defaults included): the
    field of turns, role and content keys, the regex; None for shapes without a list of
    turns (GUI steps, forms, images)."""
    from ember.adp.mapping import load_mapping

    shape, mapping = load_mapping(MAPPINGS / f"{dataset}.yaml")
    if shape not in FAMILY_REGEX:
        return None
    if shape == "browsergym":
        if not str(getattr(mapping, "prompt", None) or "").startswith("messages."):
            return None
        messages, role, content = "messages", "role", "content"
    else:
        messages, role = mapping.messages, getattr(mapping, "role_key", "role")
        content = getattr(mapping, "content_key", None) or \
            (getattr(mapping, "content_keys", None) or ["content"])[0]
    regex = (mapping.turn or [None])[0] if shape == "react" else FAMILY_REGEX[shape]
    ident = mapping.id if "{" not in mapping.id and "." not in mapping.id \
        and not mapping.id.startswith("@") else None
    return {"shape": shape, "messages": messages, "role": role, "content": content,
            "regex": regex, "id": ident}


def skeleton(src: str, dst: str, plan_json: str) -> None:
    plan = json.loads(plan_json)  # worked out by the parent: no ember import here
    messages, role_key, content_key = plan["messages"], plan["role"], plan["content"]
    search = re.compile(plan["regex"]).search if plan["regex"] else None
    id_key = plan["id"]
    agent = {"assistant", "gpt", "agent"}
    loads, dumps, nl = orjson.loads, orjson.dumps, orjson.OPT_APPEND_NEWLINE
    with open(src, "rb") as f, open(dst, "wb") as out:
        write = out.write
        for n, line in enumerate(f):
            record = loads(line)
            events = []
            add = events.append
            turns = record[messages]
            if isinstance(turns, str):  # some datasets store the list as JSON text
                turns = loads(turns)
            for turn in turns:
                text = turn.get(content_key)
                if not isinstance(text, str):
                    text = str(text)
                if turn.get(role_key) in agent:
                    m = search(text) if search else None
                    if m:
                        add({"class_": "api_action", "function": "act",
                             "kwargs": {"text": m.group(m.lastindex or 0)},
                             "description": None})
                    else:
                        add({"class_": "message_action", "content": text})
                else:
                    add({"class_": "text_observation", "content": text, "source": "user"})
            write(dumps({"id": str(record.get(id_key, n)) if id_key else str(n),
                         "content": events, "details": {}}, option=nl))


YARDSTICKS = {"round-trip": round_trip, "skeleton": skeleton}


# --- running and timing ---------------------------------------------------------------------

_TIMED = ("import resource, subprocess, sys, time, json\n"
          "t = time.perf_counter()\n"
          "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
          "wall = time.perf_counter() - t\n"
          "assert p.returncode in (0, 3), p.stderr[-2000:]\n"
          "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
          "print(json.dumps({'wall': wall, 'cpu': r.ru_utime + r.ru_stime,\n"
          "                  'peak_rss_mb': r.ru_maxrss / 1024, 'stdout': p.stdout[-100000:]}))\n")


def timed(cmd: list[str], runs: int) -> dict:
    """Whole-process wall seconds (best of ``runs``), CPU seconds and peak RSS of ``cmd``.
    ru_maxrss of RUSAGE_CHILDREN is the largest single process among the finished
    descendants: the driver or one pool worker, whichever peaked higher."""
    best = None
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _TIMED, *cmd], capture_output=True,
                             text=True, check=True)
        r = json.loads(out.stdout)
        best = r if best is None or r["wall"] < best["wall"] else best
    return best


def write_repeated(dataset: str, path: Path, mb: float) -> int:
    """The dataset's raw sample as JSONL, repeated to at least ``mb`` MB; returns bytes."""
    lines = [orjson.dumps(r) + b"\n"
             for r in json.loads((FIXTURES / dataset / "sample_raw.json").read_text())]
    size = sum(map(len, lines))
    copies = max(1, int(-(-mb * 1e6 // size)))
    with open(path, "wb") as f:
        for _ in range(copies):
            f.writelines(lines)
    return size * copies


def measure(dataset: str, folder: Path, mb: float, workers: int, runs: int) -> dict:
    src = folder / f"{dataset}.jsonl"
    nbytes = write_repeated(dataset, src, mb)
    out = folder / f"{dataset}.out.jsonl"
    me = [sys.executable, str(Path(__file__).resolve()), "--yardstick"]
    row: dict = {"dataset": dataset, "mb": nbytes / 1e6}
    plan = skeleton_plan(dataset)
    row["skeleton_shape"] = plan["shape"] if plan else None
    kinds = {"round_trip": me + ["round-trip", dataset, str(src), str(out)]}
    if plan:
        kinds["skeleton"] = me + ["skeleton", json.dumps(plan), str(src), str(out)]
    for w in sorted({1, workers}):
        kinds[f"ember_{w}"] = [sys.executable, "-m", "ember.cli.main", "convert", str(src),
                               "--from", dataset, "-o", str(out), "--workers", str(w),
                               "--max-reject-rate", "1", "--json"]
    for name, cmd in kinds.items():
        r = timed(cmd, runs)
        row[name] = {"mb_s": nbytes / 1e6 / r["wall"], "wall_s": r["wall"], "cpu_s": r["cpu"],
                     "peak_rss_mb": r["peak_rss_mb"], "out_mb": out.stat().st_size / 1e6}
        if name.startswith("ember_"):
            # the summary's seconds: the conversion itself (reading, converting, writing,
            # the final fsync); the rest of the wall clock is start-up and exit, which more
            # workers cannot shorten
            seconds = json.loads(r["stdout"])["seconds"]
            row[name].update(convert_s=seconds, outside_s=r["wall"] - seconds)
    one = row["ember_1"]["mb_s"]
    row["ratio_to_skeleton"] = one / row["skeleton"]["mb_s"] if plan else None
    row["ratio_to_round_trip"] = one / row["round_trip"]["mb_s"]
    row["speedup_workers"] = row[f"ember_{workers}"]["mb_s"] / one
    row["speedup_workers_convert_only"] = (row["ember_1"]["convert_s"]
                                           / row[f"ember_{workers}"]["convert_s"])
    # the best N processes could do if the conversion split perfectly (Amdahl): the
    # one-worker wall over its start-up plus 1/N of its conversion
    row["speedup_workers_bound"] = row["ember_1"]["wall_s"] / (
        row["ember_1"]["outside_s"] + row["ember_1"]["convert_s"] / workers)
    src.unlink()
    out.unlink(missing_ok=True)
    for extra in folder.glob(f"{dataset}.out*"):
        extra.unlink()
    return row


def machine() -> dict:
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpus": cpus, "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "orjson": orjson.__version__,
            "load_average_1m_at_start": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50, help="input MB per dataset")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                    help="N for the N-workers run")
    ap.add_argument("--runs", type=int, default=1, help="runs per configuration (best kept)")
    ap.add_argument("--datasets", default="", help="comma-separated (default: all with a sample)")
    ap.add_argument("--yardstick", nargs=4, metavar=("KIND", "DATASET|PLAN", "IN", "OUT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.yardstick:
        kind, what, src, dst = args.yardstick
        YARDSTICKS[kind](src, dst, what)
        return

    names = [n for n in args.datasets.split(",") if n] or sorted(
        p.parent.name for p in FIXTURES.glob("*/sample_raw.json"))
    info = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ember-bench-") as tmp:
        for name in names:
            row = measure(name, Path(tmp), args.mb, args.workers, args.runs)
            rows.append(row)
            sk = row.get("skeleton")
            print(f"{name}: ember {row['ember_1']['mb_s']:.1f} MB/s, "
                  f"{args.workers} workers {row[f'ember_{args.workers}']['mb_s']:.1f} "
                  f"(x{row['speedup_workers']:.2f}; conversion alone "
                  f"x{row['speedup_workers_convert_only']:.2f}; bound with "
                  f"{row['ember_1']['outside_s']:.2f} s of start-up "
                  f"x{row['speedup_workers_bound']:.2f}); skeleton "
                  + (f"{sk['mb_s']:.1f} (ratio {row['ratio_to_skeleton']:.2f})" if sk else "n/a")
                  + f"; round trip {row['round_trip']['mb_s']:.0f} (ratio "
                  f"{row['ratio_to_round_trip']:.2f}); peak RSS "
                  f"{row['ember_1']['peak_rss_mb']:.0f} / "
                  f"{row[f'ember_{args.workers}']['peak_rss_mb']:.0f} MB", flush=True)

    total_mb = sum(r["mb"] for r in rows)
    one = total_mb / sum(r["ember_1"]["wall_s"] for r in rows)
    many = total_mb / sum(r[f"ember_{args.workers}"]["wall_s"] for r in rows)
    trip = total_mb / sum(r["round_trip"]["wall_s"] for r in rows)
    result = {"benchmark": "convert_throughput", "machine": info, "mb_per_dataset": args.mb,
              "workers": args.workers, "runs": args.runs, "timing": "whole process, wall",
              "adp_scripts_mb_s_reference": ADP_SCRIPTS_MB_S,
              "all": {"mb": total_mb, "ember_1_mb_s": one,
                      f"ember_{args.workers}_mb_s": many, "round_trip_mb_s": trip},
              "per_dataset": rows}
    out = ROOT / "benchmarks" / "results" / "convert_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    ratios = [r["ratio_to_skeleton"] for r in rows if r["ratio_to_skeleton"]]
    print(f"convert: {one:.1f} MB/s whole-process over {len(rows)} datasets, {total_mb:.0f} MB "
          f"(1 worker), {many:.1f} MB/s with {args.workers} workers; round trip {trip:.0f} "
          f"MB/s; ember/skeleton {min(ratios, default=0):.2f}-{max(ratios, default=0):.2f}; "
          f"{info['cpus']} CPUs, load {info['load_average_1m_at_start']} -> "
          f"{out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
