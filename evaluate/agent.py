"""The agentic-search loop: a model answers a question by searching, one action per step.

    from ember.evaluate.agent import run_agent
    rollouts = run_agent(llm, ["Who directed Sinister?"], open_searcher("index/"),
                         SamplingParams(temperature=0.7, max_new_tokens=256), seeds=[0])
    rollouts[0].status, rollouts[0].answer, rollouts[0].steps   # per-step logs

Used by `ember synth trajectories` (synth/trajectories.py) and the `hotpotqa-search`
benchmark of `ember eval`, in one of two protocols (``--protocol``):

- ``native`` (default): the search tool is offered as a chat-template tool
  (evaluate/search_tool.py: the same spec, prompt and tool message as RFT's ``--env
  search``). A step that calls it (``<tool_call>{"name": "search", "arguments": {"query":
  ...}}</tool_call>`` in the text, as ember's ChatML-with-tools template writes it, or
  OpenAI ``tool_calls`` from a server that parses them) gets the top-k paragraphs back as a
  ``tool`` message; a reply without a call is the final answer (its last ``Answer: ...``
  line, else the whole reply). One call per step.
- ``tags`` (Search-R1): each step is ``<think>…</think>`` and exactly one action,
  ``<search>query</search>`` or ``<answer>text</answer>`` (prompt, with one worked example:
  evaluate/prompts/search_agent.md). Generation stops at ``</search>`` / ``</answer>``; the
  backend drops the stop string, so it is put back. Results come back as the next user turn
  inside ``<information>…</information>``.

A step that breaks the format (see ``check_step`` / ``check_reply``) is answered with a
corrective user message instead, and still counts towards the turn limit. A rollout ends
answered, at the turn limit, or on a backend error.

Steps are synchronous across rollouts so the LLM layer sees big batches: at each step all
running rollouts, whatever their question and seed, go out in one ``LLM.generate`` call
(``seeds=`` gives each its own), and all their queries go to the retriever in one batch.
Each rollout keeps its own seed at every step, so rollouts of one question differ and each
one's calls are cached on their own (keyed exactly as a call with that seed alone);
rerunning replays them from the cache.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field

from ember.adp.config import opt
from ember.evaluate.scoring import ANSWER_LABEL, answer_or_all
from ember.evaluate.search_tool import NO_RESULTS, paragraphs, question_prompt, tool_specs
from ember.evaluate.templates import load_prompt, render
from ember.llm.backends import SamplingParams

PROTOCOLS = ("native", "tags")
STOP = ["</search>", "</answer>"]
MAX_TURNS = 4  # steps per rollout, the answer included
TOPK = 3  # paragraphs per search
ACTIONS = ("search", "answer")
TAGS = ("think", "search", "answer", "information")

CORRECTION = ("Your last step broke the format ({reason}). Write <think>...</think> and then "
              "exactly one action: <search>query</search> or <answer>answer</answer>. "
              "Never write <information> yourself.")

NATIVE_CORRECTION = ("Your last reply broke the format ({reason}). Either call the search "
                     "tool once, as <tool_call>{{\"name\": \"search\", \"arguments\": "
                     "{{\"query\": \"...\"}}}}</tool_call>, or reply with your answer, "
                     "ending with a line \"Answer: <answer>\".")

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


def protocol_opt() -> str:
    """The `--protocol` option of every command that runs the search agent."""
    return opt("native", "Tool-call protocol of the search agent: native (a chat-template "
                         "tool call, as `ember train --env search` trains it) or tags "
                         "(Search-R1's <search>/<answer> tags, for models trained that way).")


_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)


def check_reply(text: str, finish_reason: str = "stop", tool_calls: list[dict] | None = None
                ) -> tuple[dict | None, str | None]:
    """Parse one native-protocol reply: ({"think", "action", "argument"}, None) or
    (None, reason).

    ``tool_calls`` are the calls a server parsed out ([{"name", "arguments"}]); without
    them the calls are read from ``<tool_call>{json}</tool_call>`` in the text. A reply
    with one call to ``search`` with a non-empty string ``query`` is a search (``think``:
    the text before the call); one without a call is the answer (``argument``: its last
    ``Answer: ...`` line, else the whole reply). Anything else is a violation: an unclosed
    or non-JSON call, another tool, a missing query, two calls, an empty or cut-off reply.
    """
    reason = _reply_violation(text, finish_reason, tool_calls)
    if isinstance(reason, str):
        if finish_reason == "length" and not reason.startswith("cut"):
            reason = f"truncated at max_new_tokens: {reason}"
        return None, reason
    return reason, None


def _reply_violation(text, finish_reason, tool_calls):
    if tool_calls is not None:
        calls, think = [(c.get("name"), c.get("arguments")) for c in tool_calls], text
    else:
        bodies = _CALL.findall(text)
        if text.count("<tool_call>") != len(bodies):
            return "unclosed <tool_call>: end the call with </tool_call>"
        calls = []
        for body in bodies:
            try:
                call = json.loads(body)
            except ValueError as e:
                return f"the tool call is not JSON ({e})"
            if not isinstance(call, dict):
                return "the tool call is not a JSON object"
            calls.append((call.get("name"), call.get("arguments")))
        think = text.split("<tool_call>", 1)[0]
    if not calls:
        if finish_reason == "length":
            return "cut at max_new_tokens before a tool call or an answer"
        if not text.strip():
            return "empty reply"
        # the answer as the qa scorer reads it; the thought is what comes before it
        found = list(ANSWER_LABEL.finditer(text))
        think = text[:found[-1].start()].rstrip(" *\t").strip() if found else ""
        return {"think": think, "action": "answer", "argument": answer_or_all(text)}
    if len(calls) > 1:
        return f"{len(calls)} tool calls in one reply: call search once per step"
    name, args = calls[0]
    if name != "search":
        return f"unknown tool {name!r}: the only tool is search"
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError as e:
            return f"the search arguments are not JSON ({e})"
    query = args.get("query") if isinstance(args, dict) else None
    if not isinstance(query, str) or not query.strip():
        return "search needs a non-empty string \"query\""
    return {"think": think.strip(), "action": "search", "argument": query.strip()}


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


def start_messages(question: str, protocol: str = "native", *, max_turns: int = MAX_TURNS,
                   topk: int = TOPK, template: str | None = None) -> list[dict]:
    """The chat a rollout starts from: native, the question prompt of the search tool
    (at most max_turns - 1 searches, so that the last step can answer); tags, the
    template's turns (``first_messages``)."""
    if protocol == "native":
        return [{"role": "user", "content": question_prompt(question, max(1, max_turns - 1))}]
    return first_messages(question, max_turns=max_turns, topk=topk, template=template)


