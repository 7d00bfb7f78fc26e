"""ember's files as TRL and `datasets` take them, with no preprocessing: sft-chat files of
different datasets load together and train through TRL's own `trl sft`; task files of
different sources load together and are a GRPOTrainer train dataset."""

import ast
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

# three datasets whose tools have different parameter shapes (bash; the SWE editor's
# command/path/view_range/...; python code), the os + swe + cf
SFT_DATASETS = ["agenttuning_os", "swe-smith", "code_feedback"]


def load_json(files, cache):
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    return datasets.load_dataset("json", data_files=[str(f) for f in files], split="train",
                                 cache_dir=str(cache))


def trl_sft() -> list[str]:
    """TRL's own SFT script, the one `trl sft` runs: `trl sft ARGS` is `accelerate launch
    trl/scripts/sft.py ARGS`. Run directly it reads the same arguments and data; leaving
    out the launcher saves a second interpreter start (~10 s of CPU here)."""
    return [sys.executable, "-m", "trl.scripts.sft"]


@pytest.mark.slow
def test_sft_chat_of_three_datasets_loads_and_trains_with_trls_sft_script(ember, tmp_path, tiny_model):
    from ember.adp.export.sft_chat import tools_of

    data = tmp_path / "sft"  # a folder holding only the sft-chat files, as `trl sft` reads it
    for name in SFT_DATASETS:
        ember("convert", FIXTURES / "adp" / name / "sample_raw.json", "--from", name,
              "--to", "sft-chat", "-o", data / f"{name}.sft.jsonl",
              "--rejects", tmp_path / f"{name}.rejects.jsonl")
    files = sorted(data.glob("*.jsonl"))
    assert len(files) == 3
    written = [json.loads(line) for f in files for line in f.open()]
    shapes = {json.dumps([t["function"].get("parameters") for t in tools_of(r)]) for r in written}
    assert len(shapes) >= 3  # the files really disagree on the tools' shapes

    ds = load_json(files, tmp_path / "cache")
    assert len(ds) == len(written)
    for row, record in zip(ds, written):
        assert row["id"] == record["id"]
        assert json.loads(row["tools"]) == tools_of(record) and tools_of(record)
        assert row["messages"] == record["messages"]

    # One SFT step by TRL's own script on the folder (`trl sft --dataset_name DIR`),
    # assistant-only loss.
    out = tmp_path / "trl-out"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_DATASETS_CACHE=str(tmp_path / "hf-cache"), TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [*trl_sft(), "--model_name_or_path", str(tiny_model),
         "--dataset_name", str(data), "--max_steps", "1", "--per_device_train_batch_size", "2",
         "--max_length", "256", "--assistant_only_loss", "true", "--use_cpu", "true",
         "--gradient_checkpointing", "false", "--report_to", "none", "--save_strategy", "no",
         "--logging_steps", "1", "--disable_tqdm", "true", "--output_dir", str(out)],
        capture_output=True, text=True, env=env, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    logs = [ast.literal_eval(line) for line in proc.stdout.splitlines()
            if line.startswith("{'loss'")]
    assert len(logs) == 1, proc.stdout[-2000:]
    assert 0 < float(logs[0]["loss"]) < 20 and float(logs[0]["num_tokens"]) > 0
    assert (out / "model.safetensors").is_file()
    print(f"trl sft script: {after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime:.1f} s CPU")


# --- task files -------------------------------------------------------------------------


def task_sources() -> dict[str, list[dict]]:
    """Tasks as three sources have them: a benchmark set (plain fields), `synth questions`
    (sub-questions, judge scores, a null relation, pass-rate columns), code tasks (tests
    and extractors of two shapes each, an own template, an answer that is a number)."""
    from ember.evaluate.tasks import read_tasks

    benchmark, rejects = read_tasks(FIXTURES / "tasks" / "arithmetic.jsonl")
    assert not rejects
    synth = [
        {"id": "q1", "prompt": "Who was born first, A or B?", "answer": "A", "scorer": "qa",
         "category": "history", "relation": "comparison",
         "sub_questions": [{"question": "When was A born?", "answer": "1901"},
                           {"question": "When was B born?", "answer": "1910"}],
         "thinking": "1901 < 1910", "scores": {"clarity": 5.0, "difficulty": 3.0},
         "document": "A was born in 1901; B in 1910.", "source": "seed.jsonl:1",
         "p_base": 0.25, "p_ref": 0.75},
        {"id": "q2", "prompt": "How many legs do 3 spiders have?", "answer": "24",
         "category": "math", "relation": None, "sub_questions": [], "scores": {},
         "source": "seed.jsonl:2", "p_base": 0.0, "p_ref": 0.5},
    ]
    code = [
        {"id": "c1", "prompt": "Write add(a, b).", "answer": "", "scorer": "code",
         "tests": {"test": "def check(f):\n    assert f(1, 2) == 3\n", "entry_point": "add"}},
        {"id": "c2", "prompt": "Write neg(x).", "answer": "", "scorer": "code",
         "tests": {"tests": ["assert neg(1) == -1"]}, "extract": {"regex": "```(.*?)```"}},
        {"id": "n1", "prompt": "What is 6 * 7?", "answer": 42, "extract": "last_number",
         "template": "{prompt} Answer with a number."},
    ]
    return {"benchmark": benchmark, "synth": synth, "code": code}


