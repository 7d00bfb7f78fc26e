"""Streaming input and atomic output for every command that reads user data.

``iter_units(path)`` yields ``(line, payload)`` pairs without loading the file: ``payload``
is the raw bytes of one record (JSONL line or JSON-array element, parsed later, possibly
in a worker process) or an already-decoded dict (Parquet rows, Hugging Face datasets).
``line`` is the 1-based line where the record starts, for reject reports. Accepted:
JSONL, JSON arrays or single JSON objects, Parquet, any of them gzip- or zstd-compressed
(detected by magic bytes), local ``datasets.save_to_disk`` directories, and hub names
(``hf://org/name[:split]``; only when such a path does not exist locally).

A saved ``DatasetDict`` (several splits) is read one split at a time: ``DIR:train``;
``DIR:all`` reads every split in the order the folder lists them. ``DIR`` alone is an
error naming the splits, unless the folder holds just one. A hub input honours
``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` (then it is read from the local datasets
cache or refused at once) and otherwise costs one request to the hub before anything is
read, so an unreachable hub or a missing dataset fails in a second, with one line, and
not after a minute of retries. ``check_input(spec)`` runs those checks without reading a
record, so a command can refuse an unreadable input before it creates any output.

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
    """Yield ``(line, payload)`` for each record of one input (see module docstring).

    The input is checked when this is called (InputError for one that cannot be read at
    all); records are read as the iterator is consumed."""
    return _source(str(path))()


def check_input(path: str | Path) -> None:
    """Raise InputError now if ``path`` cannot be read at all (missing, a plain directory,
    a DatasetDict without a split, an unknown split, a hub dataset that is unreachable,
    missing, or not cached while offline); reads no record."""
    _source(str(path))


def split_spec(spec: str) -> tuple[str, str | None]:
    """``DIR:split`` -> (DIR, split) when DIR is an existing directory and ``spec`` itself
    is not an existing path; otherwise (spec, None). ``hf://`` specs are parsed by the
    hub reader."""
    if Path(spec).exists() or spec.startswith("hf://"):
        return spec, None
    head, sep, split = spec.rpartition(":")
    if sep and head and re.fullmatch(r"[\w.-]+", split) and Path(head).is_dir():
        return head, split
    return spec, None


def _source(spec: str):
    """Check ``spec`` and return a function that yields its units."""
    if spec.startswith("hf://") and not Path(spec).exists():
        ds = _hub_dataset(spec)
        return lambda: _iter_rows(ds)
    target, split = split_spec(spec)
    p = Path(target)
    if not p.exists():
        raise InputError(f"{spec}: no such file or directory")
    if p.is_dir():
        if (p / "dataset_info.json").exists() or (p / "state.json").exists() or \
                (p / "dataset_dict.json").exists():
            parts = _saved_dataset(p, split, spec)
            return lambda: _iter_rows(*parts)
        raise InputError(f"{spec}: is a directory, not a data file or a saved Hugging Face "
                         "dataset (datasets.save_to_disk); pass the files inside it instead")
    return lambda: _iter_file(p)


def file_format(p: str | Path) -> str:
    """How `iter_units` reads the file ``p``: ``parquet``, ``json-array`` (one JSON array),
    ``json`` (one or more pretty-printed JSON values) or ``jsonl`` (plain, gzip or zstd;
    always for a .jsonl or .ndjson name, even where a line is an array)."""
    p = Path(p)
    with open(p, "rb") as probe:
        if probe.read(4) == _PARQUET_MAGIC:
            return "parquet"
    name = _name_uncompressed(p)
    if name.endswith((".jsonl", ".ndjson")):  # one value a line, whatever its first byte
        return "jsonl"
    with open_binary(p) as f:
        first = _first_byte(f)
    if first == b"[":
        return "json-array"
    return "json" if first == b"{" and name.endswith(".json") else "jsonl"


def _iter_file(p: Path) -> Iterator[tuple[int, bytes | dict]]:
    kind = file_format(p)
    if kind == "parquet":
        yield from _iter_parquet(p)
        return
    with open_binary(p) as f:
        if kind == "json-array":
            yield from iter_json_array(f)
        elif kind == "json":
            yield from iter_json_values(f)
        else:
            yield from iter_jsonl(f)


def _first_byte(f: IO[bytes]) -> bytes:
    """Peek at the first non-whitespace byte without consuming it (BufferedReader)."""
    head = f.peek(CHUNK) if hasattr(f, "peek") else b""
    stripped = head.lstrip()
    return stripped[:1]


def _name_uncompressed(p: Path) -> str:
    """The file's name, lower-cased, without a .gz / .zst / .zstd suffix."""
    name = p.name.lower()
    for ext in (".gz", ".zst", ".zstd"):
        name = name.removesuffix(ext)
    return name


