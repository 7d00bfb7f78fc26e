"""The search tool as a native chat-template tool call: the agentic-search environment of RFT.

    from ember.evaluate.search import open_searcher
    from ember.evaluate.search_tool import SearchEnvironment
    env = SearchEnvironment(open_searcher("index/"), topk=3, max_calls=3)
    env.reset()
    env.search("who directed Sinister")     # the top-k paragraphs, as the tool message says them

`ember train --stage rft --env search --search-index DIR|URL` hands a factory of these to
TRL's GRPOTrainer (`environment_factory`): TRL reads the tool's schema from `search`'s
name, type hints and docstring, puts it in the prompt through the chat template's `tools`,
parses the policy's `<tool_call>{"name": "search", "arguments": {...}}</tool_call>` (the
embedded model's template, llm/templates/chatml_tools.jinja, and RESPONSE_TEMPLATE below),
calls the method and appends its return value as a `tool` message; those tokens are
masked out of the loss. One instance serves one rollout at a time (`reset` starts it over).

The limit on searches is counted here as well as by TRL's `max_tool_calling_iterations`
(which counts rounds, not calls): a rollout that asks for more gets an error text back,
not results. What the tool returns is the environment's text, never the gold answer:
the reward reads only the policy's own last message (ember.train.rewards).
"""

from __future__ import annotations

from ember.evaluate.templates import load_prompt, render

TOPK = 3
MAX_CALLS = 3
NO_RESULTS = "No paragraph matched the query."
LIMIT = "Search limit reached ({n} searches): answer now with what you have."

# How the embedded model's chat template writes an assistant turn, for transformers'
# `tokenizer.parse_response` (TRL parses tool calls with it): text, then zero or more
# <tool_call>{json}</tool_call>, then <|im_end|>. Set on the tokenizer by
# `use_response_template` when the template is ember's and none is set.
RESPONSE_TEMPLATE = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {
            "open": "<tool_call>",
            "close_pattern": r"</tool_call>\s*",
            "repeats": True,
            "content": "json",
            "transform": {"type": "function", "function": "{content}"},
        },
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}


def paragraphs(hits) -> str:
    """Search results as the tool message gives them, one paragraph per line."""
    if not hits:
        return NO_RESULTS
    return "\n".join(f"Doc {i} (Title: {h.title}) {h.text}" for i, h in enumerate(hits, 1))


class SearchEnvironment:
    """One rollout's search tool: `search(query)` over a shared searcher, `max_calls` times."""

    def __init__(self, searcher, topk: int = TOPK, max_calls: int = MAX_CALLS):
        self._searcher, self._topk, self._max_calls = searcher, topk, max_calls
        self.queries: list[str] = []

    def reset(self, **row) -> None:
        """Start a new rollout (TRL passes the task's dataset row; nothing of it is used)."""
        self.queries = []

    def search(self, query: str) -> str:
        """Search the collection of Wikipedia paragraphs.

        Args:
            query: What to look for: a few keywords or a short question.

        Returns:
            The best-matching paragraphs, each headed by its title.
        """
        if len(self.queries) >= self._max_calls:
            return LIMIT.format(n=self._max_calls)
        query = str(query).strip()
        self.queries.append(query)
        if not query:
            return "Empty query: write what to look for."
        return paragraphs(self._searcher([query], k=self._topk)[0])


# The search tool as the chat template's `tools` list shows it: what TRL derives from
# `SearchEnvironment.search` (transformers' get_json_schema; a test holds the two equal).
TOOL_SPEC = {"type": "function", "function": {
    "name": "search",
    "description": "Search the collection of Wikipedia paragraphs.",
    "parameters": {"type": "object", "properties": {"query": {
        "type": "string", "description": "What to look for: a few keywords or a short question."}},
        "required": ["query"]},
    "return": {"type": "string",
               "description": "The best-matching paragraphs, each headed by its title."}}}


def tool_specs() -> list[dict]:
    """The search tool as the OpenAI-style spec list the chat template renders: what the
    search agent offers (ember eval, ember synth trajectories), what TRL derives for RFT,
    and the `tools` of the sft-chat records exported from synthesized trajectories, so the
    model sees one system prompt in all four."""
    import copy

    return [copy.deepcopy(TOOL_SPEC)]


def question_prompt(question: str, max_calls: int = MAX_CALLS) -> str:
    """The user turn of a native-protocol rollout (evaluate/prompts/search_tool.md)."""
    return render(load_prompt("search_tool"), {"question": question.strip(),
                                               "max_calls": max_calls}).strip()


def use_response_template(tokenizer) -> bool:
    """Give ``tokenizer`` RESPONSE_TEMPLATE when its chat template is ember's ChatML-with-
    tools and it has none: then TRL can parse the tool calls. True when it has one now."""
    from ember.llm.models import CHAT_TEMPLATE

    if getattr(tokenizer, "response_template", None) is not None:
        return True
    if (tokenizer.chat_template or "").strip() != CHAT_TEMPLATE.read_text().strip():
        return False
    tokenizer.response_template = RESPONSE_TEMPLATE
    return True
