"""`ember synth`: generate training data with an LLM.

The options are the fields of QuestionsConfig (ember.synth.questions), SolutionsConfig
(ember.synth.solutions), TrajectoryConfig (ember.synth.trajectories), IndexConfig and
ServeConfig (ember.evaluate.search); this module registers the commands and renders
their summaries.
"""

from __future__ import annotations

import typer

from ember.cli.options import add_command, group
from ember.cli.render import console
from ember.evaluate.search import IndexConfig, ServeConfig, run_index, run_serve
from ember.synth import questions, solutions, trajectories

app = typer.Typer(
    cls=group(),
    help=(
        "Generate training data with an LLM (every call cached and resumable).\n\n"
        "Examples:\n\n"
        "  ember synth questions --categories math,logic --count 20 -o tasks.jsonl\n\n"
        "  ember synth solutions --tasks tasks.jsonl --strategy prop2diff --samples 8 -o sft.jsonl\n\n"
        "  ember synth index corpus.jsonl -o index/\n\n"
        "  ember synth trajectories --questions q.jsonl --search-index index/ --samples 4 -o trajs.jsonl"
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

QUESTIONS_HELP = """Synthesise challenging multi-hop questions (MindGYM) as task records.

Seed documents and linked sub-questions per category -> one composed multi-hop question
with thinking and answer -> quality control (near-duplicate removal, an LLM judge with
--min-score, re-solving to check the answer). The output feeds `ember train --tasks`
directly; `--format sft` writes a 3-step curriculum of sft-chat records instead. Every
LLM call is cached (OUT.cache.sqlite): rerunning the same command resumes and repeats
nothing. Exits 1 when no question survives.

Examples:

  ember synth questions --categories math,logic --count 20 -o tasks.jsonl

  ember synth questions --backend openai --base-url http://127.0.0.1:8000/v1 --model M --count 50 --min-score 4 -o tasks.jsonl

  ember synth questions --seeds docs.jsonl --format sft --no-consistency -o sft.jsonl
"""

SOLUTIONS_HELP = """Sample and verify solutions, more for harder tasks (DART-Math), as SFT data.

A first pass of --probe-samples samples per task measures its fail rate; the rest of the
budget (--samples attempts per task on average) goes evenly (uniform) or in proportion
to the fail rate (prop2diff, at least one per task). Correct solutions, checked by each
task's scorer (math by default), are written as sft-chat records.

Examples:

  ember synth solutions --tasks tasks.jsonl --strategy prop2diff --samples 8 -o sft.jsonl

  ember synth solutions --tasks gsm8k_train.jsonl --backend openai --base-url http://127.0.0.1:8000/v1 --model M --samples 16 --probe-samples 4 -o dart.jsonl
"""

TRAJECTORIES_HELP = """Roll out a teacher in the search environment, label behaviours with a
judge, keep behaviour-primed trajectories as ADP.

The teacher writes `<think>` and one `<search>` or `<answer>` per step; a judge (never
shown the gold answer) labels Information Verification, Authority Evaluation, Adaptive
Search and Error Recovery as strict JSON yes/no; --keep selects. Every LLM call is cached
in OUT.cache.sqlite: rerunning the same command after a kill repeats no finished call.
Feed the output to `ember convert --to sft-chat`.

Examples:

  ember synth index examples/data/search/corpus.jsonl -o search-index/

  ember synth trajectories -q examples/data/search/questions.jsonl --search-index search-index/ --samples 4 -o trajs.jsonl

  ember synth trajectories --backend openai --base-url http://127.0.0.1:8000/v1 -m teacher --judge-model judge -q q.jsonl --search-index http://127.0.0.1:8001 -o trajs.jsonl --keep any

  ember convert trajs.jsonl --to sft-chat -o sft.jsonl
"""

INDEX_HELP = """Build a BM25 index (bm25s) of a JSONL corpus for `serve-search` and
`trajectories`.

Each line is {"id", "title", "text"} (id and title optional). Lines without a text, with
bad JSON or a repeated id are rejected with the reason into OUT/rejects.jsonl.

Example:

  ember synth index examples/data/search/corpus.jsonl -o search-index/
"""

SERVE_HELP = """Serve an index over HTTP with the Search-R1 /retrieve contract, until Ctrl-C.

POST /retrieve `{"queries": ["..."], "topk": 3, "return_scores": true}` answers
`{"result": [[{"document": {"id": ID, "contents": TITLE_IN_QUOTES + "\\n" + TEXT},
"score": S}, ...], ...]}`, one list per query; GET /health answers `{"status": "ok",
"docs": N}`. `ember synth trajectories --search-index http://HOST:PORT` uses it.

Example:

  ember synth serve-search search-index/ --port 8001
"""


def render_counts(summary) -> None:
    """Counts, rejects by reason, judge scores, coverage, LLM use, time."""
    from rich.table import Table  # here: `ember --help` need not load it

    d = summary.details
    table = Table(title=f"ember {summary.command}", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("read", str(summary.read))
    table.add_row("produced", f"{summary.produced} -> {summary.output}")
    if "tasks_covered" in d:
        table.add_row("tasks covered", str(d["tasks_covered"]))
    table.add_row("rejected", f"{summary.rejected} -> {summary.rejects}")
    for reason, count in summary.rejected_by_reason.items():
        table.add_row(f"  {reason}", str(count))
    for dim, hist in (d.get("judge_histogram") or {}).items():
        if any(hist.values()):
            table.add_row(f"judge {dim}", "  ".join(f"{k}:{v}" for k, v in hist.items()))
    for name, b in (d.get("coverage") or {}).items():
        if b["tasks"]:
            table.add_row(f"coverage {name}", f"{b['covered']}/{b['tasks']}")
    if "llm" in d:
        u = d["llm"]
        table.add_row("LLM", f"{u['calls']} calls, {u['cached']} cached, {u['failed']} failed, "
                             f"{u['completion_tokens']} tokens")
    table.add_row("time", f"{summary.seconds:.1f}s")
    console.print(table)


def render_trajectories(summary) -> None:
    """Behaviour frequencies over all / correct / incorrect, then the policies."""
    from rich.table import Table  # here: `ember --help` need not load it

    d = summary.details
    stats = d["behaviours"]
    table = Table(title=f"{d['questions']} questions × {d['config']['samples']} rollouts: "
                        f"{d['answered']} answered, {d['judged']} judged, {d['correct']} "
                        f"correct, {summary.rejected} rejected", title_justify="left")
    table.add_column("behaviour")
    for group in ("all", "correct", "incorrect"):
        table.add_column(f"{group} (n={stats[group]['n']})", justify="right")

    def cell(count: int, n: int) -> str:
        return f"{count} ({count / n:.0%})" if n else "-"

    for b in (*trajectories.BEHAVIOURS, "all_four"):
        table.add_row(b.replace("_", " "), *(cell(stats[g][b], stats[g]["n"])
                                             for g in ("all", "correct", "incorrect")))
    table.add_section()
    for policy, n in d["policies"].items():
        mark = " ← --keep" if policy == d["keep"] else ""
        table.add_row(f"keep {policy}{mark}", str(n), "", "")
    for reason, n in summary.rejected_by_reason.items():
        table.add_row(f"rejected: {reason}", str(n), "", "")
    for role, u in d["usage"].items():
        table.add_row(f"{role} LLM calls (cached)", f"{u['calls']} ({u['cached']})", "", "")
    console.print(table)
    console.print(f"  kept {summary.produced} ({d['keep']}) -> {summary.output}   rejects: "
                  f"{summary.rejected} -> {summary.rejects}   summary: {d['summary']}",
                  highlight=False)


def render_index(summary) -> None:
    reasons = ", ".join(f"{k} {v}" for k, v in summary.rejected_by_reason.items())
    console.print(f"indexed {summary.produced} documents, rejected {summary.rejected}"
                  f"{f' ({reasons})' if reasons else ''} -> {summary.output}", highlight=False)


def _serve(cfg):
    return run_serve(cfg, on_ready=lambda url: console.print(f"serving {cfg.index} on {url}",
                                                             highlight=False))


add_command(app, "questions", questions.QuestionsConfig, questions.run, render_counts,
            help=QUESTIONS_HELP)
add_command(app, "solutions", solutions.SolutionsConfig, solutions.run, render_counts,
            help=SOLUTIONS_HELP)
add_command(app, "index", IndexConfig, run_index, render_index, help=INDEX_HELP)
add_command(app, "serve-search", ServeConfig, _serve, lambda s: None, help=SERVE_HELP)
add_command(app, "trajectories", trajectories.TrajectoryConfig, trajectories.run,
            render_trajectories, help=TRAJECTORIES_HELP)
