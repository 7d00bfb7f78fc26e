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