def write_task_files(folder: Path) -> dict[str, Path]:
    from ember.evaluate.tasks import task_record

    folder.mkdir()
    files = {}
    for name, tasks in task_sources().items():
        files[name] = folder / f"{name}.tasks.jsonl"
        files[name].write_text("".join(json.dumps(task_record(t)) + "\n" for t in tasks))
    return files


def test_task_files_of_different_sources_load_together_and_read_back(tmp_path):
    from ember.evaluate.tasks import read_tasks

    datasets = pytest.importorskip("datasets")
    files = write_task_files(tmp_path / "tasks")
    sources = task_sources()
    for order in (["benchmark", "synth", "code"], ["code", "synth", "benchmark"]):
        ds = load_json([files[n] for n in order], tmp_path / "cache" / order[0])
        assert {c: ds.features[c] for c in ("id", "prompt", "answer", "scorer")} == \
            dict.fromkeys(("id", "prompt", "answer", "scorer"), datasets.Value("string"))
        tasks = [t for n in order for t in sources[n]]
        assert [row["id"] for row in ds] == [t["id"] for t in tasks]
        # a prompt-only dataset in TRL's standard format: the question text
        assert [row["prompt"] for row in ds] == [t["prompt"] for t in tasks]
        for row, task in zip(ds, tasks):
            extra = json.loads(row["extra"])
            assert extra == {k: v for k, v in task.items()
                             if k not in ("id", "prompt", "answer", "scorer")}
    # ember's reader gives every task back, the number answer as its text
    for name, tasks in sources.items():
        back, rejects = read_tasks(files[name])
        assert rejects == []
        assert back == [{**t, "scorer": t.get("scorer", "math"),
                         "answer": t["answer"] if isinstance(t["answer"], str) else
                         json.dumps(t["answer"])} for t in tasks]
    assert read_tasks(files["code"])[0][2]["answer"] == "42"


def test_read_tasks_says_why_a_file_form_record_is_bad(tmp_path):
    from ember.evaluate.tasks import read_tasks

    path = tmp_path / "t.jsonl"
    good = {"id": "a", "prompt": "1+1?", "answer": "2", "scorer": "math", "extra": "{}"}
    path.write_text("\n".join(json.dumps(r) for r in [
        good, {**good, "id": "b", "extra": "[1]"}, {**good, "id": "c", "extra": "{nope"},
        {**good, "id": "d", "extra": '{"template": "{prompt} {missing}"}'}]) + "\n")
    tasks, rejects = read_tasks(path)
    assert [t["id"] for t in tasks] == ["a"]
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (2, "not-a-task"), (3, "not-a-task"), (4, "bad-template")]
    assert "object" in rejects[0]["detail"] and "JSON" in rejects[1]["detail"]


@pytest.mark.slow
def test_task_files_are_a_grpo_train_dataset_as_they_are(tmp_path, tiny_model):
    """One step of TRL's own GRPOTrainer on the loaded task files, a reward reading the
    `answer` column."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    files = write_task_files(tmp_path / "tasks")
    ds = load_json(files.values(), tmp_path / "cache")
    seen = []

    def reward(completions, answer, **columns):
        seen.extend(zip(columns["id"], answer, columns["scorer"]))
        return [float(a in c) for c, a in zip(completions, answer)]

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), max_steps=1, num_generations=2,
                      per_device_train_batch_size=4, max_completion_length=8, beta=0.0,
                      report_to=[], logging_steps=1, use_cpu=True, save_strategy="no",
                      disable_tqdm=True, seed=0)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=ds,
                          processing_class=tok)
    trainer.train()
    (log, *_) = trainer.state.log_history
    assert log["step"] == 1 and "reward" in log
    by_id = {row["id"]: (row["answer"], row["scorer"]) for row in ds}
    assert len(seen) == 4 and all(by_id[i] == (a, s) for i, a, s in seen)


def test_ember_sft_reads_tools_as_json_text_and_as_a_list(tmp_path):
    """`ember train --stage sft` reads what `ember convert` writes now and files written
    before (tools a list); tools that are neither are rejected with the reason."""
    from ember.adp.export.sft_chat import chat_record
    from ember.train.sft import read_sft

    spec = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    new = chat_record("new", [dict(m) for m in chat], [spec])
    assert new["tools"] == json.dumps([spec]) and new["messages"][1]["reasoning_content"] == ""
    lines = [new, {"id": "old", "messages": chat, "tools": [spec]},
             {"id": "none", "messages": chat}, {"id": "bad", "messages": chat, "tools": "{x"}]
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    rows, rejects = read_sft(str(path))
    assert [(r["id"], r["tools"]) for r in rows] == [("new", [spec]), ("old", [spec]),
                                                     ("none", [])]
    assert [(r["line"], r["reason"]) for r in rejects] == [(4, "not-sft-chat")]
    assert "JSON" in rejects[0]["detail"]
