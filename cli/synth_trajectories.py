"""`ember synth index | serve-search | trajectories`: the agentic-search environment and
behaviour-primed trajectory synthesis (DESIGN §3)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ember.cli.render import console, fail, print_json
from ember.cli.synth_options import llm_options, progress_bar
from ember.llm.client import LLMConfig


def index_cmd(
    corpus: Path = typer.Argument(..., help="JSONL corpus, one {id, title, text} per line."),
    out: Path = typer.Option(..., "--out", "-o", help="Index directory to write."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Build a BM25 index (bm25s) of a JSONL corpus for `serve-search` and `trajectories`.

    Each line is {"id", "title", "text"} (id and title optional). Lines without a text,
    with bad JSON or a repeated id are rejected with the reason into OUT/rejects.jsonl.

    Example:

      ember synth index examples/data/search/corpus.jsonl -o search-index/
    """
    from ember.adp.io import InputError
    from ember.evaluate.search import build_index

    try:
        summary = build_index(corpus, out)
    except (ValueError, InputError) as exc:
        fail(str(exc))
    if json_out:
        print_json(summary)
        return
    reasons = ", ".join(f"{k} {v}" for k, v in summary["reasons"].items())
    console.print(f"indexed {summary['docs']} documents, rejected {summary['rejected']}"
                  f"{f' ({reasons})' if reasons else ''} -> {out}", highlight=False)


def serve_cmd(
    index: Path = typer.Argument(..., help="Index directory from `ember synth index`."),
    port: int = typer.Option(8001, "--port", "-p", min=0, max=65535, help="TCP port (0: any free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; keep it local "
                             "unless you mean to share the corpus."),
) -> None:
    """Serve an index over HTTP with the Search-R1 /retrieve contract, until Ctrl-C.

    POST /retrieve `{"queries": ["..."], "topk": 3, "return_scores": true}` answers
    `{"result": [[{"document": {"id": ID, "contents": TITLE_IN_QUOTES + "\\n" + TEXT},
    "score": S}, ...], ...]}`, one list per query; GET /health answers
    `{"status": "ok", "docs": N}`. `ember synth trajectories --index
    http://HOST:PORT` uses it.

    Example:

      ember synth serve-search search-index/ --port 8001
    """
    from ember.evaluate.search import SearchIndex, make_server

    try:
        server = make_server(SearchIndex(index), host, port)
    except (FileNotFoundError, OSError) as exc:
        fail(str(exc))
    console.print(f"serving {index} on http://{host}:{server.server_address[1]}/retrieve",
                  highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@llm_options
def trajectories_cmd(
    questions: Path = typer.Option(..., "--questions", "-q", help="JSONL of {id, question, answer}."),
    index: str = typer.Option(..., "--index", help=(
        "Index directory (`ember synth index`) or http://HOST:PORT of a /retrieve server.")),
    out: Path = typer.Option(..., "--out", "-o", help=(
        "ADP JSONL of kept trajectories; OUT.summary.json and OUT.rejects.jsonl beside it.")),
    rollouts: int = typer.Option(4, "--rollouts", "-n", min=1, help="Trajectories per question."),
    keep: str = typer.Option("all-behaviours", "--keep", help=(
        "all-behaviours (all four labels yes, right or wrong), correct-only, random (as many "
        "as all-behaviours, at random), any (every judged rollout, answered or not).")),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help=(
        "Judge model [default: the teacher, --model]; same backend and endpoint.")),
    judge_base_url: Optional[str] = typer.Option(None, "--judge-base-url", help=(
        "Judge endpoint when it is not --base-url.")),
    max_turns: int = typer.Option(4, "--max-turns", min=1, help="Steps per rollout, answer included."),
    topk: int = typer.Option(3, "--topk", min=1, help="Paragraphs returned per search."),
    temperature: float = typer.Option(0.7, "--temperature", min=0.0, help="Teacher temperature."),
    top_p: float = typer.Option(1.0, "--top-p", min=0.0, max=1.0),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Teacher tokens per step."),
    seed: int = typer.Option(0, "--seed", help="Rollout k of a question uses seed + k."),
    judge_temperature: float = typer.Option(0.3, "--judge-temperature", min=0.0),
    judge_max_new_tokens: int = typer.Option(128, "--judge-max-new-tokens", min=1),
    judge_attempts: int = typer.Option(3, "--judge-attempts", min=1, help=(
        "Tries per trajectory before the judgement is rejected.")),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="First N questions."),
    rejects: Optional[Path] = typer.Option(None, "--rejects", help=(
        "Rejects JSONL [default: OUT.rejects.jsonl].")),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    *, llm: LLMConfig,
) -> None:
    """Roll out a teacher in the search environment, label behaviours with a judge, keep
    behaviour-primed trajectories as ADP.

    The teacher writes `<think>` and one `<search>` or `<answer>` per step; a judge (never shown
    the gold answer) labels Information Verification, Authority Evaluation, Adaptive
    Search and Error Recovery as strict JSON yes/no; --keep selects. Every LLM call is
    cached in OUT.cache.sqlite: rerunning the same command after a kill repeats no
    finished call. Feed the output to `ember convert --to sft-chat`.

    Examples:

      ember synth index examples/data/search/corpus.jsonl -o search-index/

      ember synth trajectories -q examples/data/search/questions.jsonl --index search-index/
      --rollouts 4 -o trajs.jsonl

      ember synth trajectories --backend openai --base-url http://127.0.0.1:8000/v1 -m teacher
      --judge-model judge -q q.jsonl --index http://127.0.0.1:8001 -o trajs.jsonl --keep any

      ember convert trajs.jsonl --to sft-chat -o sft.jsonl
    """
    import dataclasses

    from ember.adp.io import InputError
    from ember.llm.client import make_llm
    from ember.evaluate.search import open_searcher
    from ember.synth.trajectories import POLICIES, TrajectoryConfig, synthesize

    if keep not in POLICIES:
        fail(f"unknown --keep {keep!r}; choose one of {', '.join(POLICIES)}")
    cfg = TrajectoryConfig(questions=str(questions), index=index, out=str(out),
                           rollouts=rollouts, keep=keep, max_turns=max_turns, topk=topk,
                           temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                           seed=seed, judge_temperature=judge_temperature,
                           judge_max_new_tokens=judge_max_new_tokens,
                           judge_attempts=judge_attempts, limit=limit,
                           rejects=str(rejects) if rejects else None)
    try:
        search = open_searcher(index)
    except FileNotFoundError as exc:
        fail(str(exc))
    teacher = make_llm(llm, out=out)
    judge = teacher
    if (judge_model and judge_model != llm.model) or (
            judge_base_url and judge_base_url != llm.base_url):
        judge = make_llm(dataclasses.replace(llm, model=judge_model or llm.model,
                                             base_url=judge_base_url or llm.base_url), out=out)
    try:
        with progress_bar("judging") as on_judge:
            summary = synthesize(cfg, teacher, judge, search=search, on_step=_on_step,
                                 on_judge=on_judge)
    except (ValueError, InputError) as exc:
        fail(str(exc))
    finally:
        teacher.close()
        if judge is not teacher:
            judge.close()
    if json_out:
        print_json(summary)
    else:
        console.print(summary_table(summary))
        console.print(f"  kept {summary['kept']} ({summary['keep']}) -> {out}   rejects: "
                      f"{summary['rejected']} -> {summary['rejects']}   summary: "
                      f"{out}.summary.json", highlight=False)


