"""``ember convert`` inside Hugging Face ``datasets``: the same converters as a batched map.

    import datasets
    from ember.adp.datasets_map import (as_json_column, convert_batch, output_features,
                                        split_rejects, to_jsonl)

    raw = as_json_column("raw.jsonl")               # one JSON string per row: see LAYOUT
    out = raw.map(convert_batch, batched=True, with_indices=True, num_proc=8,
                  remove_columns=raw.column_names, features=output_features(),
                  fn_kwargs={"dataset": "agenttuning_os", "to": "adp"})
    converted, rejects = split_rejects(out)         # two datasets; or keep the "reject" column
    to_jsonl(out, "adp.jsonl", "adp.rejects.jsonl") # = ember convert's files, byte for byte

Each output row is one output record: ``json`` (the line ``ember convert`` writes for it,
without the newline), ``id`` and ``index`` (the input record's position); a rejected
input record gives one row with ``json`` = None and ``reject`` = the line ``ember
convert`` writes to its rejects file (source, line, reason, detail, records, raw).

Every record goes through ``ember.adp.records.convert_record``, the function ``ember
convert`` applies per record (``mapping.apply(make_pipeline(source, target), record,
index)``), and rejects are classified as ``ember convert`` classifies them. Two things
``ember convert`` does across a whole file a map cannot do shard by shard; ``to_jsonl``
does them, in order, on the mapped dataset:

- repeated output ids become ``ID#2``, ``ID#3``, ... (``UniqueIds``, in output order);
- mappings with ``group_by`` (android_in_the_wild, go-browse-wa, nnetnav-*) turn several
  consecutive step records into one trajectory: give such a dataset one row per
  trajectory, its ``json`` a JSON array of the step records (``convert_batch`` refuses
  single step records for them).

LAYOUT. Arrow stores a JSONL of heterogeneous records as structs of one schema: a key
missing from a record comes back as ``None`` (a null), lists of objects get every key of
every element, and integer/float or mixed-type fields may be unified or refused. The
converters then see different records than ``ember convert`` reads (a ``None`` where a
key was absent changes what an optional field gives). Keep the records exact with one
string column of JSON, one record per row: ``{"json": line}`` (``as_json_column`` builds
it from a JSONL or a dataset; Parquet: ``pyarrow`` write a ``json`` string column).
``convert_batch`` also reads the struct layout (every column of the row, ``column=None``)
for data that is already a Dataset of records of one shape, at that caveat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from ember.adp.convert import classify_error, make_pipeline, raw_for_rejects, unique_output
from ember.adp.mapping import ConvertError, UniqueIds
from ember.adp.records import convert_record

COLUMNS = ("json", "id", "index", "reject")


def output_features():
    """The ``features=`` to give ``Dataset.map`` (a shard whose first rows are all
    converted has only nulls in ``reject``, which Arrow cannot type by itself)."""
    import datasets

    return datasets.Features({"json": datasets.Value("string"), "id": datasets.Value("string"),
                              "index": datasets.Value("int64"),
                              "reject": datasets.Value("string")})


class LayoutError(ValueError):
    """The dataset's rows are not records this converter can take (not one bad record)."""


