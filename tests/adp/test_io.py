"""Streaming readers: every input form yields the same records, with line numbers."""

import gzip
import json

import orjson
import pytest

from ember.adp import io as adp_io
from ember.adp.io import InputError, atomic_writer, iter_units

RECORDS = [
    {"id": "a", "text": 'quote " and brackets ] } [ {', "n": 1},
    {"id": "b", "text": "backslash \\\\ then quote \\\" and unicode é ✓", "list": [1, [2, {"x": "]"}]]},
    {"id": "c", "empty": {}, "nested": [[], [[]]]},
    # a string that ends in a backslash, escaped quotes after backslashes, a quoted key
    {"id": "d", "edge": "\\", "more": "\\\\\"]", 'k"ey': "\\\"", "x" * 40: "}"},
]


def parsed(units):
    return [orjson.loads(p) if isinstance(p, bytes) else p for _, p in units]


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 22])
def test_json_array_split_at_any_chunk_size(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(adp_io, "CHUNK", chunk)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(RECORDS, indent=2, ensure_ascii=False))
    units = list(iter_units(path))
    assert parsed(units) == RECORDS
    lines = path.read_text().splitlines()
    for line, _ in units:  # each reported line is where an element opens
        assert lines[line - 1].strip() == "{"


def test_jsonl_gzip_zstd_parquet_and_saved_dataset_agree(tmp_path):
    import zstandard

    body = "".join(json.dumps(r) + "\n" for r in RECORDS).encode()
    (tmp_path / "r.jsonl").write_bytes(body)
    (tmp_path / "r.jsonl.gz").write_bytes(gzip.compress(body))
    (tmp_path / "r.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(body))
    (tmp_path / "r.json.gz").write_bytes(gzip.compress(json.dumps(RECORDS).encode()))
    for name in ("r.jsonl", "r.jsonl.gz", "r.jsonl.zst", "r.json.gz"):
        assert parsed(iter_units(tmp_path / name)) == RECORDS, name

    import datasets

    flat = [{"id": r["id"], "text": json.dumps(r)} for r in RECORDS]
    datasets.Dataset.from_list(flat).to_parquet(str(tmp_path / "r.parquet"))
    assert parsed(iter_units(tmp_path / "r.parquet")) == flat
    datasets.Dataset.from_list(flat).save_to_disk(str(tmp_path / "saved"))
    assert parsed(iter_units(tmp_path / "saved")) == flat


def test_a_jsonl_name_reads_lines_even_when_they_are_arrays(tmp_path):
    """One trajectory a line as an array of steps: JSONL by its name, every line read."""
    steps = [[RECORDS[0], RECORDS[1]], [RECORDS[2]], [RECORDS[3]]]
    body = "".join(json.dumps(s) + "\n" for s in steps).encode()
    (tmp_path / "s.jsonl").write_bytes(body)
    (tmp_path / "s.ndjson.gz").write_bytes(gzip.compress(body))
    for name in ("s.jsonl", "s.ndjson.gz"):
        assert parsed(iter_units(tmp_path / name)) == steps, name


@pytest.mark.parametrize("chunk", [1, 5, 1 << 22])
def test_content_after_the_array_is_an_error_not_lost(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(adp_io, "CHUNK", chunk)
    path = tmp_path / "two.json"
    path.write_text(json.dumps(RECORDS[:2]) + "\n" + json.dumps(RECORDS[2:]) + "\n")
    with pytest.raises(InputError, match="more content after the JSON array that ends on line 1"):
        list(iter_units(path))
    path.write_text(json.dumps(RECORDS, indent=1) + "\n \n\t")  # whitespace after: fine
    assert parsed(iter_units(path)) == RECORDS


def test_single_pretty_printed_object(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(RECORDS[1], indent=2))
    assert parsed(iter_units(path)) == [RECORDS[1]]


def test_truncated_array_yields_the_broken_tail(tmp_path):
    path = tmp_path / "cut.json"
    text = json.dumps(RECORDS)
    path.write_text(text[: len(text) - 20])
    units = list(iter_units(path))
    assert len(units) == len(RECORDS) and parsed(units[:-1]) == RECORDS[:-1]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(units[-1][1])


def test_directory_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        list(iter_units(tmp_path))
    with pytest.raises(InputError, match="no such file"):
        list(iter_units(tmp_path / "nope.jsonl"))


def test_atomic_writer_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as f:
            f.write(b"partial")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_writer(target) as f:
        f.write(b"done\n")
    assert target.read_bytes() == b"done\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_split_suffix_only_for_saved_datasets_and_checked_before_reading(tmp_path):
    import datasets

    from ember.adp.io import check_input, split_spec

    colon = tmp_path / "a:b.jsonl"  # an existing name with a colon is a plain file
    colon.write_text('{"id": "x"}\n')
    assert split_spec(str(colon)) == (str(colon), None)
    assert parsed(iter_units(colon)) == [{"id": "x"}]
    with pytest.raises(InputError, match="no such file"):  # a split on a file: not a split
        check_input(f"{colon}:train")
    one = tmp_path / "one"
    datasets.Dataset.from_list([{"id": "y"}]).save_to_disk(str(one))
    assert split_spec(f"{one}:train") == (str(one), "train")
    with pytest.raises(InputError, match="holds one dataset.*drop ':train'"):
        iter_units(f"{one}:train")  # raised on the call, before any record is read
    assert parsed(iter_units(f"{one}:all")) == [{"id": "y"}]
    only = tmp_path / "only"
    datasets.DatasetDict({"test": datasets.Dataset.from_list([{"id": "z"}])}).save_to_disk(
        str(only))
    assert parsed(iter_units(only)) == [{"id": "z"}]  # one split: nothing to choose
