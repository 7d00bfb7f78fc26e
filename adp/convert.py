"""The convert pipeline: raw records -> ADP -> (optionally) an export format.

    ember convert raw.jsonl --from agenttuning_os -o adp.jsonl
    ember convert adp.jsonl --to sft-chat -o sft.jsonl
    ember convert raw.json --from swe-smith --to sft-chat -o sft.jsonl --workers 4

Inputs are streamed (``ember.adp.io``); each record is parsed, converted and exported in
one function, ``_process_batch``, which runs in the main process and, with ``--workers
N``, in N-1 forked worker processes too (see ``_run``), over batches whose results are
written back in input order, so the output is
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
import io
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson

from ember.adp.config import opt
from ember.adp.export import EXPORTERS
from ember.adp.io import (InputError, atomic_writer, check_input, file_format, iter_units,
                          open_binary, output_lock, publish)
from ember.adp.mapping import (MAPPINGS_DIR, SHAPES, ConvertError, UniqueIds, apply, builtin_names,
                               group_key, group_records, load_converter, load_mapping,
                               shape_options)
from ember.adp.rejects import default_rejects_path
from ember.adp.summary import Summary

BATCH_BYTES = 1 << 21  # records are grouped into ~2 MiB batches for workers
BATCH_RECORDS = 2048
# A checkpoint (flush, fsync'd state file, rename) after the first batch of each input and
# then at most this often: a resume repeats at most this much work, and the fsyncs stay a
# small fraction of the run.
CHECKPOINT_SECONDS = 0.5


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
        # whether records need their input position ('@index' ids): unknown for a
        # Python function, which might read it
        pipeline.uses_index = getattr(convert, "uses_index", True)
        pipeline.unmapped = getattr(convert, "unmapped", None)
        pipeline.id_key = getattr(importlib.import_module(module), "ID_KEY", "id") \
            if module else "id"
        _PIPELINES[key] = pipeline
    return _PIPELINES[key]


def classify_error(exc: Exception) -> tuple[str, str]:
    """(reason, detail) of a record that failed to convert: the rejects line's fields."""
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


def raw_for_rejects(payload: bytes | dict | list) -> dict:
    """The rejected input itself, so nothing is lost (base64 where it is not UTF-8)."""
    if isinstance(payload, list):  # one trajectory's step records
        return {"raw_steps": [raw_for_rejects(p) for p in payload]}
    if isinstance(payload, dict):
        return {"raw": payload}
    payload = payload.rstrip(b"\r\n")
    try:
        return {"raw": payload.decode("utf-8")}
    except UnicodeDecodeError:
        return {"raw_base64": base64.b64encode(payload).decode()}


def _decode(payload):
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return orjson.loads(payload)
    if type(payload) is _Steps and payload.records is not None:
        return payload.records  # parsed already, to read their group key
    if isinstance(payload, list):  # the step records of one trajectory
        return [_decode(p) for p in payload]
    return payload


class _Steps(list):
    """One trajectory's step lines as read (for a reject), the records they parsed to
    (None once a line did not parse: they are parsed again, and rejected with the reason)
    and their size in bytes."""

    __slots__ = ("records", "nbytes")

    def __init__(self):
        super().__init__()
        self.records: list | None = []
        self.nbytes = 0

    def add(self, raw, record) -> None:
        self.append(raw)
        self.nbytes += len(raw)
        if record is _UNPARSED:
            self.records = None
        elif self.records is not None:
            self.records.append(record)


_UNPARSED = object()


