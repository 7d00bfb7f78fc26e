#!/usr/bin/env bash
# The whole ember pipeline at toy scale on the bundled samples (run by `make demo`).
# Stages: raw agent datasets -> ADP -> validate -> sft-chat; evaluate the embedded model;
# serve the embedded model with `transformers serve` and synthesize questions (MindGYM)
# through it, and agentic-search trajectories (behaviour priming, native tool calls)
# in-process; SFT on the sft-chat data, then RFT (GRPO) with the bots selector on MAWPS +
# synthesized tasks; SFT on the search trajectories, then RFT on the search environment;
# evaluate the math model and compare it with the starting model.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${DEMO_OUT:-demo-out}
mkdir -p "$OUT/adp"

echo "== 1. convert raw agent datasets to ADP"
for raw in examples/data/adp/*.json; do
  name=$(basename "$raw" .json)
  ember convert "$raw" --from "$name" -o "$OUT/adp/$name.jsonl" --rejects "$OUT/rejects/$name.jsonl"
done

echo "== 2. validate the ADP trajectories"
ember validate "$OUT"/adp/*.jsonl --show 3

echo "== 3. export ADP to sft-chat (OpenAI messages + tools, for TRL SFT)"
ember convert "$OUT"/adp/*.jsonl --to sft-chat -o "$OUT/sft.jsonl" --rejects "$OUT/rejects/sft.jsonl"

echo "== 4. evaluate the embedded model (greedy) on gsm8k-boxed and mawps slices"
ember eval --model smollm2 --benchmarks gsm8k-boxed,mawps --limit ${DEMO_EVAL_LIMIT:-8} \
  --max-new-tokens 160 --batch-size 8 --out "$OUT/eval/base"

echo "== 5. serve the embedded model (transformers serve on 127.0.0.1) for synthesis"
MODEL_DIR=$(python -c "from ember.llm.models import resolve_model; print(resolve_model('smollm2'))")
PORT=$(python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
URL="http://127.0.0.1:$PORT/v1"
mkdir -p "$OUT/synth"
HF_HUB_OFFLINE=1 python -m transformers.cli.transformers serve "$MODEL_DIR" --host 127.0.0.1 \
  --port "$PORT" --device cpu --log-level warning > "$OUT/synth/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/health', timeout=2)" \
    2>/dev/null && break
  kill -0 $SERVER 2>/dev/null || { cat "$OUT/synth/serve.log"; exit 1; }
  sleep 0.5
done

echo "== 6. synthesize thinking-centric questions (MindGYM) and check them against the task schema"
ember synth questions --backend openai --base-url "$URL" --model "$MODEL_DIR" \
  --concurrency 1 --timeout 600 --categories science,history,logic \
  --count 3 --oversample 2 --max-rounds 2 --max-new-tokens 128 --no-consistency \
  -o "$OUT/synth/tasks.jsonl"
python - "$OUT/synth/tasks.jsonl" <<'PY'
import json, sys, jsonschema
from ember.schemas import load_schema
v = jsonschema.Draft202012Validator(load_schema("task"))
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    v.validate(r)
print(f"{len(rows)} synthesized task records, all valid task records")
PY

echo "== 7. agentic-search trajectories (behaviour priming): embedded model as teacher and judge"
ember synth index examples/data/search/corpus.jsonl -o "$OUT/search/index"
# In-process (--backend hf) so that the judge's JSON is grammar-constrained (llguidance):
# `transformers serve` accepts response_format but ignores it.
ember synth trajectories --backend hf --model smollm2 \
  -q examples/data/search/questions.jsonl --limit 2 --search-index "$OUT/search/index" \
  --samples 2 --max-turns 3 --max-new-tokens 48 \
  --judge-max-new-tokens 64 --judge-attempts 2 --keep any --min-yield 0 \
  -o "$OUT/search/trajectories.jsonl"
ember validate "$OUT/search/trajectories.jsonl"
ember convert "$OUT/search/trajectories.jsonl" --to sft-chat -o "$OUT/search/trajectories.sft.jsonl"
kill $SERVER 2>/dev/null || true  # free the CPU for training

echo "== 8. train: SFT on the converted agent data (step 3), then RFT with --selector bots on math tasks"
cat examples/data/tasks/mawps_singleop.jsonl "$OUT/synth/tasks.jsonl" > "$OUT/synth/rft_tasks.jsonl"
rm -rf "$OUT/train"
ember train --stage sft,rft --model smollm2 --out "$OUT/train" \
  --data "$OUT/sft.jsonl" --sft-max-steps ${DEMO_SFT_STEPS:-3} --sft-batch-size 2 --sft-max-length 512 \
  --tasks "$OUT/synth/rft_tasks.jsonl" --selector bots --reward auto,format \
  --reward-weights 1.0,0.1 --rft-max-steps ${DEMO_RFT_STEPS:-3} --rft-tasks-per-step 2 \
  --rft-samples 4 --rft-batch-size 8 --rft-max-new-tokens 96 --rft-temperature 0.8 \
  --rft-learning-rate 2e-6

echo "== 9. behaviour priming in small: SFT on the search trajectories, then agentic RFT"
# GRPO on the search environment: the policy may call search(query) as a native tool call
# (the protocol the trajectories were written in), results come back as tool messages and
# are masked from the loss, bots chooses the questions, the reward reads the final answer.
rm -rf "$OUT/train-search"
ember train --stage sft,rft --model smollm2 --out "$OUT/train-search" \
  --data "$OUT/search/trajectories.sft.jsonl" --sft-max-steps 1 --sft-batch-size 2 \
  --sft-max-length 1024 --tasks examples/data/search/tasks.jsonl --env search \
  --search-index "$OUT/search/index" --rft-max-tool-calls 1 --selector bots \
  --reward qa,format --reward-weights 1.0,0.1 --rft-max-steps ${DEMO_SEARCH_STEPS:-2} \
  --rft-tasks-per-step 2 --rft-samples 2 --rft-batch-size 4 --rft-max-new-tokens 480 \
  --rft-temperature 0.8 --rft-save-steps ${DEMO_SEARCH_STEPS:-2}

echo "== 10. evaluate the trained model and compare (before -> after)"
ember eval --model "$OUT/train/rft/model" --benchmarks gsm8k-boxed,mawps --limit ${DEMO_EVAL_LIMIT:-8} \
  --max-new-tokens 160 --batch-size 8 --out "$OUT/eval/trained"
ember eval compare "$OUT/eval/base" "$OUT/eval/trained" --resamples 1000 --plot "$OUT/eval/compare.png"

echo "== summary"
python - "$OUT" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
trajs = sum(1 for f in (out / "adp").glob("*.jsonl") for _ in f.open())
rows = [json.loads(l) for l in (out / "sft.jsonl").open()]
msgs = sum(len(r["messages"]) for r in rows)
calls = sum(len(m.get("tool_calls") or []) for r in rows for m in r["messages"])
print(f"{trajs} ADP trajectories -> {len(rows)} sft-chat records, {msgs} messages, "
      f"{calls} tool calls; outputs in {out}/")
tasks = sum(1 for _ in (out / "synth" / "tasks.jsonl").open())
search = sum(1 for _ in (out / "search" / "trajectories.jsonl").open())
print(f"synthesized {tasks} tasks and kept {search} search trajectories "
      f"(reasons for the rest in {out}/synth and {out}/search)")
sel = [json.loads(l) for l in (out / "train" / "rft" / "selection.jsonl").open()]
eff = sum(s["metrics"]["effective_ratio"] for s in sel) / len(sel)
print(f"RFT: {len(sel)} bots steps, mean effective-task ratio {eff:.2f}; model in {out}/train/rft/model")
sel = [json.loads(l) for l in (out / "train-search" / "rft" / "selection.jsonl").open()]
states = sorted((out / "train-search" / "rft").glob("checkpoint-*/trainer_state.json"))
logged = [h for h in json.loads(states[-1].read_text())["log_history"]
          if "tools/call_frequency" in h] if states else []
calls = [h["tools/call_frequency"] for h in logged]
print(f"agentic RFT (--env search): {len(sel)} bots steps, mean reward "
      f"{sum(h.get('reward', 0) for h in logged) / max(len(logged), 1):.2f}, tool calls per "
      f"rollout {sum(calls) / max(len(calls), 1):.2f} (the embedded model rarely searches "
      f"before it is trained to)")
PY