def run_agent(llm, questions: list[str], search, params: SamplingParams, *,
              seeds: list[int] | None = None, max_turns: int = MAX_TURNS, topk: int = TOPK,
              protocol: str = "native", template: str | None = None,
              on_step=None) -> list[Rollout]:
    """Roll out one trajectory per question (repeat a question for more rollouts, with
    distinct ``seeds``); returns the finished Rollouts in input order.

    ``llm`` is an ember.llm.client.LLM; ``search(queries, k)`` returns Hits per query
    (ember.evaluate.search.SearchIndex or RemoteSearch); ``protocol`` is native or tags
    (the module docstring); ``template`` replaces the tags prompt. ``on_step(turn,
    running)`` is called after each step.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    native = protocol == "native"
    seeds = list(seeds) if seeds is not None else [params.seed] * len(questions)
    if len(seeds) != len(questions):
        raise ValueError(f"{len(seeds)} seeds for {len(questions)} questions")
    rollouts = [Rollout(q, s, start_messages(q, protocol, max_turns=max_turns, topk=topk,
                                             template=template))
                for q, s in zip(questions, seeds)]
    if native:  # the reply ends at the end of turn; a tool call is part of the reply
        step_params, extra = dataclasses.replace(params, n=1, stop=[]), {"tools": tool_specs()}
    else:
        step_params, extra = dataclasses.replace(params, n=1, stop=list(STOP)), {}
    for turn in range(1, max_turns + 1):
        running = [r for r in rollouts if r.status == "running"]
        if not running:
            break
        searches: list[tuple[Rollout, dict]] = []
        results = llm.generate([r.messages for r in running], step_params,
                               seeds=[r.seed for r in running], **extra)
        for r, result in zip(running, results):
            searches += _take_step(r, turn, result, native)
        if searches:
            hits = search([step["query"] for _, step in searches], topk)
            for (r, step), found in zip(searches, hits):
                step["results"] = [{"id": h.id, "title": h.title, "score": round(h.score, 4)}
                                   for h in found]
                if native:
                    step["information"] = paragraphs(found)
                    r.messages.append({"role": "tool", "tool_call_id": step["call_id"],
                                       "name": "search", "content": step["information"]})
                else:
                    step["information"] = information(found)
                    r.messages.append({"role": "user", "content": step["information"]})
        for r in running:
            if r.status == "running" and turn == max_turns:
                r.status = "turn-limit"
        if on_step:
            on_step(turn, sum(r.status == "running" for r in rollouts))
    return rollouts


def _take_step(r: Rollout, turn: int, result, native: bool) -> list[tuple[Rollout, dict]]:
    """Record one generated step; returns [(rollout, step)] when it asks for a search."""
    if not result.ok:
        r.status, r.error = "error", result.error
        r.steps.append({"turn": turn, "error": result.error})
        return []
    comp = result.completions[0]
    text = comp.text if native else close_action(comp.text, comp.finish_reason)
    step = {"turn": turn, "text": text, "finish_reason": comp.finish_reason,
            "tokens": comp.tokens}
    r.steps.append(step)
    if native:
        parsed, reason = check_reply(text, comp.finish_reason, comp.tool_calls)
    else:
        parsed, reason = check_step(text, comp.finish_reason)
    if parsed is None:
        step["violation"] = reason
        step["correction"] = (NATIVE_CORRECTION if native else CORRECTION).format(reason=reason)
        r.messages.append({"role": "assistant", "content": text})
        r.messages.append({"role": "user", "content": step["correction"]})
        return []
    step["think"], step["action"] = parsed["think"], parsed["action"]
    if parsed["action"] == "answer":
        step["answer"] = parsed["argument"]
        r.status, r.answer = "answered", parsed["argument"]
        r.messages.append({"role": "assistant", "content": text})
        return []
    step["query"] = parsed["argument"]
    if native:  # the call as the chat template and an OpenAI endpoint take it
        step["call_id"] = f"call_{sum('call_id' in s for s in r.steps)}"
        call = {"id": step["call_id"], "type": "function", "function": {
            "name": "search", "arguments": json.dumps({"query": step["query"]},
                                                      ensure_ascii=False)}}
        r.messages.append({"role": "assistant", "content": step["think"],
                           "tool_calls": [call]})
    else:
        r.messages.append({"role": "assistant", "content": text})
    return [(r, step)]