def _keyed(raw, key: Callable) -> tuple[Any, Any]:
    """(record, group key) of a raw line; (_UNPARSED, None) where it is not JSON."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _UNPARSED, None
    return record, key(record)


def _range_groups(path: str, start: int, size: int, key: Callable, n_lines: list
                  ) -> Iterator[tuple[int, int, _Steps]]:
    """``(line, index, steps)`` for each group of step records (``group_by``) that starts
    in the range ``[start, start + size)`` of a JSONL file, numbered from the range's
    start: together, the ranges of a file give the groups one pass over it would (runs of
    non-blank lines with one key; a None key stands alone). Lines that continue a group
    begun before the range are skipped (the range before takes them); the last group is
    completed from the lines after the range. Appends the range's line count to
    ``n_lines`` at the end."""
    with open(path, "rb") as f:
        before = _line_before(f, start)
        previous = _keyed(before, key)[1] if before is not None else None
        f.seek(start)
        block = f.read(size)
        group: _Steps | None = None
        current = first = None
        index = 0
        for line, _, raw in _block_units(block, 1, 0, n_lines):
            record, k = _keyed(raw, key)
            if previous is not None:
                if k == previous:
                    continue  # the group of the range before goes on
                previous = None
            if group is not None and (k is None or k != current):
                yield first, index, group
                index += 1
                group = None
            if group is None:
                group, first = _Steps(), line
            group.add(raw, record)
            current = k
        if group is None:
            return
        if current is not None:  # the last group may go on past the range
            f.seek(start + size)
            for raw in f:
                if not raw.strip():
                    continue
                record, k = _keyed(raw, key)
                if k is None or k != current:
                    break
                group.add(raw, record)
        yield first, index, group


def _line_before(f, end: int) -> bytes | None:
    """The last non-blank line before offset ``end`` (a line start) of file ``f``, or None."""
    step, pos, tail = 1 << 16, end, b""
    while pos > 0:
        lo = max(0, pos - step)
        f.seek(lo)
        tail = f.read(pos - lo) + tail
        pos, step = lo, step * 2
        body = tail.rstrip()  # blank lines are whitespace alone, as bytes.strip() sees it
        cut = body.rfind(b"\n")
        if cut >= 0 or (pos == 0 and body):
            return body[cut + 1:]
    return None


_BLANK = frozenset(b" \t\r\n\x0b\x0c")  # the bytes that bytes.strip() strips


def _block_units(block: bytes, line: int, index: int, lines: list
                 ) -> Iterator[tuple[int, int, bytes]]:
    """``(line, index, raw line)`` for each non-blank line of a JSONL block, numbered from
    ``line`` and ``index``; lines are split and kept exactly as ``io.iter_jsonl`` reads
    them (newline included), as memoryviews of the block. Appends the number of lines to
    ``lines`` at the end."""
    # memoryview slices: orjson parses them as they are, so no line is copied
    first, view, pos, size, find = line, memoryview(block), 0, len(block), block.find
    while pos < size:
        end = find(b"\n", pos) + 1 or size
        raw = view[pos:end]
        if raw[0] not in _BLANK or block[pos:end].strip():
            yield line, index, raw
            index += 1
        line += 1
        pos = end
    lines.append(line - first)


def _block_lines(block: bytes) -> int:
    return block.count(b"\n") + (not block.endswith(b"\n"))


def _process_batch(args) -> tuple:
    """Convert one batch: ``(source, target, path, units, nbytes)``. ``units`` is a list of
    ``(line, index, payload)`` (payload: raw bytes, a decoded record, or a list of step
    records forming one trajectory), or a JSONL block ``("lines", bytes, first line, first
    index)`` that is split here, in the worker (``nbytes`` is then counted here too).
    Returns the output bytes, reject lines, counts, the output records' ``(id, size in
    bytes)`` and the unmapped raw fields seen."""
    source, target, path, units, nbytes = args
    pipeline = make_pipeline(source, target)
    unmapped_of, id_key = pipeline.unmapped, pipeline.id_key
    if isinstance(units, tuple):  # a JSONL block: whole lines, split here
        kind, block, first_line, first_index = units
        # line and index None: the driver did not count (numbered from the block's start
        # here; the driver shifts the rejects' line numbers as it writes them)
        n_lines: list[int] = []
        if kind == "range" and pipeline.group_by:  # whole groups of step records
            items: Iterable = _range_groups(path, *block, group_key(pipeline.group_by),
                                            n_lines)
        else:
            if kind == "range":  # (offset, size) in the file: read here, in the worker
                with open(path, "rb") as f:
                    f.seek(block[0])
                    block = f.read(block[1])
            items = _block_units(block, first_line or 1, first_index or 0, n_lines)
        count_bytes = True
        nbytes = 0
    else:
        items, count_bytes, first_line = units, False, None
    loads, dumps, newline = orjson.loads, orjson.dumps, orjson.OPT_APPEND_NEWLINE
    out: list[bytes] = []  # joined once at the end
    add_out = out.append
    rejects: list[bytes] = []
    reasons: collections.Counter = collections.Counter()
    unmapped: collections.Counter = collections.Counter()
    ids: list[tuple[str, int]] = []
    add_id = ids.append
    converted = written = n_units = 0
    for line, index, payload in items:
        n_units += 1
        is_bytes = type(payload) is bytes or type(payload) is memoryview
        if count_bytes:
            nbytes += payload.nbytes if type(payload) is _Steps else len(payload)
        size = 1 if is_bytes or not isinstance(payload, list) else len(payload)
        try:
            record = loads(payload) if is_bytes else _decode(payload)
            if type(record) is not dict and (not isinstance(record, (dict, list)) or (
                    isinstance(record, list) and not all(isinstance(r, dict) for r in record))):
                raise ConvertError("not-an-object",
                                   f"expected a JSON object, got {type(record).__name__}")
            results = apply(pipeline, record, index)
            if len(results) == 1:  # the common case: one output record, no join
                r = results[0]
                chunk = dumps(r, option=newline)
                tid = str(r.get(id_key)) if isinstance(r, dict) else ""
                lines = None
            else:
                lines = [dumps(r, option=newline) for r in results]
                chunk = b"".join(lines)
        except Exception as exc:  # every failure becomes a reject, never a crash
            reason, detail = classify_error(exc)
            reasons[reason] += size
            if type(payload) is memoryview:
                payload = payload.tobytes()
            elif type(payload) is _Steps:
                payload = [bytes(p) for p in payload]
            rejects.append(orjson.dumps({"source": path, "line": line, "reason": reason,
                                         "detail": detail, "records": size,
                                         **raw_for_rejects(payload)},
                                        default=str) + b"\n")
            continue
        add_out(chunk)
        converted += size
        if lines is None:
            written += 1
            add_id((tid, len(chunk)))
        else:
            written += len(results)
            ids += [(str(r.get(id_key)) if isinstance(r, dict) else "", len(b))
                    for r, b in zip(results, lines)]
        if unmapped_of is not None:
            found = unmapped_of(record)
            if found:
                unmapped.update(found)
    # lines in an unnumbered block, for the driver's count; None otherwise
    n_lines = n_lines[0] if count_bytes and first_line is None else None
    return (b"".join(out), rejects, converted, written, reasons, n_units, nbytes, ids,
            unmapped, n_lines)


def convert_lines(lines: Iterable[bytes], source: str = "adp", target: str = "adp", *,
                  first_index: int = 0, path: str = "<lines>") -> tuple[list[bytes], list[bytes]]:
    """Library use (e.g. inside ``datasets.map``): convert raw JSON lines (one record each)
    with ``--from source --to target`` and return ``(outputs, rejects)``, each a list of
    JSONL lines (bytes ending in a newline), outputs in input order. ``first_index`` is the
    position of the first line in its input (for '@index' ids). Ids are not made unique
    across calls (the CLI's ``UniqueIds`` does that over a whole run) and ``group_by`` is
    not applied (each line is one unit)."""
    units = [(i + 1, first_index + i, raw) for i, raw in enumerate(lines)]
    result = _process_batch((source, target, path, units, 0))
    data, rejects, ids = result[0], result[1], result[7]
    outputs, pos = [], 0
    for _, size in ids:
        outputs.append(data[pos:pos + size])
        pos += size
    return outputs, rejects


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


def _jsonl_file(path: str) -> bool:
    """Whether ``path`` is a JSONL file (plain, gzip or zstd), as ``io.iter_units`` decides:
    those are read in blocks of whole lines that workers split and parse."""
    try:
        return Path(path).is_file() and file_format(path) == "jsonl"
    except OSError:
        return False  # iter_units reports it


def _plain_jsonl(path: str) -> bool:
    """An uncompressed JSONL file: its blocks can be read by offset."""
    if not _jsonl_file(path):
        return False
    with open_binary(Path(path)) as f:
        return _uncompressed(f)


def _uncompressed(f) -> bool:
    """Whether ``open_binary`` gave the file itself (offsets in it are the file's)."""
    return type(f) is io.BufferedReader and isinstance(f.raw, io.FileIO)


def _file_ranges(path: str) -> Iterator[tuple[int, int]]:
    """``(offset, size)`` of the blocks of whole lines of about BATCH_BYTES that make up
    the file, found by reading only from each cut to the next newline."""
    size = os.path.getsize(path)
    pos = 0
    with open(path, "rb") as f:
        while pos < size:
            cut = pos + BATCH_BYTES - 1  # the block ends just after the newline at or after
            f.seek(cut)
            while cut < size:
                window = f.read(1 << 16)
                found = window.find(b"\n")
                if found >= 0:
                    cut += found
                    break
                cut += len(window)
            end = min(cut + 1, size)
            yield pos, end - pos
            pos = end


def _count_units(block: bytes) -> int:
    """Non-blank lines in a block of whole lines; a blank line is possible only where a
    line starts with whitespace, which one search rules out."""
    if block[:1] in _BLANK_BYTES or _BLANK_START.search(block):
        return sum(1 for raw in io.BytesIO(block) if raw.strip())
    return _block_lines(block)


_BLANK_BYTES = (b" ", b"\t", b"\r", b"\n", b"\x0b", b"\x0c")
_BLANK_START = re.compile(rb"\n[ \t\r\n\x0b\x0c]")


def _cut_lines(block: bytes, n: int) -> int:
    """Offset just after the ``n``-th newline of ``block`` (``len(block)`` if fewer)."""
    pos = 0
    for _ in range(n):
        pos = block.find(b"\n", pos) + 1
        if not pos:
            return len(block)
    return pos


def _skip_units(block: bytes, n: int) -> tuple[int, int]:
    """(offset, lines) just past the first ``n`` non-blank lines of ``block``."""
    pos = lines = 0
    for raw in io.BytesIO(block):
        if not n:
            break
        pos += len(raw)
        lines += 1
        if raw.strip():
            n -= 1
    return pos, lines


def _jsonl_blocks(path: str, skip: int = 0, number: bool = True
                  ) -> Iterator[tuple[bytes, int | None, int | None, int | None]]:
    """``(block, first line, first index, file offset)``: the file in blocks of whole
    lines of about BATCH_BYTES (at most BATCH_RECORDS lines), after ``skip`` units. The
    driver only finds the last newline of each read; splitting and parsing happen in
    ``_process_batch``. With ``number`` False (no '@index' ids, no resume) it does not
    even count lines: line and index are None and the worker numbers from the block. The
    offset (None for a compressed file) lets a worker read the block itself."""
    line, index = 1, 0
    pos = 0  # file offset of the next block
    with open_binary(Path(path)) as f:
        plain = _uncompressed(f)
        pending: list[bytes] = []
        tail = b""
        eof = False
        while not eof:
            chunk = f.read(BATCH_BYTES)
            if not chunk:
                eof = True
                block = tail + b"".join(pending)
                pending, tail = [], b""
            else:
                cut = chunk.rfind(b"\n") + 1
                if not cut:  # a line longer than a chunk: keep reading
                    pending.append(chunk)
                    continue
                # one copy at most: the whole lines of this read, after the last one's rest
                head = memoryview(chunk)[:cut] if cut < len(chunk) else chunk
                block = b"".join([tail, *pending, head]) if (tail or pending) else bytes(head)
                pending, tail = [], chunk[cut:]
            while block:
                piece = block
                if len(block) > BATCH_RECORDS:  # at most BATCH_RECORDS lines (memchr finds)
                    end = _cut_lines(block, BATCH_RECORDS)
                    if end < len(block):
                        piece = block[:end]
                block = block[len(piece):]
                at, pos = pos, pos + len(piece)
                if not number:
                    yield piece, None, None, at if plain else None
                    continue
                units = _count_units(piece)
                if index + units <= skip:  # done before a resume
                    line += piece.count(b"\n")
                    index += units
                    continue
                if index < skip:
                    offset, lines = _skip_units(piece, skip - index)
                    piece, line, index, at = piece[offset:], line + lines, skip, at + offset
                    units = _count_units(piece)
                if units:
                    yield piece, line, index, at if plain else None
                line += piece.count(b"\n")
                index += units


def _batches(path: str, source: str, target: str, skip: int = 0,
             ranges: bool = False) -> Iterator[tuple]:
    """Batches of ~BATCH_BYTES for ``_process_batch``, after ``skip`` units (a resume).
    With ``ranges`` a block of an uncompressed JSONL file is passed as its place in the
    file, which the worker reads, instead of its bytes."""
    pipeline = make_pipeline(source, target)
    group_by = pipeline.group_by
    number = bool(skip) or pipeline.uses_index
    if not number and (ranges or group_by) and _plain_jsonl(path):
        # blocks passed as their place in the file, read where they are converted (this
        # process reads only around each cut); step records are grouped there too
        for at, size in _file_ranges(path):
            yield (source, target, path, ("range", (at, size), None, None), None)
        return
    if not group_by and _jsonl_file(path):
        for block, line, index, at in _jsonl_blocks(path, skip, number):
            unit = ("range", (at, len(block)), line, index) if ranges and at is not None \
                else ("lines", block, line, index)
            yield (source, target, path, unit, None)
        return
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
            target: str = "adp", rejects: str | Path | None = None, workers: int | str = 1,
            resume: bool = False, progress: Callable[[int], None] | None = None) -> Tally:
    """Convert ``inputs`` into ``out``; rejected records go to ``rejects``.

    ``source`` is ``--from`` (dataset name, mapping file, dotted path; ``adp`` for ADP
    input) and ``target`` is ``--to``. Raises ValueError for a bad ``--from``/``--to``
    before anything is written; so does InputError when no input can be read at all
    (``_unreadable``); other unreadable inputs are recorded in the summary and skipped.
    Output grows in ``.OUT.partial`` files beside the targets, with a checkpoint after
    every batch; ``resume=True`` continues a killed run from its last checkpoint.
    """
    make_pipeline(source, target)  # fail fast on a bad --from / --to
    inputs = [str(p) for p in inputs]
    unreadable = _unreadable(inputs)  # before any output file exists
    if rejects is None:
        rejects = default_rejects_path(out)
    job = {"inputs": inputs, "source": source, "target": target, "rejects": str(rejects)}
    ckpt = _Stdout(rejects) if str(out) == "-" else Checkpoint(out, rejects, job, resume)
    summary = ckpt.summary
    start = time.perf_counter()
    id_key = make_pipeline(source, target).id_key
    ids = ckpt.written_ids(id_key)
    workers = resolve_workers(workers, inputs)
    pool = spool = None
    if workers > 1:
        import tempfile

        # the workers' output files: beside the output (the disk that holds it), at most
        # 2 batches a worker at a time
        spool = tempfile.mkdtemp(prefix=".ember-spool-",
                                 dir=None if str(out) == "-" else Path(out).parent)
        pool = _pool(workers - 1)  # this process converts too
    try:
        for i, path in enumerate(inputs):
            if i < ckpt.input_index:
                continue  # finished before the resume
            skip = ckpt.units if i == ckpt.input_index else 0
            counts = summary.per_input.setdefault(path, {"read": 0, "converted": 0,
                                                         "rejected": 0})
            done = skip
            saved = float("-inf")
            try:
                if path in unreadable:
                    raise unreadable[path]
                base = 0  # lines before the current batch, for unnumbered blocks
                batches = _batches(path, source, target, skip, ranges=pool is not None)
                for result in _run(pool, workers, batches, spool):
                    n_read = _record(summary, counts, result)
                    pieces, renamed = unique_output(result[0], result[7], ids, id_key)
                    summary.renamed += renamed
                    rejected = result[1]
                    if result[9] is not None:  # an unnumbered JSONL block
                        if base and rejected:
                            rejected = [_shift_line(r, base) for r in rejected]
                        base += result[9]
                    ckpt.write(pieces, rejected)
                    done += result[5]
                    now = time.perf_counter()
                    if now - saved >= CHECKPOINT_SECONDS:  # the first batch, then by time
                        ckpt.save(i, done)
                        saved = now
                    if progress:
                        progress(n_read)
            except (InputError, OSError) as exc:
                summary.input_errors.append((path, str(exc)))
                ckpt.write([], [orjson.dumps({"source": path, "line": None,
                                               "reason": "unreadable-input",
                                               "error": str(exc)}) + b"\n"])
            ckpt.save(i + 1, 0)
        ckpt.finish()
    finally:
        if pool is not None:
            pool.terminate()
        if spool is not None:
            import shutil

            shutil.rmtree(spool, ignore_errors=True)
        ckpt.close()
    summary.seconds = time.perf_counter() - start
    return summary


AUTO_MAX_WORKERS = 8     # `--workers auto` uses at most this many processes,
AUTO_MIN_BYTES = 32 << 20  # and one process below this much input: start-up and the
                           # final fsync do not shrink, so a second process gains little
                           # (1.0-1.2x at 20 MB on 2 cores, docs/benchmarks.md)


def resolve_workers(workers: int | str, inputs: Iterable[str] = ()) -> int:
    """The number of worker processes for ``--workers``: a count, or ``auto`` (also 0):
    the CPUs this process may use, at most AUTO_MAX_WORKERS, and 1 when the local inputs
    hold less than AUTO_MIN_BYTES (a Hugging Face or unknown input counts as large). The
    driver only cuts and writes bytes, so N workers on N cores scale; see
    docs/benchmarks.md."""
    if isinstance(workers, str) and workers.strip().lower() != "auto":
        try:
            workers = int(workers)
        except ValueError:
            raise ValueError(f"--workers should be a number or 'auto', got {workers!r}") \
                from None
    if isinstance(workers, int) and workers > 0:
        return workers
    if isinstance(workers, int) and workers < 0:
        raise ValueError(f"--workers should be at least 1 (or 0 / 'auto'), got {workers}")
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    total = 0
    for path in inputs:
        p = Path(path)
        total += p.stat().st_size if p.is_file() else AUTO_MIN_BYTES
    return 1 if total < AUTO_MIN_BYTES else max(1, min(cpus, AUTO_MAX_WORKERS))


def _unreadable(inputs: list[str]) -> dict[str, InputError]:
    """The inputs that cannot be opened at all (``io.check_input``: missing, a plain
    directory, a DatasetDict without a split, a hub dataset offline / unreachable /
    missing). When no input can be read the run stops here, before any output file
    exists (InputError: exit 2); otherwise those inputs are reported in the summary and
    the others converted (exit 3)."""
    errors = {}
    for path in inputs:
        try:
            check_input(path)
        except InputError as exc:
            errors[path] = exc
    if errors and len(errors) == len(inputs):
        first = next(iter(errors.values()))
        more = f" (and {len(errors) - 1} more unreadable input(s))" if len(errors) > 1 else ""
        raise InputError(f"{first}{more}; nothing was written")
    return errors


def unique_output(data: bytes, ids: list[tuple[str, int]], seen: UniqueIds,
                  id_key: str) -> tuple[list, int]:
    """A batch's output lines with repeated ids renamed (``seen`` holds the ids written so
    far); returns the pieces to write in order (slices of ``data``, not copies, and the
    renamed lines' new beginnings) and how many were renamed. Only renamed lines change:
    the new id replaces the old where the line starts with it (the bytes orjson writes for
    the renamed record), else the line is decoded and encoded again."""
    renamed = 0
    view = memoryview(data)
    pieces: list = []
    pos = start = 0
    take = seen.take
    for tid, size in ids:
        new = take(tid)
        if new != tid:
            head, cut = _renamed(data, pos, size, id_key, tid, new)
            pieces += (view[start:pos], head)
            start = pos + cut
            renamed += 1
        pos += size
    pieces.append(view[start:] if start else data)
    return pieces, renamed


def _shift_line(reject: bytes, base: int) -> bytes:
    """A reject line of a block numbered from 1, numbered in its input instead."""
    record = orjson.loads(reject)
    record["line"] += base
    return orjson.dumps(record) + b"\n"


def _renamed(data: bytes, pos: int, size: int, id_key: str, old: str, new: str
             ) -> tuple[bytes, int]:
    """The line at ``data[pos:pos + size]`` with its ``id_key`` set to ``new``, as (bytes to
    write, how much of the line they replace: the rest of it is written as it is)."""
    key = b"{" + orjson.dumps(id_key) + b":"
    head = key + orjson.dumps(old)
    end = pos + len(head)
    if data.startswith(head, pos) and data[end:end + 1] in (b",", b"}"):
        # orjson writes the record the same with the new id, which is the first key
        return key + orjson.dumps(new), len(head)
    record = orjson.loads(data[pos:pos + size])
    record[id_key] = new
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE), size


