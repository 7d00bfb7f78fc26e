"""`ember synth questions` (MindGYM) and `ember synth solutions` (DART-Math).

    ember synth questions --categories math,logic --n 20 -o tasks.jsonl
    ember synth solutions --tasks tasks.jsonl --strategy prop2diff --k 8 -o sft.jsonl

Both print a summary table on stderr (or the summary as JSON on stdout with --json) and
write it to OUT.summary.json; rejects go to OUT.rejects.jsonl with stage and reason.
The pipelines are in ember.synth.questions and ember.synth.solutions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ember.cli.render import console, fail, print_json
from ember.cli.synth_options import llm_options, progress_bar
from ember.llm.client import LLMConfig

QUESTIONS_HELP = """Synthesise challenging multi-hop questions (MindGYM) as task records.

Seed documents and linked sub-questions per category -> one composed multi-hop question
with thinking and answer -> quality control (near-duplicate removal, an LLM judge with
--min-score, re-solving to check the answer). The output feeds `ember train --tasks`
directly; `--format sft` writes a 3-step curriculum of sft-chat records instead. Every
LLM call is cached (OUT.cache.sqlite): rerunning the same command resumes and repeats
nothing.

Examples:

  ember synth questions --categories math,logic --n 20 -o tasks.jsonl

  ember synth questions --backend openai --base-url http://127.0.0.1:8000/v1 --model M --n 50 --min-score 4 -o tasks.jsonl

  ember synth questions --seeds docs.jsonl --format sft --no-consistency -o sft.jsonl
"""

SOLUTIONS_HELP = """Sample and verify solutions, more for harder tasks (DART-Math), as SFT data.

A first pass of --probe samples per task measures its fail rate; the rest of the budget
(--k attempts per task on average) goes evenly (uniform) or in proportion to the fail
rate (prop2diff, at least one per task). Correct solutions, checked by each task's
scorer (math by default), are written as sft-chat records.

Examples:

  ember synth solutions --tasks tasks.jsonl --strategy prop2diff --k 8 -o sft.jsonl

  ember synth solutions --tasks gsm8k_train.jsonl --backend openai --base-url http://127.0.0.1:8000/v1 --model M --k 16 --probe 4 -o dart.jsonl
