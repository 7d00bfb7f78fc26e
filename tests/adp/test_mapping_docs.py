"""docs/mappings.md: generated from the shapes' dataclasses, complete, and its examples run."""

import pytest

from ember.adp import mapping_docs
from ember.adp.mapping import SHAPES, shape_options
from ember.adp.validate import check_trajectory
from tests.conftest import ROOT

DOC = ROOT / "docs" / "mappings.md"


def test_docs_are_up_to_date():
    assert DOC.read_text() == mapping_docs.render(), (
        "docs/mappings.md is out of date: run `python -m ember.adp.mapping_docs`")


def test_every_option_of_every_shape_is_documented():
    text = DOC.read_text()
    for shape in SHAPES:
        section = text.split(f"## `{shape}`\n", 1)[1].split("\n## `", 1)[0]
        for option in shape_options(shape):
            row = f"| `{option['name']}` |"
            # an option every shape has is in the shared table unless the shape changes it
            assert row in section or row in text.split("## `", 1)[0], (shape, option["name"])


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_shape_has_a_worked_example_whose_output_is_valid(shape):
    (trajectory, *more) = mapping_docs.example_output(shape)
    for traj in [trajectory, *more]:
        errors = [p for p in check_trajectory(traj, strict=True) if p[2] == "error"]
        assert errors == []


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "mappings.md"
    stale.write_text("old\n")
    assert mapping_docs.main([str(stale), "--check"]) == 1
    assert mapping_docs.main([str(stale)]) == 0
    assert mapping_docs.main([str(stale), "--check"]) == 0
    assert "up to date" in capsys.readouterr().out