def iter_jsonl(f: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for lineno, line in enumerate(f, 1):
        if line.strip():
            yield lineno, line


# JSON-array streaming: a small scanner finds where each top-level element ends, with
# the regex engine doing the per-byte work, so workers can parse elements in parallel.
_STRUCT = re.compile(rb'["\[\]{}]')
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
            _nothing_after(f, buf, start + 1, line, more)
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


def _nothing_after(f: IO[bytes], buf: bytearray, pos: int, line: int, more) -> None:
    """Raise InputError if anything but whitespace follows the top-level array's end: the
    records after it would be lost without a word."""
    while True:
        rest = buf[pos:].lstrip()
        if rest:
            raise InputError(f"{getattr(f, 'name', 'input')}: more content after the JSON "
                             f"array that ends on line {line}, so this input was not read "
                             "whole (a file of one JSON value per line is read as JSONL "
                             "when named .jsonl)")
        del buf[:]
        pos = 0
        if not more():
            return


def _string_end(buf: bytearray, i: int, more) -> int | None:
    """Index just past the closing quote of the JSON string whose text starts at ``i``
    (the first quote after an even run of backslashes); None if input ends first. Each
    byte is looked at once: a string longer than the buffer continues where the last
    read stopped (matching it again from its start made a 50 MB string take 19 s)."""
    while True:
        q = buf.find(b'"', i)
        if q < 0:
            i = len(buf)
            if not more():
                return None
            continue
        k = q
        while buf[k - 1] == 0x5C:  # backslashes before it (the opening quote stops this)
            k -= 1
        if (q - k) % 2 == 0:
            return q + 1
        i = q + 1


def _value_end(buf: bytearray, start: int, first: bytes, more) -> int | None:
    """Index just past the JSON value starting at ``start``; None if input ends first."""
    if first == b'"':
        return _string_end(buf, start + 1, more)
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
            i = _string_end(buf, m.end(), more)
            if i is None:
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


def _saved_dataset(p: Path, split: str | None, spec: str) -> list:
    """The splits of a ``save_to_disk`` folder to read, as dataset objects: a Dataset as
    it is; for a DatasetDict the named split, every split for ``all``, or the only one."""
    import datasets

    try:
        ds = datasets.load_from_disk(str(p))
    except (OSError, ValueError) as exc:  # FileNotFoundError, a broken or foreign folder
        raise InputError(f"{spec}: cannot load the saved dataset: {_first_line(exc)}") from exc
    if not isinstance(ds, datasets.DatasetDict):
        if split is not None and split != "all":
            raise InputError(f"{spec}: {p} holds one dataset, not a DatasetDict with splits; "
                             f"drop ':{split}'")
        return [ds]
    names = list(ds)
    if split == "all":
        return [ds[n] for n in names]
    if split is None:
        if len(names) == 1:
            return [ds[names[0]]]
        raise InputError(f"{spec}: a DatasetDict with splits {', '.join(names)}; name one as "
                         f"{p}:{names[0]}, or read them all in turn as {p}:all")
    if split not in ds:
        raise InputError(f"{spec}: no split {split!r}; the splits are {', '.join(names)} "
                         f"(or {p}:all)")
    return [ds[split]]


def _iter_rows(*splits) -> Iterator[tuple[int, dict]]:
    row = 0
    for split in splits:
        for record in split:
            row += 1
            yield row, record


HUB_TIMEOUT = 10.0  # seconds for the one reachability request before a hub read


def hub_offline() -> str | None:
    """The variable that puts Hugging Face datasets offline (``HF_DATASETS_OFFLINE``, else
    ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``), or None when online."""
    truthy = {"1", "ON", "YES", "TRUE"}
    own = os.environ.get("HF_DATASETS_OFFLINE")
    if own is not None:  # datasets lets its own variable override the hub's
        return "HF_DATASETS_OFFLINE" if own.upper() in truthy else None
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if (os.environ.get(var) or "").upper() in truthy:
            return var
    return None


_HUB_CACHE: dict[tuple, Any] = {}


def _hub_dataset(spec: str):
    """The dataset object behind ``hf://org/name[:split]``, checked (see module docstring):
    streamed when online, from the local datasets cache when offline."""
    name, _, split = spec[len("hf://"):].partition(":")
    split = split or "train"
    offline = hub_offline()
    key = (name, split, offline, os.environ.get("HF_ENDPOINT"))
    if key in _HUB_CACHE:  # check_input, then iter_units, in one process: one lookup
        return _HUB_CACHE[key]
    if not offline:
        _probe_hub(name, spec)  # before importing datasets (seconds, with torch)
    import datasets

    if offline:
        try:
            ds = datasets.load_dataset(name, split=split)  # memory-mapped Arrow from the cache
        except Exception as exc:
            raise InputError(f"{spec}: {offline}=1 is set and the dataset is not in the local "
                             f"Hugging Face datasets cache ({_first_line(exc)}); unset "
                             f"{offline} to download it, or pass a local file") from exc
    else:
        try:
            ds = datasets.load_dataset(name, split=split, streaming=True)
        except ValueError as exc:  # an unknown split, a bad config
            raise InputError(f"{spec}: {_first_line(exc)}") from exc
        except Exception as exc:
            raise InputError(f"{spec}: cannot open the dataset: {_first_line(exc)}") from exc
    _HUB_CACHE[key] = ds
    return ds


def _probe_hub(name: str, spec: str) -> None:
    """One request, no retries: is the hub reachable and does the dataset exist?"""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    endpoint = constants.ENDPOINT
    try:
        HfApi(endpoint=endpoint).dataset_info(name, timeout=HUB_TIMEOUT)
    except RepositoryNotFoundError as exc:
        raise InputError(f"{spec}: no dataset {name!r} on the hub at {endpoint} (or it is "
                         "private: log in with `hf auth login` or set HF_TOKEN)") from exc
    except HfHubHTTPError as exc:
        raise InputError(f"{spec}: the hub at {endpoint} answered {_first_line(exc)}") from exc
    except Exception as exc:  # connection refused, DNS, timeout, proxy: no retries
        raise InputError(f"{spec}: cannot reach the Hugging Face hub at {endpoint} "
                         f"({type(exc).__name__}: {_first_line(exc)}); check the network, "
                         "or set HF_HUB_OFFLINE=1 to read from the local cache") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