"""


def summary_table(summary: dict):
    """The run summary as a rich table: counts, rejects by reason, judge scores, cost."""
    from rich.table import Table

    table = Table(title=f"ember {summary['command']}", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("requested", str(summary["requested"]))
    table.add_row("produced", f"{summary['produced']} -> {summary['output']}")
    if "tasks_covered" in summary:
        table.add_row("tasks covered", str(summary["tasks_covered"]))
    table.add_row("rejected", f"{summary['rejected']} -> {summary['rejects']}")
    for reason, count in summary["rejected_by_reason"].items():
        table.add_row(f"  {reason}", str(count))
    for dim, hist in (summary.get("judge_histogram") or {}).items():
        if any(hist.values()):
            table.add_row(f"judge {dim}", "  ".join(f"{k}:{v}" for k, v in hist.items()))
    for name, b in (summary.get("coverage") or {}).items():
        if b["tasks"]:
            table.add_row(f"coverage {name}", f"{b['covered']}/{b['tasks']}")
    u = summary["llm"]
    table.add_row("LLM", f"{u['calls']} calls, {u['cached']} cached, {u['failed']} failed, "
                         f"{u['completion_tokens']} tokens")
    table.add_row("time", f"{summary['seconds']:.1f}s")
    return table


def _run(synth, cfg, llm: LLMConfig, out: Path, label: str, json_out: bool) -> None:
    """Open the LLM (and its cache beside OUT), run `synth(cfg, engine)` with a progress
    bar, print its summary; bad input and unusable options end in a one-line error."""
    from ember.adp.io import InputError
    from ember.llm.client import make_llm

    try:
        engine = make_llm(llm, out=out)
    except (ValueError, InputError, OSError) as exc:
        fail(str(exc))
    with engine, progress_bar(label) as progress:
        try:
            summary = synth(cfg, engine, log=_log, on_progress=progress)
        except (ValueError, InputError) as exc:
            fail(str(exc))
    if json_out:
        print_json(summary)
    else:
        console.print(summary_table(summary))


def _list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def register(app) -> None:
    """Add this module's commands to the `ember synth` group."""

    @app.command("questions", help=QUESTIONS_HELP, no_args_is_help=True)
    @llm_options
    def questions(
        out: Path = typer.Option(..., "--out", "-o",
            help="Output JSONL (task records, or sft-chat with --format sft)."),
        n: int = typer.Option(20, "--n", min=1, help="Questions wanted after quality control."),
        categories: Optional[str] = typer.Option(None, "--categories", help=(
            "Comma-separated semantic categories [default: math, science, logic, procedures, "
            "history, ethics, economics, psychology]; any word works.")),
        relations: str = typer.Option("bridging,comparison,temporal", "--relations", help=(
            "How sub-questions link, taken in turn.")),
        seeds: Optional[Path] = typer.Option(None, "--seeds", help=(
            "JSONL of seed documents (`text`) or QA items (`question`, `answer`) instead of "
            "model-written documents.")),
        system_prompt: Optional[Path] = typer.Option(None, "--system-prompt", help=(
            "File with the cognitive-objectives system prompt [default: built in].")),
        sub_questions: int = typer.Option(2, "--sub-questions", min=2,
            help="Single-hop questions per seed."),
        oversample: float = typer.Option(2.0, "--oversample", min=1.0, help=(
            "Candidates per missing question in each round.")),
        max_rounds: int = typer.Option(3, "--max-rounds", min=1,
            help="Rounds of candidates at most."),
        temperature: float = typer.Option(0.7, "--temperature", min=0.0, help=(
            "Sampling temperature of the seed and composition stages.")),
        max_new_tokens: int = typer.Option(384, "--max-new-tokens", min=1,
            help="Token cap per generation."),
        min_score: float = typer.Option(3.0, "--min-score", min=1.0, max=5.0, help=(
            "Judge threshold: every dimension (clarity, answerability, multi_hop_depth, "
            "correctness) must score at least this.")),
        no_judge: bool = typer.Option(False, "--no-judge", help="Skip the LLM judge."),
        no_consistency: bool = typer.Option(False, "--no-consistency", help=(
            "Skip re-solving each question to check its answer.")),
        dedup_threshold: float = typer.Option(0.8, "--dedup-threshold", min=0.0, max=1.0, help=(
            "TF-IDF cosine at which a question counts as a near-duplicate.")),
        format: str = typer.Option("tasks", "--format",
            help="tasks (task records) or sft (curriculum)."),
        seed: int = typer.Option(0, "--seed", help="Seed of every sampled call."),
        rejects: Optional[Path] = typer.Option(None, "--rejects", help=(
            "Rejects JSONL [default: OUT with .rejects.jsonl].")),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        *, llm: LLMConfig,
    ) -> None:
        from ember.adp.io import InputError
        from ember.synth.questions import DEFAULT_CATEGORIES, QuestionsConfig, QuestionSynth, \
            synth_questions

        cfg = QuestionsConfig(
            out=str(out), n=n, categories=_list(categories) or list(DEFAULT_CATEGORIES),
            relations=_list(relations) or [], seeds=str(seeds) if seeds else None,
            system_prompt=str(system_prompt) if system_prompt else None,
            sub_questions=sub_questions, oversample=oversample, max_rounds=max_rounds,
            temperature=temperature, max_new_tokens=max_new_tokens, judge=not no_judge,
            min_score=min_score, consistency=not no_consistency, dedup_threshold=dedup_threshold,
            format=format, seed=seed, rejects=str(rejects) if rejects else None)
        if system_prompt and not system_prompt.is_file():
            fail(f"--system-prompt {system_prompt}: file not found")
        try:
            QuestionSynth(cfg, llm=None)  # checks the options and seeds before any model loads
        except (ValueError, InputError, OSError) as exc:
            fail(str(exc))
        _run(synth_questions, cfg, llm, out, "questions", json_out)

    @app.command("solutions", help=SOLUTIONS_HELP, no_args_is_help=True)
    @llm_options
    def solutions(
        tasks: Path = typer.Option(..., "--tasks",
            help="Task records, JSONL (prompt or question, answer, optional scorer)."),
        out: Path = typer.Option(..., "--out", "-o",
            help="Output sft-chat JSONL of verified solutions."),
        strategy: str = typer.Option("prop2diff", "--strategy", help="uniform or prop2diff."),
        k: int = typer.Option(8, "--k", min=1,
            help="Attempts per task on average, probes included."),
        probe: int = typer.Option(4, "--probe", min=1,
            help="First-pass samples per task to measure difficulty."),
        temperature: float = typer.Option(0.7, "--temperature", min=0.0,
            help="Sampling temperature."),
        max_new_tokens: int = typer.Option(512, "--max-new-tokens", min=1,
            help="Token cap per solution."),
        max_per_task: Optional[int] = typer.Option(None, "--max-per-task", min=1, help=(
            "Keep at most this many correct solutions per task [default: all distinct].")),
        seed: int = typer.Option(0, "--seed", help="Sampling seed."),
        rejects: Optional[Path] = typer.Option(None, "--rejects", help=(
            "Rejects JSONL [default: OUT with .rejects.jsonl].")),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        *, llm: LLMConfig,
    ) -> None:
        from ember.synth.solutions import STRATEGIES, SolutionsConfig, synth_solutions

        if strategy not in STRATEGIES:
            fail(f"unknown --strategy {strategy!r}: use {' or '.join(STRATEGIES)}")
        if probe > k:
            fail(f"--probe ({probe}) must not exceed --k ({k}): K counts the probes")
        if not tasks.exists():
            fail(f"--tasks {tasks}: no such file")
        cfg = SolutionsConfig(tasks=str(tasks), out=str(out), strategy=strategy, k=k, probe=probe,
                              temperature=temperature, max_new_tokens=max_new_tokens,
                              max_per_task=max_per_task, seed=seed,
                              rejects=str(rejects) if rejects else None)
        _run(synth_solutions, cfg, llm, out, "solutions", json_out)


def _log(message: str) -> None:
    console.print(f"[dim]{message}[/]", highlight=False)
