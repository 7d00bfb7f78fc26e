"""Convert throughput: records/s and MB/s of `ember convert`, 1 and N workers, peak RSS.

    python benchmarks/convert_throughput.py [--mb-per-dataset 20] [--workers N]

Builds one JSONL input per built-in dataset that has a raw sample
(tests/fixtures/adp/*/sample_raw.json), each --mb-per-dataset megabytes made by repeating
that sample (each dataset has its own `--from`); 15 datasets x 20 MB = 300 MB by default. Each configuration runs `ember convert` in a fresh process; the time is the
convert summary's own (excluding interpreter start-up), the memory is the child's peak
RSS. In the same run it times the practical limit: a bare orjson parse + dump round trip
of the same bytes in one process. Prints one summary line; writes JSON to
benchmarks/results/convert_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "adp"
# ADP's own per-dataset conversion scripts, measured at 40-55 MB/s on this machine class
# on the same samples; they are not re-run here.
ADP_SCRIPTS_MB_S = (40, 55)


def write_repeated(dataset: str, path: Path, mb: int) -> Path:
    """Write the dataset's raw sample to ``path`` as JSONL, repeated to at least ``mb`` MB."""
    lines = [orjson.dumps(r) + b"\n"
             for r in json.loads((FIXTURES / dataset / "sample_raw.json").read_text())]
    written = 0
    with open(path, "wb") as f:
        while written < mb * 1e6:
            f.writelines(lines)
            written += sum(map(len, lines))
    return path


def build_inputs(folder: Path, mb_per_dataset: int) -> dict[str, Path]:
    names = sorted(p.parent.name for p in FIXTURES.glob("*/sample_raw.json"))
    return {name: write_repeated(name, folder / f"{name}.jsonl", mb_per_dataset)
            for name in names}


def run_convert(path: Path, name: str, workers: int, out: Path) -> dict:
    code = ("import resource, subprocess, sys, json\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "assert p.returncode == 0, p.stderr\n"
            "s = json.loads(p.stdout)\n"
            "s['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
            "print(json.dumps(s))\n")
    cmd = [sys.executable, "-m", "ember.cli.main", "convert", str(path), "--from", name,
           "-o", str(out), "--workers", str(workers), "--json", "--max-reject-rate", "1"]
    proc = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True,
                          check=True)
    # ru_maxrss of RUSAGE_CHILDREN is the largest single process among the finished
    # descendants: the driver or one pool worker, whichever peaked higher.
    return json.loads(proc.stdout)


def orjson_round_trip(files: dict[str, Path]) -> tuple[float, int]:
    total_bytes, seconds = 0, 0.0
    for path in files.values():
        data = path.read_bytes().splitlines()
        start = time.perf_counter()
        for line in data:
            orjson.dumps(orjson.loads(line))
        seconds += time.perf_counter() - start
        total_bytes += sum(len(l) + 1 for l in data)
    return total_bytes / 1e6 / seconds, total_bytes


def summarise(per_dataset: dict) -> dict:
    seconds = sum(d["seconds"] for d in per_dataset.values())
    records = sum(d["records"] for d in per_dataset.values())
    mb = sum(d["mb"] for d in per_dataset.values())
    return {"mb": mb, "records": records, "seconds": seconds, "mb_s": mb / seconds,
            "records_s": records / seconds,
            "peak_rss_mb": max(d["peak_rss_mb"] for d in per_dataset.values())}


def measure(path: Path, name: str, workers: int, out: Path) -> dict:
    s = run_convert(path, name, workers, out)
    return {"records": s["read"], "converted": s["converted"], "mb": s["bytes_in"] / 1e6,
            "seconds": s["seconds"], "mb_s": s["bytes_in"] / 1e6 / s["seconds"],
            "peak_rss_mb": s["peak_rss_mb"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb-per-dataset", type=int, default=20, help="input MB per dataset")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--scaling-dataset", default="agenttuning_kg",
                    help="dataset for the 1-vs-N-workers run (a slow, CPU-bound one)")
    ap.add_argument("--scaling-mb", type=int, default=150,
                    help="input MB for the scaling run (large enough to hide pool start-up)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="ember-bench-") as tmp:
        folder = Path(tmp)
        files = build_inputs(folder, args.mb_per_dataset)
        limit_mb_s, total_bytes = orjson_round_trip(files)
        per_dataset = {name: measure(path, name, 1, folder / f"{name}.out.jsonl")
                       for name, path in files.items()}
        one = summarise(per_dataset)
        for path in files.values():
            path.unlink()
        big = write_repeated(args.scaling_dataset, folder / "big.jsonl", args.scaling_mb)
        scaling = {w: measure(big, args.scaling_dataset, w, folder / "big.out.jsonl")
                   for w in sorted({1, args.workers})}

    n = scaling[args.workers]
    result = {
        "benchmark": "convert_throughput",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "input_mb": total_bytes / 1e6,
        "orjson_round_trip_mb_s": limit_mb_s,
        "adp_scripts_mb_s_reference": ADP_SCRIPTS_MB_S,
        "one_worker": one | {"per_dataset": per_dataset},
        "ratio_to_round_trip_1_worker": one["mb_s"] / limit_mb_s,
        "ratio_to_adp_scripts_1_worker": one["mb_s"] / max(ADP_SCRIPTS_MB_S),
        "scaling": {"dataset": args.scaling_dataset, "runs": list(scaling.values()),
                    "speedup": n["mb_s"] / scaling[1]["mb_s"], "workers": args.workers},
    }
    out = ROOT / "benchmarks" / "results" / "convert_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"convert: {one['mb_s']:.1f} MB/s ({one['records_s']:.0f} rec/s) per process over "
          f"{len(per_dataset)} datasets, {total_bytes / 1e6:.0f} MB; orjson round trip "
          f"{limit_mb_s:.0f} MB/s (ratio {result['ratio_to_round_trip_1_worker']:.2f}); "
          f"{result['ratio_to_adp_scripts_1_worker']:.2f}x ADP scripts' {max(ADP_SCRIPTS_MB_S)} MB/s; "
          f"{args.scaling_dataset} {args.scaling_mb} MB: {scaling[1]['mb_s']:.1f} -> "
          f"{n['mb_s']:.1f} MB/s with {args.workers} workers "
          f"(x{result['scaling']['speedup']:.2f}); peak RSS {one['peak_rss_mb']:.0f} MB at "
          f"{args.mb_per_dataset} MB, {scaling[1]['peak_rss_mb']:.0f} MB at {args.scaling_mb} MB; "
          f"{os.cpu_count()} CPUs -> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
