"""The convert pipeline: raw records -> ADP -> (optionally) an export format.

    ember convert raw.jsonl --from agenttuning_os -o adp.jsonl
    ember convert adp.jsonl --to sft-chat -o sft.jsonl
    ember convert raw.json --from swe-smith --to sft-chat -o sft.jsonl --workers 4

Inputs are streamed (``ember.adp.io``); each record is parsed, converted and exported in
one function, ``_process_batch``, which runs in the main process or in ``--workers``
processes over batches whose results are written back in input order, so the output is
byte-identical for any worker count and memory stays flat (a bounded number of batches
is in flight). A record that fails goes to the rejects file with its source, line and
reason and never stops the run. Outputs are written atomically.

Output ids are unique (``ember.adp.mapping.UniqueIds``: ``ID``, ``ID#2``, ...): the
workers report each record's id and the driver renames repeats in output order, so the
renaming, too, is the same for any worker count; the set of ids written is the one thing
that grows with the output. Raw fields that hold content but that no mapping option
reads are counted per field (``unmapped_fields`` in the summary).
"""

from __future__ import annotations

import base64
import collections
import importlib
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson

from ember.adp.config import opt
from ember.adp.export import EXPORTERS
from ember.adp.io import InputError, atomic_writer, iter_units, output_lock, publish
from ember.adp.mapping import (MAPPINGS_DIR, SHAPES, ConvertError, UniqueIds, apply, builtin_names,
                               group_key, group_records, load_converter, load_mapping,
                               shape_options)
from ember.adp.rejects import default_rejects_path
from ember.adp.summary import Summary

BATCH_BYTES = 1 << 21  # records are grouped into ~2 MiB batches for workers
BATCH_RECORDS = 2048


@dataclass
class Tally:
    """What a run did: counts per input and rejects per reason."""

    read: int = 0        # raw records read
    converted: int = 0   # raw records that made it into the output
    rejected: int = 0    # raw records in the rejects file
    written: int = 0     # output records (fewer than `converted` when steps are grouped)
    bytes_in: int = 0
    seconds: float = 0.0
    reasons: collections.Counter = field(default_factory=collections.Counter)
    unmapped: collections.Counter = field(default_factory=collections.Counter)  # field -> records
    renamed: int = 0     # output records whose repeated id got a #k suffix
    per_input: dict = field(default_factory=dict)  # path -> {"read","converted","rejected"}
    input_errors: list = field(default_factory=list)  # (path, message)
    resumed: bool = False  # continued from a checkpoint of a killed run

    @property
    def reject_rate(self) -> float:
        total = self.read + len(self.input_errors)
        return (self.rejected + len(self.input_errors)) / total if total else 0.0

    def to_dict(self) -> dict:
        return {"read": self.read, "converted": self.converted, "rejected": self.rejected,
                "written": self.written,
                "reject_rate": round(self.reject_rate, 6), "reasons": dict(self.reasons),
                "unmapped_fields": dict(sorted(self.unmapped.items())),
                "renamed_ids": self.renamed, "inputs": self.per_input,
                "input_errors": [{"source": s, "error": e} for s, e in self.input_errors],
                "bytes_in": self.bytes_in, "seconds": round(self.seconds, 3),
                "resumed": self.resumed}


# --- the per-record work (runs in workers) ------------------------------------------

_PIPELINES: dict[tuple[str, str], Callable[[dict], list[dict]]] = {}


def make_pipeline(source: str, target: str) -> Callable[[dict], list[dict]]:
    """raw record -> list of output records, for ``--from source --to target``."""
    key = (source, target)
    if key not in _PIPELINES:
        convert = load_converter(source)
        if target not in EXPORTERS:
            raise ValueError(f"unknown --to {target!r}; known: {', '.join(EXPORTERS)}")
        module = EXPORTERS[target]
        export = importlib.import_module(module).export if module else None

        def pipeline(record: dict) -> list[dict]:
            trajs = convert(record)  # called through mapping.apply, which sets the index
            trajs = trajs if isinstance(trajs, list) else [trajs]  # one per step, some shapes
            if export is None:
                return trajs
            out = []
            for traj in trajs:
                exported = export(traj)
                out += exported if isinstance(exported, list) else [exported]
            return out

        pipeline.group_by = getattr(convert, "group_by", None)
        pipeline.unmapped = getattr(convert, "unmapped", None)
        pipeline.id_key = getattr(importlib.import_module(module), "ID_KEY", "id") \
            if module else "id"
        _PIPELINES[key] = pipeline
    return _PIPELINES[key]


