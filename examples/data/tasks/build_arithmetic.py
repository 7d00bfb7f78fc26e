"""Build the graded arithmetic tasks of `ember bench rft`: eight levels of difficulty, so
that a small model's pass rates spread over (0, 1) instead of sitting at 0 or 1.

    python examples/data/tasks/build_arithmetic.py            # -> arithmetic.jsonl
    ember eval pass-rate --model smollm2 --tasks examples/data/tasks/arithmetic.jsonl \\
        --samples 8 --temperature 0.7 --max-new-tokens 32 --column p_base \\
        -o examples/data/tasks/arithmetic_rated.jsonl

Each level is one kind of problem with operands drawn from a fixed seed (the file is the
same on every machine); `category` is the level (what `--selector sec` bins by) and
`answer` is computed here, so every answer is right by construction. The rated file adds
`p_base`, the embedded model's pass rate over 8 samples; `arithmetic_train.jsonl` and
`arithmetic_heldout.jsonl` split it (or, before it exists, arithmetic.jsonl), each level
3 : 1. Rerun this script after the pass-rate command to split the rated file.
"""

import json
import random
from pathlib import Path

from ember.evaluate.tasks import task_record

HERE = Path(__file__).parent
PER_LEVEL = 12


# The wording of every task: a short answer format, so that a 135M model's answer is not
# lost in (or cut off by) step-by-step work. With the benchmarks' own math wording ("solve
# step by step, then \boxed{}") and temperature 1.0 the embedded model solved 6% of
# samples and 69 of 96 tasks never (docs/benchmarks.md has both ratings).
TEMPLATE = "{question} Reply with only the answer, as \\boxed{{N}}."


def make(level: str, rng: random.Random) -> tuple[str, int]:
    r = rng.randint
    if level == "L1-add-1-digit":
        a, b = r(1, 9), r(1, 9)
        return f"What is {a} + {b}?", a + b
    if level == "L2-times-10":
        a = r(2, 99)
        return f"What is {a} times 10?", a * 10
    if level == "L3-multiply-1-digit":
        a, b = r(2, 9), r(2, 9)
        return f"What is {a} times {b}?", a * b
    if level == "L4-add-2+1-digit":
        a, b = r(10, 99), r(1, 9)
        return f"What is {a} + {b}?", a + b
    if level == "L5-subtract-1-digit":
        a, b = r(5, 19), r(1, 4)
        return f"What is {a} - {b}?", a - b
    if level == "L6-add-2-digit":
        a, b = r(10, 99), r(10, 99)
        return f"What is {a} + {b}?", a + b
    if level == "L7-multiply-2-by-1-digit":
        a, b = r(11, 49), r(3, 9)
        return f"What is {a} times {b}?", a * b
    if level == "L8-add-3-digit":
        a, b = r(100, 999), r(100, 999)
        return f"What is {a} + {b}?", a + b
    raise ValueError(level)


LEVELS = ["L1-add-1-digit", "L2-times-10", "L3-multiply-1-digit", "L4-add-2+1-digit",
          "L5-subtract-1-digit", "L6-add-2-digit", "L7-multiply-2-by-1-digit", "L8-add-3-digit"]


def main() -> None:
    rng = random.Random(20261201)
    rows, seen = [], set()
    for level in LEVELS:
        for k in range(PER_LEVEL):
            text, answer = make(level, rng)
            while text in seen:  # each problem once
                text, answer = make(level, rng)
            seen.add(text)
            rows.append({"id": f"arith-{level.split('-')[0]}-{k:02d}", "prompt": text,
                         "answer": str(answer), "scorer": "math", "template": TEMPLATE,
                         "category": level,
                         "source": "ember-arithmetic"})
    with open(HERE / "arithmetic.jsonl", "w") as f:
        # The file form: loads together with task files of other sources (datasets, TRL).
        f.writelines(json.dumps(task_record(row)) + "\n" for row in rows)
    print(f"arithmetic.jsonl: {len(rows)} tasks, {len(LEVELS)} levels")
    # The split, each level 3 : 1 (every 4th task held out); from the rated file once
    # `ember eval pass-rate` has written it, so that both halves carry p_base.
    rated = HERE / "arithmetic_rated.jsonl"
    source = rated if rated.exists() else HERE / "arithmetic.jsonl"
    train, heldout = [], []
    for line in source.read_text().splitlines():
        task = json.loads(line)
        (heldout if int(task["id"].rsplit("-", 1)[1]) % 4 == 3 else train).append(line)
    (HERE / "arithmetic_train.jsonl").write_text("\n".join(train) + "\n")
    (HERE / "arithmetic_heldout.jsonl").write_text("\n".join(heldout) + "\n")
    print(f"split {source.name}: {len(train)} train, {len(heldout)} held out")

if __name__ == "__main__":
    main()
