"""The simulated learner: bots beats uniform by the target margins (at most 0.75x the steps, effective ratio at least 0.8); the CLI and plot work."""

import json

import numpy as np
import typer
from typer.testing import CliRunner

from ember.cli import bench
from ember.train.simulate import SimConfig, SimulatedLearner, compare_selectors, plot_curves


def test_bots_reaches_target_in_fewer_steps_than_uniform():
    result = compare_selectors(SimConfig(num_tasks=500, steps=300, seed=0, tasks_per_step=32,
                                         selectors=["uniform", "bots"]))
    runs, vs = result["selectors"], result["bots_vs_uniform"]
    assert runs["bots"]["steps_to_target"] < runs["uniform"]["steps_to_target"]
    assert vs["steps_ratio"] <= 0.75
    assert vs["bots_effective_ratio"] >= 0.8 > 0.5 > vs["uniform_effective_ratio"]
    assert len(runs["bots"]["curve"]) == 301


def test_environment_is_the_same_for_every_selector():
    a, b = SimulatedLearner(SimConfig(num_tasks=100, seed=4)), SimulatedLearner(SimConfig(num_tasks=100, seed=4))
    assert np.array_equal(a.difficulty, b.difficulty)
    assert np.array_equal(a.columns["ref_weak"], b.columns["ref_weak"])
    # the strong reference is a stronger model: it passes at least as much on average
    assert a.columns["ref_strong"].mean() > a.columns["ref_weak"].mean()


def test_bench_selectors_cli_and_plot(tmp_path):
    ember = typer.Typer()                      # as cli/main.py registers it
    ember.add_typer(bench.app, name="bench")
    runner = CliRunner()
    out = runner.invoke(ember, ["bench", "selectors", "--num-tasks", "200", "--steps", "30",
                                    "--selectors", "uniform,bots", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data["selectors"]) == {"uniform", "bots"}
    assert "Example" in runner.invoke(ember, ["bench", "selectors", "--help"]).output
    bad = runner.invoke(ember, ["bench", "selectors", "--selectors", "nope"])
    assert bad.exit_code == 2
    png = plot_curves(data, tmp_path / "curves.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
