"""ember's converters inside Hugging Face datasets (ember.adp.datasets_map): a saved
dataset mapped with num_proc=2 gives, byte for byte, what `ember convert` writes for the
same records, rejects included; Arrow's struct layout is shown to change records, the
one-JSON-column layout not."""

import json

import orjson
import pytest

from tests.conftest import FIXTURES

datasets = pytest.importorskip("datasets")

from ember.adp.datasets_map import (COLUMNS, LayoutError, as_json_column,  # noqa: E402
                                    convert_batch, output_features, split_rejects, to_jsonl)


@pytest.fixture(autouse=True)
def quiet_datasets(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    datasets.disable_progress_bars()


def raw_lines() -> list[str]:
    """agenttuning_os's sample, one record repeated (a repeated id), one record without
    its conversation and one line that is not JSON (two rejects)."""
    records = json.loads((FIXTURES / "adp" / "agenttuning_os" / "sample_raw.json").read_text())
    lines = [orjson.dumps(r).decode() for r in records]
    return lines[:3] + ['{"id": "no-conversation"}', lines[0], "{not json"] + lines[3:]


def test_saved_dataset_mapped_on_two_processes_equals_ember_convert(ember, tmp_path):
    lines = raw_lines()
    raw = tmp_path / "raw.jsonl"
    raw.write_text("\n".join(lines) + "\n")
    ember("convert", raw, "--from", "agenttuning_os", "-o", tmp_path / "cli.jsonl",
          "--max-reject-rate", "1", "--json")
    cli_out = (tmp_path / "cli.jsonl").read_bytes()
    cli_rejects = [json.loads(x) for x in (tmp_path / "cli.rejects.jsonl").read_text().splitlines()]

    datasets.Dataset.from_dict({"json": lines}).save_to_disk(str(tmp_path / "saved"))
    ds = datasets.load_from_disk(str(tmp_path / "saved"))
    out = ds.map(convert_batch, batched=True, batch_size=3, with_indices=True, num_proc=2,
                 remove_columns=ds.column_names, features=output_features(),
                 fn_kwargs={"dataset": "agenttuning_os"})
    assert out.column_names == list(COLUMNS)

    converted, rejects = split_rejects(out)
    assert len(rejects) == len(cli_rejects) == 2
    assert [json.loads(r)["reason"] for r in rejects["reject"]] == \
        [r["reason"] for r in cli_rejects]
    assert [json.loads(r)["raw"] for r in rejects["reject"]] == [r["raw"] for r in cli_rejects]
    assert rejects["index"] == [3, 5]
    # row by row, each output line is ember convert's (before the repeated id's rename)
    cli_lines = cli_out.decode().splitlines()
    assert len(converted) == len(cli_lines) == 6
    assert [a == b for a, b in zip(converted["json"], cli_lines)].count(False) == 1
    assert json.loads(cli_lines[3])["id"] == json.loads(converted["json"][3])["id"] + "#2"
    # the whole file, repeated id renamed as ember convert renames it: the same bytes
    assert to_jsonl(out, tmp_path / "map.jsonl", tmp_path / "map.rejects.jsonl") == (6, 2)
    assert (tmp_path / "map.jsonl").read_bytes() == cli_out
    # to another format in the same map
    sft = ds.map(convert_batch, batched=True, with_indices=True, remove_columns=ds.column_names,
                 features=output_features(), fn_kwargs={"dataset": "agenttuning_os", "to": "sft-chat"})
    assert "messages" in json.loads(split_rejects(sft)[0]["json"][0])


def test_struct_layout_changes_records_json_column_does_not(ember, tmp_path):
    """turkingbench's records are heterogeneous: loaded as Arrow structs, missing keys come
    back as nulls and the converter's output changes; a JSON string column keeps them."""
    raw = FIXTURES / "adp" / "turkingbench" / "sample_raw.json"
    ember("convert", raw, "--from", "turkingbench", "-o", tmp_path / "cli.jsonl")
    cli_out = (tmp_path / "cli.jsonl").read_bytes()
    kwargs = {"batched": True, "with_indices": True, "features": output_features()}

    exact = as_json_column(raw)
    out = exact.map(convert_batch, remove_columns=exact.column_names, **kwargs,
                    fn_kwargs={"dataset": "turkingbench"})
    to_jsonl(out, tmp_path / "json-column.jsonl")
    assert (tmp_path / "json-column.jsonl").read_bytes() == cli_out

    structs = datasets.Dataset.from_list(json.loads(raw.read_text()))
    assert structs.to_list() != json.loads(raw.read_text())   # Arrow filled in nulls
    out = structs.map(convert_batch, remove_columns=structs.column_names, **kwargs,
                      fn_kwargs={"dataset": "turkingbench", "column": None})
    to_jsonl(out, tmp_path / "structs.jsonl")
    assert (tmp_path / "structs.jsonl").read_bytes() != cli_out


def test_bad_arguments_fail_before_any_record():
    with pytest.raises(ValueError, match="nope"):
        convert_batch({"json": ["{}"]}, dataset="nope")
    with pytest.raises(ValueError, match="no column"):
        convert_batch({"text": ["{}"]}, dataset="agenttuning_os")
    with pytest.raises(LayoutError, match="group"):  # step records need grouping first
        convert_batch({"json": ['{"id": "1"}']}, dataset="nnetnav-wa")
