"""The one task-record reader and task wording, shared by synth, train and eval pass-rate."""

import json

from ember.evaluate.tasks import read_tasks, task_item
from ember.evaluate.templates import PROMPTS, render


def test_read_tasks_checks_the_schema_and_says_why(tmp_path):
    path = tmp_path / "t.jsonl"
    lines = [
        {"id": "a", "prompt": "1+1?", "answer": "2"},
        {"id": "b", "prompt": "2+2?", "answer": 4},             # answer must be a string
        "nope",
        {"prompt": "x", "answer": "1"},                          # no id
        {"id": "a", "prompt": "again", "answer": "1"},           # repeated id
        {"id": "c", "prompt": "y", "answer": "1", "scorer": "no_such_scorer"},
        {"id": "d", "prompt": "y", "answer": "1", "template": "Q: {prompt} {missing}"},
        {"id": "e", "prompt": "What is 3 + 4?", "answer": "7", "scorer": "qa",
         "template": "{prompt} Reply with only the number.", "extract": "last_number"},
    ]
    path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n")
    tasks, rejects = read_tasks(path)
    assert [t["id"] for t in tasks] == ["a", "e"]
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (2, "not-a-task"), (3, "invalid-json"), (4, "not-a-task"), (5, "duplicate-id"),
        (6, "unknown-scorer"), (7, "bad-template")]
    assert all(r["source"] == str(path) and r["detail"] for r in rejects)
    assert "'id' is a required property" in rejects[2]["detail"]
    assert "no_such_scorer" in rejects[4]["detail"]


def test_task_item_words_a_task_as_eval_does_or_by_its_own_template():
    plain = task_item({"id": "1", "prompt": "What is 3 + 4?", "answer": "7"})
    assert plain.messages[0]["content"] == render(PROMPTS["math"], {"question": "What is 3 + 4?"})
    assert plain.meta == {"scorer": "math"} and plain.gold == "7"
    own = task_item({"id": "2", "prompt": "What is 3 + 4?", "answer": "7",
                     "template": "{prompt} Reply with only the number.", "extract": "last_number"})
    assert own.messages[0]["content"] == "What is 3 + 4? Reply with only the number."
    assert own.meta == {"scorer": "math", "extract": "last_number"}