def _on_step(turn: int, running: int) -> None:
    if console.is_terminal:
        console.print(f"  step {turn}: {running} rollouts still running", highlight=False)


def summary_table(summary: dict):
    """Behaviour frequencies over all / correct / incorrect, then the policies."""
    from rich.table import Table

    from ember.synth.trajectories import BEHAVIOURS

    stats = summary["behaviours"]
    table = Table(title=f"{summary['questions']} questions × {summary['config']['rollouts']} "
                        f"rollouts: {summary['answered']} answered, {summary['judged']} judged, "
                        f"{summary['correct']} correct, {summary['rejected']} rejected",
                  title_justify="left")
    table.add_column("behaviour")
    for group in ("all", "correct", "incorrect"):
        table.add_column(f"{group} (n={stats[group]['n']})", justify="right")

    def cell(count: int, n: int) -> str:
        return f"{count} ({count / n:.0%})" if n else "-"

    for b in (*BEHAVIOURS, "all_four"):
        table.add_row(b.replace("_", " "), *(cell(stats[g][b], stats[g]["n"])
                                             for g in ("all", "correct", "incorrect")))
    table.add_section()
    for policy, n in summary["policies"].items():
        mark = " ← --keep" if policy == summary["keep"] else ""
        table.add_row(f"keep {policy}{mark}", str(n), "", "")
    for reason, n in summary["reject_reasons"].items():
        table.add_row(f"rejected: {reason}", str(n), "", "")
    for role, u in summary["usage"].items():
        table.add_row(f"{role} LLM calls (cached)", f"{u['calls']} ({u['cached']})", "", "")
    return table


def register(app) -> None:
    """Add this module's commands to the `ember synth` group."""
    app.command("index", no_args_is_help=True)(index_cmd)
    app.command("serve-search", no_args_is_help=True)(serve_cmd)
    app.command("trajectories", no_args_is_help=True)(trajectories_cmd)
