"""Streaming input and atomic output for every command that reads user data.

``iter_units(path)`` yields ``(line, payload)`` pairs without loading the file: ``payload``
is the raw bytes of one record (JSONL line or JSON-array element, parsed later, possibly
in a worker process) or an already-decoded dict (Parquet rows, Hugging Face datasets).
``line`` is the 1-based line where the record starts, for reject reports. Accepted:
JSONL, JSON arrays or single JSON objects, Parquet, any of them gzip- or zstd-compressed
(detected by magic bytes), local ``datasets.save_to_disk`` directories, and hub names
(``hf://org/name[:split]``; only when such a path does not exist locally).

``atomic_writer(path)`` writes to a temporary file beside ``path`` and renames it into
place on success, so a killed run never leaves a half file under the final name.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
from pathlib import Path
from typing import IO, Any, Iterator

import orjson

CHUNK = 1 << 22  # 4 MiB reads: large enough to amortise Python overhead, small for memory.

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PARQUET_MAGIC = b"PAR1"


class InputError(OSError):
    """A whole input cannot be read (missing, a plain directory, unknown format)."""


def open_binary(path: Path) -> IO[bytes]:
    """Open a file for reading bytes, transparently decompressing gzip or zstd."""
    raw = open(path, "rb")
    head = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
    if head.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if head.startswith(_ZSTD_MAGIC):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True),
                                 buffer_size=CHUNK)
    return raw


def iter_units(path: str | Path) -> Iterator[tuple[int, bytes | dict]]:
    """Yield ``(line, payload)`` for each record of one input (see module docstring)."""
    spec = str(path)
    p = Path(spec)
    if not p.exists():
        if spec.startswith("hf://"):
            yield from _iter_hub(spec[len("hf://"):])
            return
        raise InputError(f"{spec}: no such file or directory")
    if p.is_dir():
        if (p / "dataset_info.json").exists() or (p / "state.json").exists() or \
                (p / "dataset_dict.json").exists():
            yield from _iter_saved_dataset(p)
            return
        raise InputError(f"{spec}: is a directory, not a data file or a saved Hugging Face "
                         "dataset (datasets.save_to_disk); pass the files inside it instead")
    with open(p, "rb") as probe:
        if probe.read(4) == _PARQUET_MAGIC:
            yield from _iter_parquet(p)
            return
    with open_binary(p) as f:
        first = _first_byte(f)
        if first == b"[":
            yield from iter_json_array(f)
        elif first == b"{" and _is_plain_json(p):
            yield from iter_json_values(f)
        else:
            yield from iter_jsonl(f)


def _first_byte(f: IO[bytes]) -> bytes:
    """Peek at the first non-whitespace byte without consuming it (BufferedReader)."""
    head = f.peek(CHUNK) if hasattr(f, "peek") else b""
    stripped = head.lstrip()
    return stripped[:1]


def _is_plain_json(p: Path) -> bool:
    name = p.name.lower()
    for ext in (".gz", ".zst", ".zstd"):
        name = name.removesuffix(ext)
    return name.endswith(".json")


def iter_jsonl(f: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for lineno, line in enumerate(f, 1):
        if line.strip():
            yield lineno, line


# JSON-array streaming: a small scanner finds where each top-level element ends, with
# the regex engine doing the per-byte work, so workers can parse elements in parallel.
_STRUCT = re.compile(rb'["\[\]{}]')
_STRING_TAIL = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_SCALAR_END = re.compile(rb"[,\]]")
_NOT_SPACE_OR_COMMA = re.compile(rb"[^\s,]")


def iter_json_array(f: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield each element of a top-level JSON array as bytes, with its line number.

    A truncated last element is yielded as it is, so the parser rejects it with a reason.
    """
    buf = bytearray(f.read(CHUNK))
    pos = buf.index(b"[") + 1
    yield from _scan_values(f, buf, pos, in_array=True)


