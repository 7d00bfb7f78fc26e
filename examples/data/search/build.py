"""Build the example search corpus and question set from HotpotQA dev (distractor).

    python examples/data/search/build.py /path/to/hotpotqa_dev_distractor_53.jsonl

Reads HotpotQA records (``_id, question, answer, supporting_facts, context``) and writes,
beside this script:

- ``corpus.jsonl``: every context paragraph of the questions, once per title (first
  occurrence wins; in the 53-question file no title has two different texts), as
  ``{id, title, text}`` with ids ``hp-0000``, ``hp-0001``, ... in order of appearance;
- ``questions.jsonl``: ``{id, question, answer, supporting_titles}`` per question;
- ``tasks.jsonl``: the same questions as RFT tasks in the task file form
  (``{id, prompt, answer, scorer: "qa", extra}``), for ``ember train --env search``.

The output depends only on the input file, so rerunning reproduces it byte for byte.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[3] / "shared" / "data" / "qa" / "hotpotqa_dev_distractor_53.jsonl"


def main(source: Path) -> None:
    rows = [json.loads(line) for line in source.open() if line.strip()]
    docs: dict[str, str] = {}
    for r in rows:
        for title, sentences in r["context"]:
            docs.setdefault(title, "".join(sentences).strip())
    with open(HERE / "corpus.jsonl", "w") as f:
        for i, (title, text) in enumerate(docs.items()):
            f.write(json.dumps({"id": f"hp-{i:04d}", "title": title, "text": text},
                               ensure_ascii=False) + "\n")
    with open(HERE / "questions.jsonl", "w") as f:
        for r in rows:
            titles = list(dict.fromkeys(t for t, _ in r["supporting_facts"]))
            f.write(json.dumps({"id": r["_id"], "question": r["question"], "answer": r["answer"],
                                "supporting_titles": titles}, ensure_ascii=False) + "\n")
    with open(HERE / "tasks.jsonl", "w") as f:
        for r in rows:
            titles = list(dict.fromkeys(t for t, _ in r["supporting_facts"]))
            f.write(json.dumps({"id": r["_id"], "prompt": r["question"], "answer": r["answer"],
                                "scorer": "qa", "extra": json.dumps(
                                    {"supporting_titles": titles}, ensure_ascii=False)},
                               ensure_ascii=False) + "\n")
    print(f"{len(rows)} questions, {len(docs)} paragraphs -> {HERE}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