def _classify(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, ConvertError):
        return exc.reason, exc.detail
    if isinstance(exc, orjson.JSONDecodeError):
        msg = str(exc)
        return ("invalid-utf8" if "utf-8" in msg.lower() else "invalid-json"), msg
    if isinstance(exc, KeyError):
        return "missing-field", f"field {exc} is missing"
    if isinstance(exc, (TypeError, AttributeError)):
        return "wrong-type", f"{type(exc).__name__}: {exc}"
    return "convert-error", f"{type(exc).__name__}: {exc}"


def _raw_for_rejects(payload: bytes | dict | list) -> dict:
    """The rejected input itself, so nothing is lost (base64 where it is not UTF-8)."""
    if isinstance(payload, list):  # one trajectory's step records
        return {"raw_steps": [_raw_for_rejects(p) for p in payload]}
    if isinstance(payload, dict):
        return {"raw": payload}
    payload = payload.rstrip(b"\r\n")
    try:
        return {"raw": payload.decode("utf-8")}
    except UnicodeDecodeError:
        return {"raw_base64": base64.b64encode(payload).decode()}


def _decode(payload):
    if isinstance(payload, (bytes, bytearray)):
        return orjson.loads(payload)
    if isinstance(payload, list):  # the step records of one trajectory
        return [_decode(p) for p in payload]
    return payload


def _process_batch(args) -> tuple:
    """Convert one batch of units ``(line, index, payload)``; payload is raw bytes, a
    decoded record, or a list of step records forming one trajectory. Returns the output
    bytes, reject lines, counts, the output records' ``(id, size in bytes)`` and the
    unmapped raw fields seen."""
    source, target, path, units, nbytes = args
    pipeline = make_pipeline(source, target)
    unmapped_of, id_key = pipeline.unmapped, pipeline.id_key
    out = bytearray()
    rejects: list[bytes] = []
    reasons: collections.Counter = collections.Counter()
    unmapped: collections.Counter = collections.Counter()
    ids: list[tuple[str, int]] = []
    converted = written = 0
    for line, index, payload in units:
        size = len(payload) if isinstance(payload, list) else 1
        try:
            record = _decode(payload)
            if not isinstance(record, (dict, list)) or (
                    isinstance(record, list) and not all(isinstance(r, dict) for r in record)):
                raise ConvertError("not-an-object",
                                   f"expected a JSON object, got {type(record).__name__}")
            results = apply(pipeline, record, index)
            lines = [orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in results]
            # (joining a single line returns it as it is, without a copy)
            chunk = b"".join(lines)
        except Exception as exc:  # every failure becomes a reject, never a crash
            reason, detail = _classify(exc)
            reasons[reason] += size
            rejects.append(orjson.dumps({"source": path, "line": line, "reason": reason,
                                         "detail": detail, "records": size,
                                         **_raw_for_rejects(payload)},
                                        default=str) + b"\n")
            continue
        out += chunk
        converted += size
        written += len(results)
        ids += [(str(r.get(id_key)) if isinstance(r, dict) else "", len(b))
                for r, b in zip(results, lines)]
        if unmapped_of is not None:
            unmapped.update(unmapped_of(record))
    return (bytes(out), rejects, converted, written, reasons, len(units), nbytes, ids,
            unmapped)


# --- the driver -----------------------------------------------------------------------


def _units(path: str, group_by: str | None) -> Iterator[tuple[int, int, Any, int]]:
    """(line, index, payload, bytes) for each record of ``path``, or for each group of step
    records when the mapping has ``group_by`` (then records are parsed here, in order)."""
    if not group_by:
        for index, (line, payload) in enumerate(iter_units(path)):
            yield line, index, payload, len(payload) if isinstance(payload, bytes) else 0
        return

    def keyed():
        # Parse here only to read the group key; workers get the bytes and parse again,
        # which is cheaper than sending them decoded records.
        for line, payload in iter_units(path):
            try:
                record = orjson.loads(payload) if isinstance(payload, bytes) else payload
            except orjson.JSONDecodeError:
                record = None  # rejected in the batch with its reason
            size = len(payload) if isinstance(payload, bytes) else 0
            yield line, size, payload, by_record(record)

    by_record = group_key(group_by)
    for index, group in enumerate(group_records(keyed(), lambda item: item[3])):
        line = group[0][0]
        yield line, index, [p for _, _, p, _ in group], sum(n for _, n, _, _ in group)


