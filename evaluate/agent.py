"""The agentic-search loop: a model answers a question by searching, one action per step.

    from ember.evaluate.agent import run_agent
    rollouts = run_agent(llm, ["Who directed Sinister?"], open_searcher("index/"),
                         SamplingParams(temperature=0.7, max_new_tokens=256), seeds=[0])
    rollouts[0].status, rollouts[0].answer, rollouts[0].steps   # per-step logs

Used by `ember synth trajectories` (synth/trajectories.py) and the `hotpotqa-search`
benchmark of `ember eval`. Each step the model writes ``<think>…</think>`` and exactly one
action, ``<search>query</search>`` or ``<answer>text</answer>`` (prompt, with one worked
example: evaluate/prompts/search_agent.md). Generation stops at ``</search>`` / ``</answer>``; the
backend drops the stop string, so it is put back. A search's top-k paragraphs come back
as the next user turn inside ``<information>…</information>``. A step that breaks the
format (see ``check_step``) is answered with a corrective user message instead, and still
counts towards the turn limit. A rollout ends answered, at the turn limit, or on a backend
error.

Steps are synchronous across rollouts so the LLM layer sees big batches: at each step all
running rollouts, whatever their question and seed, go out in one ``LLM.generate`` call
(``seeds=`` gives each its own), and all their queries go to the retriever in one batch.
Each rollout keeps its own seed at every step, so rollouts of one question differ and each
one's calls are cached on their own (keyed exactly as a call with that seed alone);
rerunning replays them from the cache.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from ember.evaluate.search_tool import NO_RESULTS, paragraphs
from ember.evaluate.templates import load_prompt, render
from ember.llm.backends import SamplingParams

STOP = ["</search>", "</answer>"]
MAX_TURNS = 4  # steps per rollout, the answer included
TOPK = 3  # paragraphs per search
ACTIONS = ("search", "answer")
TAGS = ("think", "search", "answer", "information")

CORRECTION = ("Your last step broke the format ({reason}). Write <think>...</think> and then "
              "exactly one action: <search>query</search> or <answer>answer</answer>. "
              "Never write <information> yourself.")

_LAYOUT = re.compile(r"\s*<think>(.*?)</think>\s*<(search|answer)>(.*?)</\2>\s*", re.S)


def prompt_template() -> str:
    return load_prompt("search_agent")


_TURN = re.compile(r"^=== (user|assistant|system) ===[ \t]*$", re.M)


def first_messages(question: str, *, max_turns: int = MAX_TURNS, topk: int = TOPK,
                   template: str | None = None) -> list[dict]:
    """The chat a rollout starts from: the template's turns, filled in.

    The template splits into chat turns at lines ``=== user ===`` / ``=== assistant ===``
    (the shipped one is the instructions, one worked example, then the question: even a
    135M model copies the step format from a worked example, and from instructions alone
    it does not); a template without such lines is one user turn.
    """
    text = render(template or prompt_template(),
                  {"question": question.strip(), "max_turns": max_turns, "topk": topk})
    parts = _TURN.split(text)
    if len(parts) == 1:
        return [{"role": "user", "content": text.strip()}]
    return [{"role": role, "content": body.strip()}
            for role, body in zip(parts[1::2], parts[2::2])]


def close_action(text: str, finish_reason: str) -> str:
    """Put back the closing tag the stop string removed.

    Only when generation stopped (not at max tokens) and the last action tag opened is
    still open; an end-of-turn right after an open tag reads the same, and is closed too.
    """
    if finish_reason == "length":
        return text
    opened = max(ACTIONS, key=lambda a: text.rfind(f"<{a}>"))
    at = text.rfind(f"<{opened}>")
    if at >= 0 and f"</{opened}>" not in text[at:]:
        return text + f"</{opened}>"
    return text


def check_step(text: str, finish_reason: str = "stop") -> tuple[dict | None, str | None]:
    """Strictly parse one step: ({"think", "action", "argument"}, None) or (None, reason).

    A step is ``<think>…</think>`` then exactly one ``<search>…</search>`` or
    ``<answer>…</answer>``, both non-empty, with nothing but whitespace around them, and
    no ``<information>`` (only the environment writes that). Tags counted and paired
    first, so a tag inside another shows up as an extra action or think.
    """
    reason = _violation(text)
    if reason and finish_reason == "length":
        reason = f"truncated at max_new_tokens: {reason}"
    if reason:
        return None, reason
    m = _LAYOUT.fullmatch(text)
    return {"think": m.group(1).strip(), "action": m.group(2),
            "argument": m.group(3).strip()}, None


def _violation(text: str) -> str | None:
    if "<information>" in text or "</information>" in text:
        return "self-written <information>: only the environment writes search results"
    for tag in TAGS[:3]:
        opens, closes = text.count(f"<{tag}>"), text.count(f"</{tag}>")
        if opens != closes:
            return f"unpaired <{tag}> tag ({opens} opened, {closes} closed)"
    actions = sum(text.count(f"<{a}>") for a in ACTIONS)
    if actions == 0:
        return "no action: end the step with <search>...</search> or <answer>...</answer>"
    if actions > 1:
        return f"{actions} actions in one step: exactly one is allowed"
    if text.count("<think>") == 0:
        return "missing <think>...</think> before the action"
    if text.count("<think>") > 1:
        return "more than one <think> block"
    m = _LAYOUT.fullmatch(text)
    if m is None:
        return "expected <think>...</think> then the action, with no text outside the tags"
    if not m.group(1).strip():
        return "empty <think>"
    if not m.group(3).strip():
        return f"empty <{m.group(2)}>"
    return None


def information(hits) -> str:
    """Search results as the model sees them, one paragraph per line (the same lines
    as the native protocol's tool message, evaluate/search_tool.py)."""
    if not hits:
        return f"<information>{NO_RESULTS}</information>"
    return f"<information>\n{paragraphs(hits)}\n</information>"


@dataclass
class Rollout:
    """One attempt at one question; ``steps`` is the per-step log."""

    question: str
    seed: int
    messages: list[dict]
    steps: list[dict] = field(default_factory=list)
    status: str = "running"  # answered | turn-limit | error
    answer: str | None = None
    error: str | None = None

    @property
    def tokens(self) -> int:
        return sum(s.get("tokens", 0) for s in self.steps)


def run_agent(llm, questions: list[str], search, params: SamplingParams, *,
              seeds: list[int] | None = None, max_turns: int = MAX_TURNS, topk: int = TOPK,
              template: str | None = None, on_step=None) -> list[Rollout]:
    """Roll out one trajectory per question (repeat a question for more rollouts, with
    distinct ``seeds``); returns the finished Rollouts in input order.

    ``llm`` is an ember.llm.client.LLM; ``search(queries, k)`` returns Hits per query
    (ember.evaluate.search.SearchIndex or RemoteSearch). ``on_step(turn, running)`` is
    called after each step.
    """
    seeds = list(seeds) if seeds is not None else [params.seed] * len(questions)
    if len(seeds) != len(questions):
        raise ValueError(f"{len(seeds)} seeds for {len(questions)} questions")
    rollouts = [Rollout(q, s, first_messages(q, max_turns=max_turns, topk=topk,
                                             template=template))
                for q, s in zip(questions, seeds)]
    for turn in range(1, max_turns + 1):
        running = [r for r in rollouts if r.status == "running"]
        if not running:
            break
        searches: list[tuple[Rollout, dict]] = []
        step_params = dataclasses.replace(params, n=1, stop=list(STOP))
        results = llm.generate([r.messages for r in running], step_params,
                               seeds=[r.seed for r in running])
        for r, result in zip(running, results):
            searches += _take_step(r, turn, result)
        if searches:
            hits = search([step["query"] for _, step in searches], topk)
            for (r, step), found in zip(searches, hits):
                step["results"] = [{"id": h.id, "title": h.title, "score": round(h.score, 4)}
                                   for h in found]
                step["information"] = information(found)
                r.messages.append({"role": "user", "content": step["information"]})
        for r in running:
            if r.status == "running" and turn == max_turns:
                r.status = "turn-limit"
        if on_step:
            on_step(turn, sum(r.status == "running" for r in rollouts))
    return rollouts


def _take_step(r: Rollout, turn: int, result) -> list[tuple[Rollout, dict]]:
    """Record one generated step; returns [(rollout, step)] when it asks for a search."""
    if not result.ok:
        r.status, r.error = "error", result.error
        r.steps.append({"turn": turn, "error": result.error})
        return []
    comp = result.completions[0]
    text = close_action(comp.text, comp.finish_reason)
    step = {"turn": turn, "text": text, "finish_reason": comp.finish_reason,
            "tokens": comp.tokens}
    r.steps.append(step)
    r.messages.append({"role": "assistant", "content": text})
    parsed, reason = check_step(text, comp.finish_reason)
    if parsed is None:
        step["violation"] = reason
        step["correction"] = CORRECTION.format(reason=reason)
        r.messages.append({"role": "user", "content": step["correction"]})
        return []
    step["think"], step["action"] = parsed["think"], parsed["action"]
    if parsed["action"] == "answer":
        step["answer"] = parsed["argument"]
        r.status, r.answer = "answered", parsed["argument"]
        return []
    step["query"] = parsed["argument"]
    return [(r, step)]
