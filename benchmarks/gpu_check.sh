#!/usr/bin/env bash
# The CUDA paths of ember on one NVIDIA GPU (H100/H200) with no network, in about 8 minutes:
#
#   bash benchmarks/gpu_prepare.sh                  # here first: wheels + model shape
#   bash benchmarks/gpu_check.sh OUTDIR             # there: figures in OUTDIR/gpu_check.json
#
# What it runs, each step timed: install the carried wheels; build a model of the
# embedded model's shape (SmolLM2-135M, Llama) with random weights in bf16; `ember train
# --stage sft` (bf16, gradient checkpointing); `ember train --stage rft` (GRPO, HF
# generation, bots); `ember eval --backend hf`; `ember bench rft` for uniform and bots.
# Random weights show that the CUDA paths run and how fast; they cannot show learning or
# accuracy (every reward is 0). vLLM is not checked: its wheel is far over what travels.
# Without CUDA it stops at once with exit 2 (GPU_CHECK_ON_CPU=1 runs the same steps,
# smaller, on a CPU, to test this script).
set -euo pipefail
OUT=${1:-}
if [ -z "$OUT" ]; then echo "usage: benchmarks/gpu_check.sh OUTDIR" >&2; exit 2; fi
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-.whl}
SHAPE=${GPU_CHECK_SHAPE:-.gpu/smollm2-shape}
if [ "${GPU_CHECK_ON_CPU:-0}" != 1 ] &&
   ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA device ($PY: torch.cuda.is_available() is False, or torch is missing); run it on a machine with an NVIDIA GPU" >&2
  exit 2
fi
if [ ! -f "$SHAPE/config.json" ]; then
  echo "gpu_check: $SHAPE/config.json is missing: run benchmarks/gpu_prepare.sh first and carry .gpu/" >&2
  exit 2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
LOG="$OUT/gpu_check.log"
: > "$LOG"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TRL_EXPERIMENTAL_SILENCE=1
STEPS=()
step() {  # step NAME COMMAND...: run, time, log; a failed step is recorded and the rest go on
  local name=$1; shift
  local t0=$SECONDS rc=0
  echo "=== $name: $*" >> "$LOG"
  timeout "${GPU_CHECK_STEP_TIMEOUT:-150}" "$@" >> "$LOG" 2>&1 || rc=$?
  STEPS+=("$name $rc $((SECONDS - t0))")
  echo "gpu_check: $name exit $rc in $((SECONDS - t0)) s"
}

if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  step install "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target "$WORK/site" "$WHEELS"/*.whl
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
EMBER=("$PY" -m ember.cli.main)
if [ "${GPU_CHECK_ON_CPU:-0}" = 1 ]; then  # the logic, small: layers, steps and items cut
  LAYERS=2 SFT_STEPS=2 RFT_STEPS=2 B=2 G=2 NEW=16 LIMIT=4 BENCH_STEPS=2
else
  LAYERS=30 SFT_STEPS=20 RFT_STEPS=10 B=8 G=8 NEW=128 LIMIT=128 BENCH_STEPS=6
fi

step build-model "$PY" - "$SHAPE" "$WORK/model" "$LAYERS" <<'PY'
import shutil, sys
from pathlib import Path
import torch
from transformers import AutoConfig, AutoModelForCausalLM
shape, dst, layers = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
cfg = AutoConfig.from_pretrained(shape)
cfg.num_hidden_layers = layers
torch.manual_seed(0)
dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
model.save_pretrained(dst)
for f in shape.iterdir():
    if f.name != "config.json":
        shutil.copy(f, dst / f.name)
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, {dtype}")
PY
M="$WORK/model"
step convert "${EMBER[@]}" convert examples/data/adp/agenttuning_os.json \
    examples/data/adp/code_feedback.json --from adp --to sft-chat -o "$WORK/sft.jsonl"
step sft "${EMBER[@]}" train --stage sft --model "$M" --data "$WORK/sft.jsonl" \
    --sft-max-steps "$SFT_STEPS" --sft-batch-size 4 --sft-max-length 1024 --out "$WORK/sft" --json
step rft "${EMBER[@]}" train --stage rft --model "$M" --tasks examples/data/tasks/mawps_singleop.jsonl \
    --selector bots --reward math,format --rft-max-steps "$RFT_STEPS" --rft-tasks-per-step "$B" \
    --rft-samples "$G" --rft-batch-size "$((B * G))" --rft-max-new-tokens "$NEW" \
    --out "$WORK/rft" --json
step eval "${EMBER[@]}" eval --backend hf --model "$M" --benchmarks mawps --limit "$LIMIT" \
    --max-new-tokens "$NEW" --out "$WORK/eval" --json
head -n 48 examples/data/tasks/mawps_singleop.jsonl > "$WORK/train_tasks.jsonl"
tail -n 16 examples/data/tasks/mawps_singleop.jsonl > "$WORK/heldout_tasks.jsonl"
printf 'rft:\n  tasks_per_step: %s\n  samples: %s\n  batch_size: %s\n  max_new_tokens: %s\n  save_steps: 1000\n' \
    "$B" "$G" "$((B * G))" "$NEW" > "$WORK/bench_train.yaml"
step bench-rft "${EMBER[@]}" bench rft --model "$M" --tasks "$WORK/train_tasks.jsonl" \
    --eval-tasks "$WORK/heldout_tasks.jsonl" --selectors uniform,bots --steps "$BENCH_STEPS" \
    --eval-every "$BENCH_STEPS" --train-config "$WORK/bench_train.yaml" --out "$WORK/bench" --json

cp "$WORK/bench/bench.json" "$WORK/bench/bench.png" "$OUT/" 2>/dev/null || true
"$PY" - "$OUT" "$WORK" "${STEPS[@]}" <<'PY'
import json, platform, subprocess, sys
from pathlib import Path
out, work, steps = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
import torch
result = {"machine": {"platform": platform.platform(), "python": platform.python_version(),
                      "torch": torch.__version__, "cuda": torch.version.cuda,
                      "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"},
          "steps": {}}
for line in steps:
    name, rc, seconds = line.split()
    result["steps"][name] = {"exit": int(rc), "seconds": int(seconds)}

def read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None

eval_results = read(work / "eval" / "results.json")
if eval_results:
    result["eval"] = {b: r.get("metrics", r) for b, r in eval_results.get("benchmarks", {}).items()}
for stage in ("sft", "rft"):
    logs = sorted((work / stage / stage).glob("checkpoint-*/trainer_state.json"))
    state = read(logs[-1]) if logs else None
    if state:
        result[stage] = {"log_history": state["log_history"][-3:]}
bench = read(work / "bench" / "bench.json")
if bench:
    result["bench_rft"] = {n: {k: r[k] for k in ("effective_ratio", "mean_reward", "train_seconds",
                                                   "selector_share", "heldout_before", "heldout_after")}
                           for n, r in bench["selectors"].items()}
try:
    result["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.used,memory.total,driver_version",
                                           "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
except OSError:
    result["nvidia_smi"] = None
(out / "gpu_check.json").write_text(json.dumps(result, indent=1))
failed = [n for n, s in result["steps"].items() if s["exit"] != 0]
print("gpu_check: figures in", out / "gpu_check.json", "; failed steps:", ", ".join(failed) or "none")
sys.exit(1 if failed else 0)
PY
