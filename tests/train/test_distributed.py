"""Multi-process training on CPUs: two real processes (gloo), launched as users launch them.

Two launchers really give two CPU processes here: `torchrun --standalone --nproc_per_node 2`
and `accelerate launch --config_file examples/accelerate/multi_cpu.yaml` (accelerate's
multi-GPU launcher; `--cpu` or `distributed_type: MULTI_CPU` start one process).

- Fast: a tasks_per_step that does not split over the processes is refused by grpo_args;
  the shipped accelerate recipes parse with accelerate's own config classes, and the FSDP
  and DeepSpeed ones build accelerate's plugins (those two run only on GPUs: accelerate
  turns FSDP on for GPU-like backends only, and DeepSpeed needs CUDA).
- Slow, RFT with `bots`: a 1-process and a 2-process run with the same global batch and
  seed make the same selections (a reward that depends on task, step and rollout, not on
  the text, so outcomes do not depend on how the batch is split); each process generated
  exactly its slice; the gathered per-task successes are the sum over processes; every
  process holds the same selector state after every step; a run resumed on 2 processes
  from a 2-process checkpoint makes the same selections.
- Slow, failures: tasks_per_step not divisible by the processes is one error line before
  any model loads; a process that raises mid-training stops the other (no hang).
- Slow, SFT through the multi_cpu.yaml recipe on 2 processes.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import yaml

from tests.conftest import FIXTURES, ROOT

TASKS = FIXTURES / "tasks" / "arithmetic.jsonl"
RECIPES = ROOT / "examples" / "accelerate"
G = 4  # rollouts per task
RFT = ["train", "--tasks", TASKS, "--selector", "bots", "--reward",
       "tests.train.test_distributed:coin", "--rft-tasks-per-step", "2", "--rft-samples", str(G),
       "--rft-batch-size", "2", "--rft-max-new-tokens", "4", "--rft-max-steps", "3",
       "--rft-save-steps", "2"]


def coin(prompts, completions, task_index, trainer_state, **_):
    """A reward for these tests: a fixed pseudo-random bit per (step, task, rollout j of
    the task), so the outcomes do not depend on the generated text or on which process
    generated it (each process holds whole groups, so j is the same either way)."""
    seen: dict[int, int] = {}
    out = []
    for t in task_index:
        j = seen[t] = seen.get(t, -1) + 1
        out.append(float(_bit(trainer_state.global_step, t, j)))
    return out


def _bit(step: int, task: int, j: int) -> int:
    return hashlib.sha256(f"{step}:{task}:{j}".encode()).digest()[0] % 2


def fail_on_rank_1(prompts, completions, **_):
    """A reward that raises on the second process only, mid-training."""
    if os.environ.get("RANK") == "1":
        raise RuntimeError("reward failed on rank 1 on purpose")
    return [0.0] * len(completions)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(n: int = 2) -> list[str]:
    # --standalone: a free local rendezvous port, so parallel runs do not collide.
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(n), "-m", "ember.cli.main"]


def accelerate(recipe: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(RECIPES / recipe), "--main_process_port", str(_free_port()),
            "-m", "ember.cli.main"]


def launch(prefix, *args, timeout=240, rank_log=False):
    """Run `prefix ember ARGS` in its own process group; on timeout kill the whole group
    (every rank) and fail, so a hang is a failure, not a stuck suite."""
    env = dict(os.environ, COLUMNS="200")
    if rank_log:
        env["EMBER_RANK_LOG"] = "1"
    proc = subprocess.Popen([*prefix, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(map(str, args))} hung past {timeout}s\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def ok(proc):
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- fast -----------------------------------------------------------------------------------
def test_tasks_per_step_must_split_over_the_processes():
    from ember.train.config import load_config
    from ember.train.rft import grpo_args

    cfg = load_config(overrides={"rft.tasks_per_step": 3, "rft.samples": 4, "rft.batch_size": 2})
    # 12 rollouts split evenly into 2 x 6, but task 2's group would straddle the processes.
    with pytest.raises(ValueError, match="tasks_per_step = 3 must be a multiple of the number "
                                         r"of processes \(2\)"):
        grpo_args(cfg, ROOT / "unused", 2)
    assert grpo_args(cfg, ROOT / "unused", 1).gradient_accumulation_steps == 6


def test_shipped_accelerate_recipes_are_valid_for_accelerate(monkeypatch):
    """What `accelerate launch --config_file` does with each recipe short of starting
    processes: parse it (unknown keys are an error), turn it into the launch environment,
    and build the FSDP / DeepSpeed plugin from that environment."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import (DeepSpeedPlugin, FullyShardedDataParallelPlugin,
                                  prepare_deepspeed_cmd_env, prepare_multi_gpu_env)

    recipes = sorted(p.name for p in RECIPES.glob("*.yaml"))
    assert recipes == ["fsdp.yaml", "multi_cpu.yaml", "multi_gpu.yaml", "zero3.yaml"]
    for name in recipes:
        ClusterConfig.from_yaml_file(str(RECIPES / name))

    def launch_args(name):
        args = launch_command_parser().parse_args(["--config_file", str(RECIPES / name), "x.py"])
        return _validate_launch_command(args)

    args, _, _ = launch_args("fsdp.yaml")
    for key, value in prepare_multi_gpu_env(args).items():
        monkeypatch.setenv(key, value)
    fsdp = FullyShardedDataParallelPlugin()
    assert fsdp.fsdp_version == 2 and fsdp.state_dict_type.name == "FULL_STATE_DICT"

    args, defaults, _ = launch_args("zero3.yaml")
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    for key, value in prepare_deepspeed_cmd_env(args)[1].items():
        monkeypatch.setenv(key, value)
    zero = DeepSpeedPlugin()
    assert zero.zero_stage == 3
    assert zero.deepspeed_config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]

    # The CPU recipe CI runs is the multi-GPU one but for the process count and precision.
    gpu, cpu = (yaml.safe_load((RECIPES / n).read_text())
                for n in ("multi_gpu.yaml", "multi_cpu.yaml"))
    for key in ("num_processes", "mixed_precision"):
        gpu.pop(key), cpu.pop(key)
    assert cpu == gpu