def convert_batch(batch: dict[str, list], indices: list[int] | None = None, *, dataset: str,
                  to: str = "adp", column: str | None = "json",
                  origin: str = "datasets") -> dict[str, list]:
    """``Dataset.map(convert_batch, batched=True, with_indices=True, fn_kwargs={"dataset":
    NAME})``: the records of ``batch`` converted as ``ember convert --from NAME --to TO``.

    ``dataset`` is ``--from`` (a built-in dataset, a mapping file, ``pkg.module:function``;
    ``adp`` for ADP input), ``to`` is ``--to``. ``column`` names the column holding each
    record as JSON text (str or bytes) or as a struct; ``None`` reads the row's columns as
    the record (the struct layout: see LAYOUT in the module docstring). ``indices`` (from
    ``with_indices=True``) are the records' positions, which ids built from ``@index``
    use; without them a batch counts from 0. ``origin`` is what reject rows name as their
    ``source``. Returns the columns ``json``, ``id``, ``index``, ``reject`` (COLUMNS); the
    number of rows may differ from the input's, so map with ``remove_columns=
    ds.column_names`` (and ``features=output_features()``)."""
    pipeline = make_pipeline(dataset, to)  # a bad --from / --to fails here, before any row
    id_key = pipeline.id_key
    if column is not None and column not in batch:
        raise ValueError(f"no column {column!r} in the batch (columns: {', '.join(batch)}); "
                         "give column=NAME, or column=None to read each row as the record")
    n = len(batch[column]) if column is not None else len(next(iter(batch.values()), []))
    indices = list(range(n)) if indices is None else list(indices)
    out: dict[str, list] = {name: [] for name in COLUMNS}
    for i in range(n):
        payload = batch[column][i] if column is not None else {k: v[i] for k, v in batch.items()}
        index = indices[i]
        try:
            record = orjson.loads(payload) if isinstance(payload, (str, bytes, bytearray)) \
                else payload
            if pipeline.group_by and not isinstance(record, list):
                raise LayoutError(f"--from {dataset} groups step records by "
                                 f"{pipeline.group_by!r}: give one row per trajectory, a JSON "
                                 "array of its step records (module docstring)")
            if isinstance(record, list) and not all(isinstance(r, dict) for r in record):
                raise ConvertError("not-an-object", "expected a JSON object, got list")
            results = convert_record(record, source=dataset, target=to, index=index)
            lines = [orjson.dumps(r).decode() for r in results]
        except LayoutError:
            raise  # the dataset's layout is wrong, not one record
        except Exception as exc:  # every failure becomes a reject, as in ember convert
            _reject(out, exc, payload, index, origin)
            continue
        for r, line in zip(results, lines):
            out["json"].append(line)
            out["id"].append(str(r.get(id_key)) if isinstance(r, dict) else "")
            out["index"].append(index)
            out["reject"].append(None)
    return out


def _reject(out: dict, exc: Exception, payload: Any, index: int, origin: str) -> None:
    reason, detail = classify_error(exc)
    size = len(payload) if isinstance(payload, list) else 1
    if isinstance(payload, str):
        payload = payload.encode()
    line = orjson.dumps({"source": origin, "line": index, "reason": reason, "detail": detail,
                         "records": size, **raw_for_rejects(payload)}, default=str).decode()
    out["json"].append(None)
    out["id"].append(None)
    out["index"].append(index)
    out["reject"].append(line)


def split_rejects(ds):
    """``(converted, rejects)``: the rows of a mapped dataset with output, and those with
    a reject (the ``reject`` column holds the rejects file's line)."""
    converted = ds.filter(lambda batch: [r is None for r in batch["reject"]], batched=True)
    rejects = ds.filter(lambda batch: [r is not None for r in batch["reject"]], batched=True)
    return converted, rejects


def to_jsonl(ds, out: str | Path, rejects: str | Path | None = None, *,
             id_key: str = "id") -> tuple[int, int]:
    """Write a mapped dataset as ``ember convert`` writes its output: one line per output
    record in dataset order, repeated ids made unique (``ID#2``) the way ``ember convert``
    does, and the reject lines to ``rejects``. Returns (records written, records rejected).
    ``id_key`` is the exporter's id field (``id`` for every built-in target)."""
    seen = UniqueIds()
    written = rejected = 0
    with open(out, "wb") as f, (open(rejects, "wb") if rejects else _Null()) as r:
        for batch in ds.iter(batch_size=1024):
            lines, ids = [], []
            for line, tid, reject in zip(batch["json"], batch["id"], batch["reject"]):
                if reject is not None:
                    r.write(reject.encode() + b"\n")
                    rejected += 1
                    continue
                data = line.encode() + b"\n"
                lines.append(data)
                ids.append((tid, len(data)))
            pieces, _ = unique_output(b"".join(lines), ids, seen, id_key)
            f.writelines(pieces)
            written += len(lines)
    return written, rejected


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        pass


def as_json_column(source, column: str = "json"):
    """A ``datasets.Dataset`` with one string column ``column``, one JSON record per row,
    from a JSONL/JSON file path (read as ``ember convert`` reads it, records exact) or
    from a Dataset of records (each row's columns as one object: Arrow's nulls included)."""
    import datasets

    if isinstance(source, (str, Path)):
        from ember.adp.records import read_records

        def rows():
            for record in read_records(source):
                yield {column: orjson.dumps(record).decode()}

        return datasets.Dataset.from_generator(rows, features=datasets.Features(
            {column: datasets.Value("string")}))
    return source.map(lambda batch: {column: [
        orjson.dumps({k: v[i] for k, v in batch.items()}, default=str).decode()
        for i in range(len(next(iter(batch.values()), [])))]},
        batched=True, remove_columns=source.column_names)
