"""A simulated learner for comparing task selectors in seconds .

    ember bench selectors --num-tasks 2000 --steps 300 --plot selectors.png
    python -c "from ember.train.simulate import SimConfig, compare_selectors; print(compare_selectors(SimConfig()))"

The environment, identical for every selector and blind to which one is running:

- N training tasks with latent difficulty d_i ~ Normal(difficulty_mean, difficulty_std)
  (logit units), and a held-out set drawn the same way.
- A policy with one scalar ability θ (θ₀ = `ability`); its pass probability on task i is
  σ(θ − d_i). Held-out accuracy is the mean pass probability over the held-out tasks.
- Each step the selector picks B tasks; each gets K rollouts, successes ~ Binomial(K, p_i).
  A task is informative when 0 < successes < K (otherwise every GRPO advantage in its
  group is zero). The policy improves by θ += learning_rate × (informative share of the
  batch): zero-advantage groups add no gradient but still count in the batch mean.
- Reference pass-rate columns, as an offline `ember eval pass-rate` run would write them:
  `ref_weak` = empirical pass rate of `ref_samples` rollouts at θ₀, `ref_strong` the same
  at θ₀ + `ref_gap` (a stronger model). `bots` interpolates between them; `sec` bins
  `ref_weak` into difficulty levels; `offline-easy2hard` sorts by it.

Defaults describe a hard, spread-out task pool (a third of the tasks start near 0 or 1
pass rate, typical of math RL sets). Each selector runs with the same seed for the same
steps; reported: steps to the target held-out accuracy, mean effective-task ratio, mean
strict ratio and selection overhead (select + update, ms per step).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ember.adp.config import opt
from ember.adp.io import atomic_writer
from ember.adp.summary import Summary
from ember.train.selectors import SELECTORS, selector_class

if TYPE_CHECKING:
    import numpy as np


@dataclasses.dataclass
class SimConfig:
    """`ember bench selectors`: the simulated learner and which selectors race on it."""

    num_tasks: int = opt(2000, "Training tasks in the simulated pool.", min=1)
    steps: int = opt(300, "Training steps per selector.", min=1)
    tasks_per_step: int = opt(64, "Tasks per step (B).", min=1)
    samples: int = opt(8, "Samples per prompt: rollouts per task (K).", short="-n", min=1)
    seed: int = opt(0, "Seed of sampling and every random choice: the environment and "
                       "every selector.")
    target: float = opt(0.5, "Held-out accuracy to reach.", min=0.0, max=1.0)
    selectors: list[str] = opt(list(SELECTORS), "Selectors to run.")
    plot: str | None = opt(None, "PNG file of accuracy-vs-step curves.")
    difficulty_mean: float = opt(2.0, "Mean task difficulty (logits; ability starts at 0).",
                                 cli=False)
    difficulty_std: float = opt(4.0, "Spread of task difficulty (logits).", cli=False)
    ability: float = opt(0.0, "Initial ability.", cli=False)
    learning_rate: float = opt(0.02, "Ability gained per step with every task informative.",
                               cli=False)
    ref_gap: float = opt(3.0, "Ability of the strong reference run above the start.",
                         cli=False)
    ref_samples: int = opt(16, "Rollouts per task behind each reference pass rate.",
                           cli=False)
    heldout: int = opt(5000, "Held-out tasks for the accuracy.", cli=False)


def _sigmoid(x):
    import numpy as np

    return 1.0 / (1.0 + np.exp(-x))


class SimulatedLearner:
    """The environment: task difficulties, the policy's ability, rollouts, references."""

    def __init__(self, cfg: SimConfig):
        import numpy as np  # numpy loads when a simulation runs, not with `ember --help`

        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        self.difficulty = rng.normal(cfg.difficulty_mean, cfg.difficulty_std, cfg.num_tasks)
        self.heldout = rng.normal(cfg.difficulty_mean, cfg.difficulty_std, cfg.heldout)
        ref = lambda theta: rng.binomial(cfg.ref_samples, _sigmoid(theta - self.difficulty)) / cfg.ref_samples
        self.columns = {"ref_weak": ref(cfg.ability), "ref_strong": ref(cfg.ability + cfg.ref_gap)}
        self.columns["pass_rate"] = self.columns["ref_weak"]
        self.ability = cfg.ability
        self.rng = np.random.default_rng([cfg.seed, 1])    # rollouts

    def accuracy(self) -> float:
        return float(_sigmoid(self.ability - self.heldout).mean())

    def rollout(self, ids: np.ndarray) -> np.ndarray:
        import numpy as np

        k = self.cfg.samples
        successes = self.rng.binomial(k, _sigmoid(self.ability - self.difficulty[ids]))
        self.ability += self.cfg.learning_rate * float(np.mean((successes > 0) & (successes < k)))
        return successes