# -- slow: RFT on 2 processes ------------------------------------------------------------------
@pytest.fixture(scope="module")
def rft_runs(tmp_path_factory, tiny_model):
    d = tmp_path_factory.mktemp("distributed")
    run = [*RFT, "--model", tiny_model]
    ok(launch([sys.executable, "-m", "ember.cli.main"], *run, "--out", d / "one", rank_log=True))
    ok(launch(torchrun(2), *run, "--out", d / "two", rank_log=True))
    # Resume: the 2-process run as if killed right after checkpoint-2, resumed on 2 processes.
    shutil.copytree(d / "two", d / "resumed")
    shutil.rmtree(d / "resumed" / "rft" / "model")
    shutil.rmtree(d / "resumed" / "rft" / "checkpoint-3")
    ok(launch(accelerate("multi_cpu.yaml"), *run, "--out", d / "resumed", "--resume",
              rank_log=True))
    return d


@pytest.mark.slow
def test_two_processes_select_generate_gather_and_update_as_one(rft_runs):
    one = _lines(rft_runs / "one" / "rft" / "selection.jsonl")
    two = _lines(rft_runs / "two" / "rft" / "selection.jsonl")
    assert [s["step"] for s in two] == [0, 1, 2]
    rates = [p for s in two for p in s["pass_rate"]]
    assert None not in rates, "a chosen task got no rollouts"
    assert 0 < sum(rates) < len(rates), "outcomes should vary, or the test proves little"
    # Same global batch and seed: the same tasks chosen, the same outcomes per task.
    assert [s["task_index"] for s in two] == [s["task_index"] for s in one]
    assert [s["pass_rate"] for s in two] == [s["pass_rate"] for s in one]

    ranks = [_lines(rft_runs / "two" / "rft" / f"rank-{r}.jsonl") for r in (0, 1)]
    single = _lines(rft_runs / "one" / "rft" / "rank-0.jsonl")
    assert not (rft_runs / "one" / "rft" / "rank-1.jsonl").exists()
    for step, chosen in enumerate(two):
        lines = [log[step] for log in ranks]
        assert ([(x["step"], x["process"], x["processes"]) for x in lines]
                == [(step, 0, 2), (step, 1, 2)])
        # Each process generated exactly its consecutive slice of the G-in-a-row layout.
        layout = [t for t in chosen["task_index"] for _ in range(G)]
        half = len(layout) // 2
        assert [x["task_index"] for x in lines] == [layout[:half], layout[half:]]
        # Each process's successes are the reward's, and per task they add up to what
        # the gathered outcome logged (pass rate x G rollouts).
        per_task = {}
        for x in lines:
            seen = {}
            for t, s in zip(x["task_index"], x["success"]):
                seen[t] = seen.get(t, -1) + 1
                assert s == bool(_bit(step, t, seen[t]))
                per_task[t] = per_task.get(t, 0) + s
        assert [per_task[t] for t in chosen["task_index"]] == [p * G for p in chosen["pass_rate"]]
        # The selector state after the update: the same on both processes and as on one.
        hashes = [x["selector_sha256"] for x in (*lines, single[step])]
        assert len(set(hashes)) == 1

    # The checkpoint holds the state every process had after the step before it.
    saved = json.loads((rft_runs / "two" / "rft" / "checkpoint-2" / "selector_state.json")
                       .read_text())
    digest = hashlib.sha256(json.dumps(saved, sort_keys=True).encode()).hexdigest()
    assert digest == ranks[0][1]["selector_sha256"]