def _record(summary: Tally, counts: dict, result: tuple) -> int:
    """Add one batch's result to the summary and its input's counts; return records read."""
    _, _, ok, written, reasons, _, nbytes, _, unmapped, _ = result
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

    def write(self, pieces: list, rejects: list[bytes]) -> None:
        self.out.writelines(pieces)
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
    targets, with a small JSON state saved after batches (where each input stands,
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

    def write(self, pieces: list, rejects: list[bytes]) -> None:
        self.files[0].writelines(pieces)
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


def _pool(workers: int):
    """``workers`` processes. Forked where the platform has fork and this process runs no
    other thread (forking beside threads can deadlock the child): a forked worker starts
    in milliseconds with the converters already loaded, where a spawned one is a fresh
    interpreter that imports ember and loads the mapping again (~0.3 s on 2 cores, most
    of a 50 MB run's gain from a second worker)."""
    import multiprocessing as mp
    import threading

    fork = "fork" in mp.get_all_start_methods() and threading.active_count() == 1
    return mp.get_context("fork" if fork else "spawn").Pool(workers)


def _run(pool, workers: int, batches: Iterator[tuple], spool: str | None = None):
    """Process batches, results in input order. With a pool (``workers`` - 1 processes,
    up to 2 batches queued for each) this process converts a batch itself whenever the
    workers have enough, instead of waiting: N busy processes on N cores. Bulk bytes do
    not travel through the pool's pipes: a worker reads its block from the file (a
    range, see _batches) and leaves its output in a file of ``spool`` (see _spooled).
    Pipes are fed by threads of this process, which wait for the GIL while this
    process converts: a 2 MB block through them cost more than converting it."""
    if pool is None:
        for batch in batches:
            yield _process_batch(batch)
        return
    queued = 2 * (workers - 1)
    pending: collections.deque = collections.deque()  # AsyncResult, or (finished result,)
    in_pool = 0
    for batch in batches:
        if in_pool < queued:
            pending.append(pool.apply_async(_spooled, ((batch, spool),)))
            in_pool += 1
        else:
            pending.append((_process_batch(batch),))
        while pending and (type(pending[0]) is tuple or pending[0].ready()):
            head = pending.popleft()
            if type(head) is tuple:
                yield head[0]
            else:
                in_pool -= 1
                yield _unspooled(head.get())
    for head in pending:
        yield head[0] if type(head) is tuple else _unspooled(head.get())


SPOOL_BYTES = 1 << 16  # a worker's output above this goes through a file, not the pipe


def _spooled(args) -> tuple:
    """``_process_batch`` in a worker; output bytes over SPOOL_BYTES are written to a new
    file in the spool folder and the result names it instead."""
    batch, spool = args
    result = _process_batch(batch)
    if spool is None or len(result[0]) < SPOOL_BYTES:
        return result
    import tempfile

    fd, name = tempfile.mkstemp(dir=spool, suffix=".out")
    with open(fd, "wb") as f:
        f.write(result[0])
    return (("spooled", name), *result[1:])


def _unspooled(result: tuple) -> tuple:
    """A worker's result with spooled output read back (and its file removed)."""
    if type(result[0]) is not tuple:
        return result
    name = result[0][1]
    with open(name, "rb") as f:
        data = f.read()
    os.unlink(name)
    return (data, *result[1:])


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
    workers: str | int = opt(1, "Processes converting (this one and N-1 workers), or auto: "
                                "one per usable CPU (at most 8), one for inputs under 32 MB "
                                "(0 means auto too). Output is byte-identical for any value.",
                             short="-w", metavar="N|auto")
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