def run_selector(name: str, cfg: SimConfig, **selector_kwargs) -> dict:
    """Train the simulated learner for ``cfg.steps`` steps with one selector."""
    import numpy as np

    env = SimulatedLearner(cfg)
    cls = selector_class(name)
    columns = {c: env.columns[c] for c in cls.columns if c in env.columns}
    sel = cls(cfg.num_tasks, seed=cfg.seed, **columns, **selector_kwargs)
    counts = np.full(cfg.tasks_per_step, cfg.samples)
    curve, effective, strict, overhead = [env.accuracy()], [], [], []
    for step in range(cfg.steps):
        start = time.perf_counter()
        ids = sel.select(step, cfg.tasks_per_step)
        overhead.append(time.perf_counter() - start)
        successes = env.rollout(ids)
        start = time.perf_counter()
        sel.update(ids, successes, counts)
        overhead[-1] += time.perf_counter() - start
        m = sel.metrics()
        effective.append(m["effective_ratio"])
        strict.append(m["strict_ratio"])
        curve.append(env.accuracy())
    reached = np.flatnonzero(np.asarray(curve) >= cfg.target)
    return {
        "steps_to_target": int(reached[0]) if len(reached) else None,
        "final_accuracy": curve[-1],
        "effective_ratio": float(np.mean(effective)),
        "strict_ratio": float(np.mean(strict)),
        "overhead_ms": float(np.mean(overhead) * 1e3),
        "curve": curve,
    }


def compare_selectors(cfg: SimConfig) -> dict:
    """Run every selector of ``cfg`` on the same simulated learner. The result holds
    per-selector figures and accuracy curves (index = steps done), plus bots against
    uniform: the ratio of steps to target and both effective-task ratios."""
    unknown = [n for n in cfg.selectors if n.replace("_", "-") not in SELECTORS]
    if unknown:
        raise ValueError(f"unknown selector(s) {', '.join(unknown)}; built-in: "
                         f"{', '.join(SELECTORS)}")
    if cfg.tasks_per_step > cfg.num_tasks:
        raise ValueError(f"--tasks-per-step {cfg.tasks_per_step} is larger than --num-tasks "
                         f"{cfg.num_tasks}")
    env = SimulatedLearner(cfg)
    runs = {name: run_selector(name, cfg) for name in cfg.selectors}
    result = {"config": dataclasses.asdict(cfg), "initial_accuracy": env.accuracy(),
              "selectors": runs}
    if {"bots", "uniform"} <= runs.keys():
        b, u = runs["bots"]["steps_to_target"], runs["uniform"]["steps_to_target"]
        result["bots_vs_uniform"] = {
            "steps_ratio": (b / u) if b is not None and u else None,
            "bots_effective_ratio": runs["bots"]["effective_ratio"],
            "uniform_effective_ratio": runs["uniform"]["effective_ratio"],
        }
    return result


def run(cfg: SimConfig) -> Summary:
    """`ember bench selectors`: compare, plot if asked, summarise."""
    start = time.perf_counter()
    result = compare_selectors(cfg)
    if cfg.plot:
        result["plot"] = str(plot_curves(result, cfg.plot))
    return Summary("bench selectors", read=cfg.num_tasks, produced=len(result["selectors"]),
                   output=result.get("plot"), seconds=time.perf_counter() - start,
                   details=result)


def plot_curves(result: dict, path: str | Path) -> Path:
    """Held-out accuracy against step for every selector in a `compare_selectors` result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, run in result["selectors"].items():
        ax.plot(run["curve"], label=name, lw=2.2 if name == "bots" else 1.4)
    ax.axhline(result["config"]["target"], color="grey", ls="--", lw=1, label="target")
    ax.set_xlabel("step")
    ax.set_ylabel("held-out accuracy (mean pass probability)")
    cfg = result["config"]
    ax.set_title(f"simulated learner: {cfg['num_tasks']} tasks, B={cfg['tasks_per_step']}, "
                 f"K={cfg['samples']}, seed {cfg['seed']}")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_writer(path) as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
    return path