@pytest.mark.slow
def test_two_process_resume_makes_the_same_selections(rft_runs):
    straight = _lines(rft_runs / "two" / "rft" / "selection.jsonl")
    resumed = _lines(rft_runs / "resumed" / "rft" / "selection.jsonl")
    assert [s["step"] for s in resumed] == [0, 1, 2]  # step 2 redone once, not appended twice
    assert [s["task_index"] for s in resumed] == [s["task_index"] for s in straight]
    assert [s["pass_rate"] for s in resumed] == [s["pass_rate"] for s in straight]
    for r in (0, 1):
        got = _lines(rft_runs / "resumed" / "rft" / f"rank-{r}.jsonl")
        want = _lines(rft_runs / "two" / "rft" / f"rank-{r}.jsonl")
        assert [x["processes"] for x in got] == [2, 2, 2]
        assert got == want  # same slices, successes and selector state, step by step
    assert (rft_runs / "resumed" / "rft" / "model" / "model.safetensors").exists()


# -- slow: failures -------------------------------------------------------------------------
@pytest.mark.slow
def test_tasks_per_step_not_divisible_by_processes_is_one_error_before_loading(tmp_path,
                                                                              tiny_model):
    proc = launch(torchrun(2), *RFT, "--rft-tasks-per-step", "3", "--model", tiny_model,
                  "--out", tmp_path / "out", timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.count("must be a multiple of the number of processes (2)") == 1, proc.stderr
    assert "Loading weights" not in proc.stderr  # refused before any model loads
    assert not (tmp_path / "out" / "rft").exists()


@pytest.mark.slow
def test_a_rank_that_raises_stops_every_rank(tmp_path, tiny_model):
    run = [a for a in RFT if a != "tests.train.test_distributed:coin"]
    run.insert(run.index("--reward") + 1, "tests.train.test_distributed:fail_on_rank_1")
    # Rank 0 waits in a collective for rank 1; the launcher must stop it (timeout = hang).
    proc = launch(torchrun(2), *run, "--model", tiny_model, "--out", tmp_path / "out", timeout=150)
    assert proc.returncode != 0
    assert proc.stderr.count("reward failed on rank 1 on purpose") == 1, proc.stderr[-4000:]
    assert "Signal 15 (SIGTERM) received" in proc.stderr  # torchrun stopped the waiting rank 0
    assert not (tmp_path / "out" / "rft" / "model").exists()


# -- slow: SFT through the CPU recipe ----------------------------------------------------------
@pytest.mark.slow
def test_sft_on_two_processes_through_the_cpu_recipe(tmp_path, tiny_model):
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"What is {i} + {i}?"},
        {"role": "assistant", "content": f"{i} + {i} = {2 * i}."}]}) + "\n" for i in range(8)))
    out = tmp_path / "out"
    ok(launch(accelerate("multi_cpu.yaml"), "train", "--stage", "sft", "--model", tiny_model,
              "--data", data, "--sft-max-steps", "2", "--sft-batch-size", "2",
              "--sft-save-steps", "2", "--sft-max-length", "64", "--out", out))
    checkpoint = out / "sft" / "checkpoint-2"
    # One RNG state per process: the trainer ran on 2 processes, not twice on 1.
    assert (sorted(p.name for p in checkpoint.glob("rng_state*"))
            == ["rng_state_0.pth", "rng_state_1.pth"])
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    # 8 rows, 2 per process and step: 2 steps are one epoch on 2 processes (half on 1).
    assert state["global_step"] == 2 and state["epoch"] == pytest.approx(1.0)
    assert (out / "sft" / "model" / "model.safetensors").exists()
