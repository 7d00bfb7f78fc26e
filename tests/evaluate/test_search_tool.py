"""The search tool of the native protocol: what a rollout can call, what it gets back, and
that a tool call the chat template writes is parsed back into the same call (what TRL
does with the policy's text)."""

import json

import pytest

from ember.evaluate.search import SearchIndex, build_index
from ember.evaluate.search_tool import (LIMIT, NO_RESULTS, SearchEnvironment, question_prompt,
                                        tool_specs, use_response_template)
from tests.conftest import ROOT

DATA = ROOT / "examples" / "data" / "search"


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> SearchIndex:
    out = tmp_path_factory.mktemp("search") / "index"
    build_index(DATA / "corpus.jsonl", out)
    return SearchIndex(out)


def test_search_returns_paragraphs_and_stops_at_the_limit(index):
    env = SearchEnvironment(index, topk=2, max_calls=2)
    env.reset(prompt=[], answer="yes")
    first = env.search("Scott Derrickson director")
    assert first.startswith("Doc 1 (Title: ") and "\nDoc 2 (Title: " in first
    assert "Scott Derrickson" in first
    assert env.search("   ") == "Empty query: write what to look for."
    assert env.search("Ed Wood") == LIMIT.format(n=2)  # the third call gets no results
    assert env.queries == ["Scott Derrickson director", ""]
    env.reset()
    assert env.queries == [] and env.search("zzzqqq") == NO_RESULTS


def test_the_tool_schema_comes_from_the_method(index):
    from transformers.utils import get_json_schema

    schema = get_json_schema(SearchEnvironment(index).search)
    fn = schema["function"]
    assert fn["name"] == "search" and fn["parameters"]["required"] == ["query"]
    assert fn["parameters"]["properties"]["query"]["type"] == "string"
    assert "Wikipedia paragraphs" in fn["description"]
    # what the agent and the exported trajectories offer is what TRL derives at RFT time
    assert tool_specs() == [schema]


def test_a_rendered_tool_call_parses_back_to_the_same_call(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    assert getattr(tok, "response_template", None) is None
    assert use_response_template(tok)
    prompt = [{"role": "user", "content": question_prompt("Who directed Jaws?", 2)}]
    call = {"type": "function", "function": {"name": "search",
                                             "arguments": {"query": "Jaws film director"}}}
    turn = {"role": "assistant", "content": "I should look it up.", "tool_calls": [call]}
    before = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    whole = tok.apply_chat_template([*prompt, turn], tokenize=False)
    assert whole.startswith(before)
    said = whole[len(before):]
    assert said == ('I should look it up.\n<tool_call>{"name": "search", "arguments": '
                    '{"query": "Jaws film director"}}</tool_call><|im_end|>\n')
    parsed = tok.parse_response(said, prefix=before)
    assert parsed["tool_calls"] == [call] and parsed["content"].strip() == "I should look it up."
    # A plain answer parses as content only.
    plain = tok.parse_response("Answer: Steven Spielberg<|im_end|>", prefix=before)
    assert plain["content"].strip() == "Answer: Steven Spielberg" and not plain.get("tool_calls")


def test_another_chat_template_is_not_given_ember_s_response_template(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    assert not use_response_template(tok) and getattr(tok, "response_template", None) is None


def test_question_prompt_names_the_tool_and_the_answer_line():
    text = question_prompt("  Who directed Jaws? ", 3)
    assert "`search` tool" in text and "at most 3 searches" in text
    assert text.endswith("Question: Who directed Jaws?") and '"Answer: <answer>"' in text
    json.dumps(text)


def test_sft_chat_records_render_as_rft_rollouts_do(tiny_model, index):
    """One protocol: an sft-chat record of a search (tools as tool_specs(), arguments as
    JSON text, as `ember convert --to sft-chat` writes them) renders to exactly the tokens
    TRL builds at RFT time (tools from the environment's method, arguments as the dict
    parse_response gives back)."""
    from transformers import AutoTokenizer

    from ember.adp.export.sft_chat import tools_of

    tok = AutoTokenizer.from_pretrained(tiny_model)
    env = SearchEnvironment(index)
    user = {"role": "user", "content": question_prompt("Who directed Jaws?")}
    result = env.search("Jaws film director")

    def chat(arguments):
        call = {"type": "function", "function": {"name": "search", "arguments": arguments}}
        return [user, {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "content": result},
                {"role": "assistant", "content": "Answer: Steven Spielberg"}]

    record = {"messages": chat(json.dumps({"query": "Jaws film director"})),
              "tools": json.dumps(tool_specs())}
    sft = tok.apply_chat_template(record["messages"], tools=tools_of(record), tokenize=True)
    rft = tok.apply_chat_template(chat({"query": "Jaws film director"}), tools=[env.search],
                                  tokenize=True)
    assert sft["input_ids"] == rft["input_ids"]
