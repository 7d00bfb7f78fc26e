"""Golden tests: for every dataset with a raw sample, our ADP matches ADP's sample_std; and
every trajectory we write loads in ADP's own data model (the strict schema)."""

import json

import jsonschema
import pytest
import yaml

from ember.adp.mapping import UniqueIds, builtin_names, convert_records, load_converter
from ember.adp.validate import upstream_problems
from ember.schemas import load_schema
from tests.adp.golden import compare, event_key
from tests.conftest import FIXTURES

DATASETS = sorted(p.parent.name for p in (FIXTURES / "adp").glob("*/sample_raw.json"))
# Built-ins with no raw sample: their published output is what we can load and check.
STD_ONLY = sorted(set(builtin_names()) - set(DATASETS))


def converted(dataset: str) -> list[dict]:
    """Our ADP for a dataset's sample: its raw sample converted, or (no raw sample) its
    published ADP read with --from adp."""
    folder = FIXTURES / "adp" / dataset
    if (folder / "sample_raw.json").exists():
        return convert_records(load_converter(dataset),
                               json.loads((folder / "sample_raw.json").read_text()))
    return convert_records(load_converter("adp"),
                           json.loads((folder / "sample_std.json").read_text()))


@pytest.mark.parametrize("dataset", DATASETS)
def test_matches_adp_sample(dataset):
    folder = FIXTURES / "adp" / dataset
    mine = converted(dataset)
    ours = {traj["id"]: traj for traj in mine}
    assert len(ours) == len(mine)  # ids are unique
    opts_file = folder / "golden.yaml"
    opts = yaml.safe_load(opts_file.read_text()) if opts_file.exists() else {}
    validator = jsonschema.Draft202012Validator(load_schema("adp"))
    theirs = json.loads((folder / "sample_std.json").read_text())
    keys = UniqueIds()  # ADP's ids under ember's rule, so repeats have keys of their own
    firsts = {}
    diffs = []
    for std in theirs:
        key = keys.take(str(std["id"]))
        firsts.setdefault(str(std["id"]), std)
        if key not in ours:
            if opts.get("adp_repeats") and key != str(std["id"]):
                first = [event_key(e) for e in firsts[str(std["id"])]["content"]]
                copy = [event_key(e) for e in std["content"]]
                if copy != first[:len(copy)]:
                    diffs.append(f"ADP's repeat {key} is not a prefix of its first copy")
                continue
            diffs.append(f"missing id {key}")
            continue
        validator.validate(ours[key])
        diffs += compare(ours[key], std, fabricated_finish=opts.get("fabricated_finish", False),
                         ignore_kwargs=opts.get("ignore_kwargs", ()),
                         adp_restarted=opts.get("adp_restarted", ()), opts=opts, their_id=key)
    assert not diffs, "\n".join(diffs)


def test_every_builtin_dataset_is_checked():
    assert len(builtin_names()) == 22
    assert STD_ONLY == ["go-browse-wa", "openhands"]  # no raw sample published
    assert all((FIXTURES / "adp" / name / "sample_std.json").exists() for name in builtin_names())


@pytest.mark.parametrize("dataset", sorted(builtin_names()))
def test_output_loads_in_adps_own_data_model(dataset):
    trajs = converted(dataset)
    assert trajs
    failures = {t["id"]: upstream_problems(t) for t in trajs}
    assert {k: v for k, v in failures.items() if v} == {}
