"""benchmarks/react_ceiling.py's hand-written alfworld converter writes ember's bytes (the
docs quote it as the ceiling for ember's exact output, so it must stay exact)."""

import sys

from ember.adp.convert import convert
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from convert_throughput import write_repeated  # noqa: E402
from react_ceiling import DATASET, ceiling  # noqa: E402


def test_the_ceiling_converter_writes_embers_output(tmp_path):
    src = tmp_path / "in.jsonl"
    write_repeated(DATASET, src, 0.3)  # the sample repeated: every id again, renamed
    convert([src], tmp_path / "ember.jsonl", source=DATASET)
    ceiling(str(src), str(tmp_path / "ceiling.jsonl"))
    ours = (tmp_path / "ember.jsonl").read_bytes()
    assert ours.count(b"\n") > 20 and b'#3"' in ours
    assert (tmp_path / "ceiling.jsonl").read_bytes() == ours