def iter_json_values(f: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield each top-level JSON value of a file (one object, or several concatenated)."""
    buf = bytearray(f.read(CHUNK))
    yield from _scan_values(f, buf, 0, in_array=False)


def _scan_values(f: IO[bytes], buf: bytearray, pos: int, in_array: bool):
    line = 1 + buf.count(b"\n", 0, pos)
    eof = False

    def more() -> bool:
        nonlocal eof
        if eof:
            return False
        chunk = f.read(CHUNK)
        if not chunk:
            eof = True
            return False
        buf.extend(chunk)
        return True

    while True:
        m = _NOT_SPACE_OR_COMMA.search(buf, pos)
        while m is None:
            line += buf.count(b"\n", pos)
            del buf[:]
            pos = 0
            if not more():
                return
            m = _NOT_SPACE_OR_COMMA.search(buf, pos)
        line += buf.count(b"\n", pos, m.start())
        start = m.start()
        first = buf[start:start + 1]
        if in_array and first == b"]":
            return
        end = _value_end(buf, start, first, more)
        if end is None:  # truncated input: hand over what is there
            yield line, bytes(buf[start:]).rstrip()
            return
        yield line, bytes(buf[start:end])
        line += buf.count(b"\n", start, end)
        # Drop consumed bytes now and then so the buffer does not grow with the file.
        if end > CHUNK:
            del buf[:end]
            pos = 0
        else:
            pos = end


def _value_end(buf: bytearray, start: int, first: bytes, more) -> int | None:
    """Index just past the JSON value starting at ``start``; None if input ends first."""
    if first == b'"':
        i = start + 1
        while True:
            m = _STRING_TAIL.match(buf, i)
            if m:
                return m.end()
            if not more():
                return None
    if first not in (b"{", b"["):
        while True:
            m = _SCALAR_END.search(buf, start)
            if m:
                return len(bytes(buf[start:m.start()]).rstrip()) + start
            if not more():
                return len(buf)
    depth = 0
    i = start
    while True:
        m = _STRUCT.search(buf, i)
        if m is None:
            i = len(buf)
            if not more():
                return None
            continue
        c = m.group()
        if c == b'"':
            j = m.end()
            while True:
                s = _STRING_TAIL.match(buf, j)
                if s:
                    i = s.end()
                    break
                if not more():
                    return None
            continue
        depth += 1 if c in (b"{", b"[") else -1
        i = m.end()
        if depth == 0:
            return i


def _iter_parquet(p: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(p).iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            row += 1
            yield row, record


def _iter_saved_dataset(p: Path) -> Iterator[tuple[int, dict]]:
    import datasets

    ds = datasets.load_from_disk(str(p))
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds.values())
    else:
        splits = [ds]
    row = 0
    for split in splits:
        for record in split:
            row += 1
            yield row, record


def _iter_hub(name: str) -> Iterator[tuple[int, dict]]:
    import datasets

    name, _, split = name.partition(":")
    ds = datasets.load_dataset(name, split=split or "train", streaming=True)
    for row, record in enumerate(ds, 1):
        yield row, record


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Write ``path`` all-or-nothing: a temp file beside it, renamed on success.

    ``-`` writes to standard output (no atomicity is possible there). This module is the
    only place in ember that renames a finished file into place; every output goes
    through ``atomic_writer``, ``atomic_directory`` or ``publish``.
    """
    if str(path) == "-":
        import sys

        yield sys.stdout.buffer if "b" in mode else sys.stdout
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | Path, tmp: str | Path | None = None) -> Iterator[Path]:
    """Build the directory ``path`` all-or-nothing: yields an empty temp directory beside
    it, which replaces ``path`` (an older one is removed) when the block succeeds.

    ``tmp`` names the temp directory when several processes must write into the same one
    (distributed training saves); by default it is private to this process.
    """
    import shutil

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tmp) if tmp else target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
        publish(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish(partial: str | Path, target: str | Path) -> None:
    """Rename a finished ``partial`` file or directory to ``target``, replacing it: the
    last step of an output that grew in place (convert's and pass-rate's ``.partial``
    files, a directory another library wrote)."""
    import shutil

    partial, target = Path(partial), Path(target)
    if partial.is_file():
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
    elif target.is_dir():
        shutil.rmtree(target)
    os.replace(partial, target)


def write_jsonl(path: str | Path, rows) -> None:
    """Rows as JSONL, atomically ('-' for stdout)."""
    with atomic_writer(path) as f:
        f.write(b"".join(orjson.dumps(r, default=str) + b"\n" for r in rows))


def write_json(path: str | Path, obj) -> None:
    """One indented JSON document (a summary, results), atomically."""
    with atomic_writer(path) as f:
        f.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str) + b"\n")


class LockedError(ValueError):
    """Another run holds the output's lock."""


@contextlib.contextmanager
def output_lock(path: str | Path, directory: bool = False) -> Iterator[None]:
    """Hold the one-writer lock of an output for the duration of a run.

    The lock is ``OUT/.ember.lock`` inside a directory output, ``.NAME.lock`` beside a
    file output; it holds the holder's pid. A second run into the same place fails at
    once with LockedError naming that pid (the kernel drops the lock when the holder dies,
    so a killed run never leaves it stuck). ``-`` (stdout) takes no lock.
    """
    import fcntl

    if str(path) == "-":
        yield
        return
    target = Path(path)
    lock = target / ".ember.lock" if directory else target.with_name(f".{target.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    f = open(lock, "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise LockedError(f"{target} is being written by another ember run (pid {holder}); "
                              "wait for it to finish or use another output") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield
    finally:
        f.close()


def repair_tail(path: str | Path) -> int:
    """Cut an append-only JSONL file back to its last complete line (a kill or a full disk
    can leave a torn one); returns the number of bytes dropped (0 when none, or no file)."""
    p = Path(path)
    if not p.exists():
        return 0
    size = p.stat().st_size
    if size == 0:
        return 0
    with open(p, "rb+") as f:
        keep, chunk = size, 1 << 16
        while keep > 0:
            start = max(0, keep - chunk)
            f.seek(start)
            block = f.read(keep - start)
            if start + len(block) == size and block.endswith(b"\n"):
                return 0  # the common case: the file ends with a complete line
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            keep = start
        f.truncate(keep)
    return size - keep