def _batches(path: str, source: str, target: str, skip: int = 0) -> Iterator[tuple]:
    """Batches of ~BATCH_BYTES for ``_process_batch``, after ``skip`` units (a resume)."""
    group_by = make_pipeline(source, target).group_by
    units: list = []
    size = nbytes_in = 0
    for line, index, payload, nbytes in _units(path, group_by):
        if index < skip:
            continue
        units.append((line, index, payload))
        size += nbytes or 1024
        nbytes_in += nbytes
        if size >= BATCH_BYTES or len(units) >= BATCH_RECORDS:
            yield (source, target, path, units, nbytes_in)
            units, size, nbytes_in = [], 0, 0
    if units:
        yield (source, target, path, units, nbytes_in)


def convert(inputs: Iterable[str | Path], out: str | Path, *, source: str = "adp",
            target: str = "adp", rejects: str | Path | None = None, workers: int = 1,
            resume: bool = False, progress: Callable[[int], None] | None = None) -> Tally:
    """Convert ``inputs`` into ``out``; rejected records go to ``rejects``.

    ``source`` is ``--from`` (dataset name, mapping file, dotted path; ``adp`` for ADP
    input) and ``target`` is ``--to``. Raises ValueError for a bad ``--from``/``--to``
    before anything is written; unreadable inputs are recorded in the summary and skipped.
    Output grows in ``.OUT.partial`` files beside the targets, with a checkpoint after
    every batch; ``resume=True`` continues a killed run from its last checkpoint.
    """
    make_pipeline(source, target)  # fail fast on a bad --from / --to
    inputs = [str(p) for p in inputs]
    if rejects is None:
        rejects = default_rejects_path(out)
    job = {"inputs": inputs, "source": source, "target": target, "rejects": str(rejects)}
    ckpt = _Stdout(rejects) if str(out) == "-" else Checkpoint(out, rejects, job, resume)
    summary = ckpt.summary
    start = time.perf_counter()
    id_key = make_pipeline(source, target).id_key
    ids = ckpt.written_ids(id_key)
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        for i, path in enumerate(inputs):
            if i < ckpt.input_index:
                continue  # finished before the resume
            skip = ckpt.units if i == ckpt.input_index else 0
            counts = summary.per_input.setdefault(path, {"read": 0, "converted": 0,
                                                         "rejected": 0})
            done = skip
            try:
                for result in _run(pool, workers, _batches(path, source, target, skip)):
                    n_read = _record(summary, counts, result)
                    data, renamed = unique_output(result[0], result[7], ids, id_key)
                    summary.renamed += renamed
                    ckpt.write(data, result[1])
                    done += result[5]
                    ckpt.save(i, done)
                    if progress:
                        progress(n_read)
            except (InputError, OSError) as exc:
                summary.input_errors.append((path, str(exc)))
                ckpt.write(b"", [orjson.dumps({"source": path, "line": None,
                                               "reason": "unreadable-input",
                                               "error": str(exc)}) + b"\n"])
            ckpt.save(i + 1, 0)
        ckpt.finish()
    finally:
        if pool is not None:
            pool.terminate()
        ckpt.close()
    summary.seconds = time.perf_counter() - start
    return summary


def unique_output(data: bytes, ids: list[tuple[str, int]], seen: UniqueIds,
                  id_key: str) -> tuple[bytes, int]:
    """A batch's output lines with repeated ids renamed (``seen`` holds the ids written so
    far); returns the bytes and how many were renamed. Lines are only re-encoded when
    their id changes."""
    renamed = 0
    pieces: list[bytes] | None = None
    pos = 0
    for tid, size in ids:
        new = seen.take(tid)
        if new != tid:
            if pieces is None:
                pieces = [data[:pos]]
            record = orjson.loads(data[pos:pos + size])
            record[id_key] = new
            pieces.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            renamed += 1
        elif pieces is not None:
            pieces.append(data[pos:pos + size])
        pos += size
    return (data if pieces is None else b"".join(pieces)), renamed


def _record(summary: Tally, counts: dict, result: tuple) -> int:
    """Add one batch's result to the summary and its input's counts; return records read."""
    _, _, ok, written, reasons, _, nbytes, _, unmapped = result
    n_rejected = sum(reasons.values())
    counts["read"] += ok + n_rejected
    counts["converted"] += ok
    counts["rejected"] += n_rejected
    summary.read += ok + n_rejected
    summary.converted += ok
    summary.written += written
    summary.rejected += n_rejected
    summary.bytes_in += nbytes
    summary.reasons.update(reasons)
    summary.unmapped.update(unmapped)
    return ok + n_rejected


