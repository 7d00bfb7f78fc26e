"""The one dotted-path loader: built-in names listed, the user's own import error shown."""

import sys

import pytest

from ember.adp.dotted import load_function, load_object


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    (tmp_path / "good_plugin.py").write_text("def score(x):\n    return 1\nVALUE = 3\n")
    (tmp_path / "broken_plugin.py").write_text("import no_such_dependency_xyz\n\ndef f():\n    pass\n")
    (tmp_path / "typo_plugin.py").write_text("def f(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("good_plugin", "broken_plugin", "typo_plugin"):
        sys.modules.pop(name, None)


def test_both_spellings_load(user_modules):
    assert load_function("good_plugin:score", what="scorer")(0) == 1
    assert load_function("good_plugin.score", what="scorer")(0) == 1
    assert load_object("good_plugin:VALUE", what="thing") == 3


def test_a_missing_module_lists_the_builtins(user_modules):
    with pytest.raises(ValueError, match=r"unknown scorer 'nowhere.mod:f': no such module "
                                         r"\(built-in: math, qa;"):
        load_function("nowhere.mod:f", what="scorer", builtins=["math", "qa"])
    with pytest.raises(ValueError, match="unknown scorer 'maths'"):
        load_function("maths", what="scorer", builtins=["math"])


def test_the_users_real_import_error_is_shown(user_modules):
    with pytest.raises(ValueError, match="importing broken_plugin failed: ModuleNotFoundError: "
                                         "No module named 'no_such_dependency_xyz'"):
        load_function("broken_plugin:f", what="reward")
    with pytest.raises(ValueError, match="importing typo_plugin failed: SyntaxError"):
        load_function("typo_plugin:f", what="reward")


def test_missing_attribute_and_not_callable(user_modules):
    with pytest.raises(ValueError, match="module good_plugin has no 'nope'"):
        load_function("good_plugin:nope", what="reward")
    with pytest.raises(ValueError, match="is a int, not a function"):
        load_function("good_plugin:VALUE", what="reward")
