"""One record at a time: read records, convert a raw record to ADP, export a trajectory.

The functions ``ember convert`` runs per record, for use in your own code (a notebook, a
``datasets.map``, a data loader)::

    from ember.adp import read_records, convert_record, export_trajectory

    for raw in read_records("agenttuning_os.jsonl"):          # JSONL, JSON, Parquet, ...
        for traj in convert_record(raw, source="agenttuning_os"):  # raw -> ADP
            chat = export_trajectory(traj, "sft-chat")        # ADP -> {"messages", "tools"}

A record that cannot be converted raises ``ConvertError`` with its reason (``.reason``),
the same reason ``ember convert`` writes to its rejects file.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Iterator

import orjson

from ember.adp.convert import make_pipeline
from ember.adp.export import EXPORTERS
from ember.adp.io import iter_units
from ember.adp.mapping import ConvertError, apply


def read_records(path: str | Path) -> Iterator[dict]:
    """Every record of one input, decoded: a JSONL/JSON file (``.gz``/``.zst`` too), a
    Parquet file, a saved Hugging Face dataset or ``hf://org/name[:split]``. Raises
    ``ember.adp.io.InputError`` for an input that cannot be read and ``orjson.JSONDecodeError``
    for a line that is not JSON."""
    for _line, payload in iter_units(path):
        yield orjson.loads(payload) if isinstance(payload, (bytes, bytearray)) else payload


def convert_record(record: dict | list, source: str = "adp", target: str = "adp", *,
                   index: int = 0) -> list[dict]:
    """What ``ember convert --from SOURCE --to TARGET`` writes for one raw record: a list
    of output records (most shapes give one; some give one per step). ``source`` is a
    built-in dataset name, a mapping file or ``pkg.module:function``; ``index`` is the
    record's position in its input (ids built from ``@index`` use it). ``ember convert``
    additionally makes repeated ids unique across a file (``ID#2``)."""
    if not isinstance(record, (dict, list)):
        raise ConvertError("not-an-object", f"expected a JSON object, got {type(record).__name__}")
    return apply(make_pipeline(source, target), record, index)


def export_trajectory(trajectory: dict, target: str) -> dict | list[dict]:
    """An ADP trajectory in another format (``sft-chat``, ``openhands``, ``sweagent``,
    ``atif``): what ``ember convert --to TARGET`` writes for it."""
    if target not in EXPORTERS or EXPORTERS[target] is None:
        known = ", ".join(k for k, v in EXPORTERS.items() if v)
        raise ValueError(f"unknown export target {target!r}; known: {known}")
    return importlib.import_module(EXPORTERS[target]).export(trajectory)
