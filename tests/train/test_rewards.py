"""Rewards by name score completions the way `ember eval` scores responses."""

import pytest

from ember.train.rewards import load_reward, load_rewards


def _c(text):
    return [{"role": "assistant", "content": text}]


def test_math_qa_format_and_auto_rewards():
    comps = [_c("7 + 7 = 14, so \\boxed{14}"), _c("I think 15"), _c("Answer: the Eiffel Tower")]
    assert load_reward("math")([], comps[:2], answer=["14", "14"]) == [1.0, 0.0]
    assert load_reward("qa")([], comps[2:], answer=["Eiffel Tower"]) == [1.0]
    assert load_reward("format")([], comps, scorer=["math", "math", "qa"]) == [1.0, 0.0, 1.0]
    assert load_reward("auto")([], comps, answer=["14", "14", "Louvre"],
                               scorer=["math", "math", "qa"]) == [1.0, 0.0, 0.0]


def test_dotted_paths_and_unknown_names():
    (fn,) = load_rewards("tests.train.toy_rewards:even_length")
    assert fn([], [_c("ab"), _c("abc")]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="unknown reward 'maths'.*auto"):
        load_reward("maths")
    with pytest.raises(ValueError, match="has no 'nope'"):
        load_reward("tests.train.toy_rewards:nope")


def test_multi_turn_completions_are_scored_on_the_policy_s_last_message_only():
    """With --env search a completion holds the search results as tool messages: they may
    contain the gold answer, and must not earn reward the policy's own answer did not."""
    qa, fmt = load_rewards("qa,format")
    call = {"type": "function", "function": {"name": "search", "arguments": {"query": "Jaws"}}}
    leak = [{"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "name": "search", "content": "Answer: Steven Spielberg"},
            {"role": "assistant", "content": "Answer: George Lucas"}]
    right = [*leak[:2], {"role": "assistant", "content": "It says so.\nAnswer: Steven Spielberg"}]
    only_tool = leak[:2]  # cut off before the policy answered
    got = qa(None, [leak, right, only_tool], answer=["Steven Spielberg"] * 3)
    assert got == [0.0, 1.0, 0.0]
    assert fmt(None, [leak, only_tool], scorer=["qa", "qa"]) == [1.0, 0.0]