class _Stdout:
    """``-o -``: output streams to standard output; rejects still go to a file. No resume."""

    def __init__(self, rejects):
        import sys

        self.summary, self.input_index, self.units = Tally(), 0, 0
        self.out = sys.stdout.buffer
        self.rejects = open(rejects, "wb")

    def write(self, data: bytes, rejects: list[bytes]) -> None:
        self.out.write(data)
        self.rejects.writelines(rejects)

    def save(self, input_index: int, units: int) -> None:
        pass

    def written_ids(self, id_key: str) -> UniqueIds:
        return UniqueIds()

    def finish(self) -> None:
        self.out.flush()

    def close(self) -> None:
        self.rejects.close()


class Checkpoint:
    """The output and rejects of one run, growing in ``.NAME.partial`` files beside their
    targets, with a small JSON state saved after every batch (where each input stands,
    file sizes, the summary so far). ``finish`` renames both into place; a killed run
    leaves them for ``--resume``, which truncates them to the last saved state."""

    def __init__(self, out, rejects, job: dict, resume: bool):
        self.targets = [Path(out), Path(rejects)]
        for t in self.targets:
            t.parent.mkdir(parents=True, exist_ok=True)
        self.partials = [t.with_name(f".{t.name}.partial") for t in self.targets]
        self.state_path = self.targets[0].with_name(f".{self.targets[0].name}.partial.json")
        self.job = job
        self.summary = Tally()
        self.input_index = self.units = 0
        state = self._load() if resume else None
        if state:
            self.input_index, self.units = state["input"], state["units"]
            sizes = state["sizes"]
            c = state["summary"]
            self.summary = Tally(read=c["read"], converted=c["converted"],
                                   rejected=c["rejected"], written=c["written"],
                                   bytes_in=c["bytes_in"],
                                   reasons=collections.Counter(c["reasons"]),
                                   unmapped=collections.Counter(c.get("unmapped_fields", {})),
                                   renamed=c.get("renamed_ids", 0),
                                   per_input=c["inputs"],
                                   input_errors=[(e["source"], e["error"])
                                                 for e in c["input_errors"]], resumed=True)
        else:
            sizes = [0, 0]
        self.files = []
        for partial, size in zip(self.partials, sizes):
            f = open(partial, "r+b" if state else "wb")
            f.truncate(size)
            f.seek(size)
            self.files.append(f)

    def _load(self) -> dict | None:
        try:
            state = orjson.loads(self.state_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if state.get("job") != self.job or not all(p.exists() for p in self.partials):
            return None
        return state

    def write(self, data: bytes, rejects: list[bytes]) -> None:
        self.files[0].write(data)
        self.files[1].writelines(rejects)

    def written_ids(self, id_key: str) -> UniqueIds:
        """The ids already in the output (after a resume, read back from the partial file)."""
        ids = UniqueIds()
        out = self.files[0]
        if out.tell():
            out.flush()
            with open(self.partials[0], "rb") as f:
                for line in f:
                    ids.seen.add(str(orjson.loads(line).get(id_key)))
        return ids

    def save(self, input_index: int, units: int) -> None:
        for f in self.files:
            f.flush()
        state = {"job": self.job, "input": input_index, "units": units,
                 "sizes": [f.tell() for f in self.files], "summary": self.summary.to_dict()}
        with atomic_writer(self.state_path) as f:
            f.write(orjson.dumps(state))

    def finish(self) -> None:
        for f, partial, target in zip(self.files, self.partials, self.targets):
            f.close()
            publish(partial, target)
        self.state_path.unlink(missing_ok=True)

    def close(self) -> None:
        for f in self.files:
            f.close()


def _run(pool, workers: int, batches: Iterator[tuple]):
    """Process batches in order; with a pool, keep at most 2×workers batches in flight."""
    if pool is None:
        for batch in batches:
            yield _process_batch(batch)
        return
    pending: collections.deque = collections.deque()
    for batch in batches:
        pending.append(pool.apply_async(_process_batch, (batch,)))
        if len(pending) >= 2 * workers:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


# --- the command ------------------------------------------------------------------------


@dataclass
class ConvertConfig:
    """`ember convert`: raw agent datasets -> ADP -> training formats."""

    inputs: list[str] = opt([], "Files to read: JSONL, JSON array/object, Parquet (gzip/zstd "
                                "ok), a saved Hugging Face dataset directory, or "
                                "hf://org/name[:split].", argument=True, metavar="INPUT...")
    source: str = opt("adp", "What the input is: a built-in dataset (see --list), a mapping "
                             ".yaml file, a 'package.module:function' taking a raw record, or "
                             "'adp' / 'atif'.", flag="--from", short="-f")
    target: str = opt("adp", "Output format: adp, sft-chat (OpenAI messages + tools, for "
                             "`ember train --stage sft` and TRL SFTTrainer), openhands, "
                             "sweagent, atif.", flag="--to", short="-t")
    out: str | None = opt(None, "Output JSONL file, written atomically ('-' for stdout).",
                          short="-o")
    rejects: str | None = opt(None, "Rejects JSONL file (source, line, reason, the raw "
                                    "record) [default: OUT.rejects.jsonl].")
    workers: int = opt(1, "Worker processes; output is byte-identical for any value.",
                       short="-w", min=1)
    max_reject_rate: float = opt(0.05, "Exit 1 when more than this fraction of records (or "
                                       "any whole input) is rejected.", min=0.0, max=1.0)
    resume: bool = opt(False, "Continue a killed run of the same command from its last "
                              "checkpoint (output grows in .OUT.partial until it completes).")
    list_builtins: bool = opt(False, "List built-in datasets, shapes and exporters, then exit.",
                              flag="--list")
    shape: str | None = opt(None, "With --list: print the options of this shape (their type, "
                                  "default and help), as a mapping file sets them.")


def catalogue() -> dict:
    """Built-in datasets (with their shape and description), shapes and exporters."""
    datasets = []
    for name in builtin_names():
        shape, mapping = load_mapping(MAPPINGS_DIR / f"{name}.yaml")
        datasets.append({"dataset": name, "shape": shape, "description": mapping.description})
    shapes = {name: (importlib.import_module(mod).__doc__ or "").strip().splitlines()[0]
              for name, mod in SHAPES.items()}
    return {"datasets": datasets, "shapes": shapes, "exporters": list(EXPORTERS)}


def shape_catalogue(shape: str) -> dict:
    """One shape: its description and its options (name, type, default, help)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown --shape {shape!r}; known: {', '.join(SHAPES)}")
    doc = (importlib.import_module(SHAPES[shape]).__doc__ or "").strip()
    return {"shape": shape, "description": doc.split("\n\n")[0].replace("\n", " "),
            "options": shape_options(shape)}


def run(cfg: ConvertConfig, progress: Callable | None = None) -> Summary:
    """Run `ember convert`; a Summary whose exit code is 3 past ``max_reject_rate``.
    ``--list`` (with ``--shape``: that shape's options) returns the catalogue instead."""
    if cfg.shape is not None:
        return Summary("convert --list", details=shape_catalogue(cfg.shape))
    if cfg.list_builtins:
        return Summary("convert --list", details=catalogue())
    if not cfg.inputs:
        raise ValueError("no INPUT given (try `ember convert --help`)")
    if cfg.out is None:
        raise ValueError("missing --out / -o (use '-' for stdout)")
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, None, "records")

    with output_lock(cfg.out):  # two runs into one OUT would mix their .partial files
        tally = convert(cfg.inputs, cfg.out, source=cfg.source, target=cfg.target,
                        rejects=cfg.rejects, workers=cfg.workers, resume=cfg.resume,
                        progress=advance)
    details = tally.to_dict()
    for key in ("read", "rejected", "seconds", "reasons"):
        details.pop(key)
    summary = Summary("convert", read=tally.read, produced=tally.written,
                      rejected=tally.rejected, rejected_by_reason=dict(tally.reasons.most_common()),
                      output=str(cfg.out), rejects=str(cfg.rejects or default_rejects_path(cfg.out)),
                      seconds=tally.seconds,
                      details={**details, "max_reject_rate": cfg.max_reject_rate})
    if cfg.resume and not tally.resumed:
        summary.warnings.append("no checkpoint of this exact command was found; converted "
                                "from the start")
    if tally.read == 0 and not tally.input_errors:
        summary.warnings.append("the input held no records; wrote an empty output")
    if tally.unmapped:
        shown = ", ".join(f"{name} ({n})" for name, n in sorted(tally.unmapped.items())[:12])
        more = len(tally.unmapped) - 12
        summary.warnings.append(
            f"raw fields that hold content but that no mapping option reads (records): "
            f"{shown}{f', and {more} more' if more > 0 else ''}; name them in the mapping "
            "(e.g. under `details:`) to keep them")
    if tally.renamed:
        summary.warnings.append(f"{tally.renamed} output record(s) repeated an earlier id and "
                                "were renamed ID#2, ID#3, ...")
    if tally.input_errors:
        summary.exit_code, summary.error = 3, "some inputs could not be read"
    elif tally.reject_rate > cfg.max_reject_rate:
        summary.exit_code, summary.error = 3, (
            f"reject rate {tally.reject_rate:.2%} exceeds --max-reject-rate "
            f"{cfg.max_reject_rate:.2%}")
    return summary
