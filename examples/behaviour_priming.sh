#!/usr/bin/env bash
# Behaviour priming end to end (Jin et al. 2025), as one recipe:
#   synthesize search trajectories twice, keeping those that show all four behaviours
#   (--keep all-behaviours) and, as the ablation, as many at random (--keep random);
#   SFT a copy of the model on each; RFT each on the search environment (--env search,
#   --selector bots); evaluate all four models on hotpotqa-search; compare them.
# One tool protocol throughout (native tool calls): what the trajectories show the model
# at SFT is token for token what it sees at RFT and eval.
#
#   bash examples/behaviour_priming.sh          # CPU scale: the embedded model, 2 cores
#   bash examples/behaviour_priming.sh --gpu    # GPU scale: $MODEL with vLLM generation
#   KEEPS="all-behaviours random any" bash examples/behaviour_priming.sh   # more arms
#
# An arm whose policy kept nothing is reported and skipped (the embedded model's judge
# never labels all four behaviours yes, so at CPU scale only `any` has data to train on).
# Run it from the repository with ember installed (`make setup`; PATH=.venv/bin:$PATH).
# OUT (default bp-out) holds everything; figures of a CPU run are in docs/benchmarks.md.
# Synthesis uses the last questions of the example set and eval the first ones, so the
# two do not overlap (real runs should synthesize from HotpotQA's train split).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bp-out}
KEEPS=${KEEPS:-all-behaviours random}
if [ "${1:-}" = "--gpu" ]; then
  # A model whose chat template takes `tools` and whose replies transformers can parse
  # (a tokenizer response_template; TRL ships them for Qwen3).
  MODEL=${MODEL:-Qwen/Qwen3-1.7B}; BACKEND=vllm; QUESTIONS=45; SAMPLES=8; TOKENS=512
  SFT="--sft-epochs 2 --sft-batch-size 8"; EVAL_LIMIT=8
  RFT="--rft-max-steps 100 --rft-tasks-per-step 8 --rft-samples 8 --rft-batch-size 16 --rft-use-vllm"
else
  MODEL=smollm2; BACKEND=hf; QUESTIONS=6; SAMPLES=2; TOKENS=64
  SFT="--sft-max-steps 2 --sft-batch-size 2"; EVAL_LIMIT=8
  RFT="--rft-max-steps 2 --rft-tasks-per-step 2 --rft-samples 2 --rft-batch-size 4"
fi
mkdir -p "$OUT"
tail -n "$QUESTIONS" examples/data/search/questions.jsonl > "$OUT/questions.jsonl"
tail -n "$QUESTIONS" examples/data/search/tasks.jsonl > "$OUT/tasks.jsonl"
ember synth index examples/data/search/corpus.jsonl -o "$OUT/index"

echo "== 1. synthesize trajectories, one file per keep policy (one cache: the same rollouts)"
for keep in $KEEPS; do
  ember synth trajectories --backend "$BACKEND" --model "$MODEL" -q "$OUT/questions.jsonl" \
    --search-index "$OUT/index" --samples "$SAMPLES" --max-new-tokens "$TOKENS" \
    --keep "$keep" --min-yield 0 --cache "$OUT/synth.cache.sqlite" -o "$OUT/$keep.jsonl"
  ember convert "$OUT/$keep.jsonl" --to sft-chat -o "$OUT/$keep.sft.jsonl"
done

echo "== 2. SFT a copy on each, then RFT each on the search environment with bots"
for keep in $KEEPS; do
  if [ ! -s "$OUT/$keep.sft.jsonl" ]; then
    echo "no $keep trajectory was kept: nothing to train on (see $OUT/$keep.jsonl.summary.json)"
    continue
  fi
  rm -rf "$OUT/train-$keep"
  ember train --stage sft,rft --model "$MODEL" --out "$OUT/train-$keep" \
    --data "$OUT/$keep.sft.jsonl" $SFT --tasks "$OUT/tasks.jsonl" --env search \
    --search-index "$OUT/index" --selector bots --reward qa,format --reward-weights 1.0,0.1 \
    --rft-max-tool-calls 2 --rft-max-new-tokens 480 $RFT
done

echo "== 3. evaluate the starting model and every trained one on hotpotqa-search; compare"
EVAL="--backend $BACKEND --benchmarks hotpotqa-search --limit $EVAL_LIMIT --search-index $OUT/index"
ember eval --model "$MODEL" $EVAL --out "$OUT/eval/base"
for keep in $KEEPS; do
  for stage in sft rft; do
    [ -d "$OUT/train-$keep/$stage/model" ] || continue
    ember eval --model "$OUT/train-$keep/$stage/model" $EVAL --out "$OUT/eval/$keep-$stage"
  done
done
compare() {  # B - A on F1, when both were evaluated
  [ -d "$OUT/eval/$1" ] && [ -d "$OUT/eval/$2" ] || return 0
  ember eval compare "$OUT/eval/$1" "$OUT/eval/$2" --metric f1 --plot "$OUT/eval/$1-vs-$2.png"
}
for keep in $KEEPS; do
  compare base "$keep-sft"
  compare "$keep-sft" "$keep-rft"
done
compare all-behaviours-sft random-sft
compare all-behaviours-rft random-rft
