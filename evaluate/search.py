"""The agentic-search environment's retriever: BM25 (bm25s) over a JSONL corpus, in process
or over HTTP with the Search-R1 ``/retrieve`` contract.

    ember synth index corpus.jsonl -o index/          # build_index(): {id, title, text} lines
    ember synth serve-search index/ --port 8001       # serve(): POST /retrieve

    from ember.evaluate.search import open_searcher
    search = open_searcher("index/")                  # or "http://127.0.0.1:8001"
    search(["who directed Doctor Strange"], k=3)      # [[Hit(id, title, text, score), ...]]

An index directory holds the bm25s arrays (``bm25/``) and ``docs.jsonl`` (the accepted
documents in index order). Corpus lines that are not an object with a non-empty string
``text`` (``id`` and ``title`` optional: the line number and "" stand in) go to
``INDEX/rejects.jsonl`` with the line and the reason; duplicate ids are rejected too.

The HTTP contract is the one Search-R1's retrieval server speaks, so agents written for it
work against ours: POST ``{"queries": [...], "topk": k, "return_scores": true}`` answers
``{"result": [[{"document": {"id", "contents"}, "score": s}, ...], ...]}`` with
``contents = '"title"\\ntext'`` (without ``return_scores`` each inner list holds the
documents alone; a missing or zero ``topk`` means 3). A query whose words are all
stopwords or unknown to the corpus gets an empty list, and so do documents scoring 0:
BM25 found nothing, and saying so is honest.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ember.adp.config import opt
from ember.adp.io import atomic_writer, iter_units
from ember.adp.rejects import count_reasons, reject, write_rejects
from ember.adp.summary import Summary

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

DOCS_FILE = "docs.jsonl"
BM25_DIR = "bm25"
REJECTS_FILE = "rejects.jsonl"
STOPWORDS = "en"


@dataclass
class Hit:
    id: str
    title: str
    text: str
    score: float

    @property
    def contents(self) -> str:
        """Search-R1's document text: the title in quotes on the first line."""
        return f'"{self.title}"\n{self.text}'


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords=STOPWORDS, return_ids=False, show_progress=False)


def _doc_of(line: int, payload) -> tuple[dict | None, str | None]:
    """(document, None) or (None, reason) for one corpus record."""
    try:
        row = orjson.loads(payload) if isinstance(payload, (bytes, bytearray)) else payload
    except orjson.JSONDecodeError as e:
        return None, f"bad-json: {e}"
    if not isinstance(row, dict):
        return None, f"not-an-object: got {type(row).__name__}"
    text, title = row.get("text"), row.get("title", "")
    if not isinstance(text, str) or not text.strip():
        return None, "missing-text: needs a non-empty string 'text'"
    if not isinstance(title, str):
        return None, f"bad-title: 'title' should be a string, got {type(title).__name__}"
    doc_id = row.get("id", line)
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
        return None, f"bad-id: 'id' should be a string or integer, got {type(doc_id).__name__}"
    return {"id": str(doc_id), "title": title.strip(), "text": text.strip()}, None


def build_index(corpus: str | Path, out: str | Path) -> Summary:
    """Index a JSONL corpus into ``out``; rejects go to OUT/rejects.jsonl.

    Raises ValueError when no line is usable (an empty index would answer nothing)."""
    start = time.perf_counter()
    out = Path(out)
    docs, rejects, seen = [], [], set()
    for line, payload in iter_units(corpus):
        doc, reason = _doc_of(line, payload)
        if doc is not None and doc["id"] in seen:
            doc, reason = None, f"duplicate-id: {doc['id']!r} already used"
        if doc is None:
            kind, _, detail = reason.partition(": ")
            rejects.append(reject(kind, detail, source=corpus, line=line))
            continue
        seen.add(doc["id"])
        docs.append(doc)
    if not docs:
        raise ValueError(f"{corpus}: no usable document ({len(rejects)} rejected); each line "
                         "should be a JSON object with a non-empty 'text'")
    index_docs(docs, out)
    write_rejects(out / REJECTS_FILE, rejects)
    return Summary("synth index", read=len(docs) + len(rejects), produced=len(docs),
                   rejected=len(rejects), rejected_by_reason=count_reasons(rejects),
                   output=str(out), rejects=str(out / REJECTS_FILE),
                   seconds=time.perf_counter() - start)


@dataclass
class IndexConfig:
    """`ember synth index`: a BM25 index of a JSONL corpus."""

    corpus: str = opt(None, "JSONL corpus, one {id, title, text} per line.", argument=True,
                      metavar="CORPUS")
    out: str = opt(None, "Output directory: the index (bm25/, docs.jsonl, rejects.jsonl).",
                   short="-o")


def run_index(cfg: IndexConfig) -> Summary:
    if not cfg.corpus or not cfg.out:
        raise ValueError("ember synth index needs CORPUS and --out")
    return build_index(cfg.corpus, cfg.out)


@dataclass
class ServeConfig:
    """`ember synth serve-search`: the Search-R1 /retrieve contract over HTTP."""

    index: str = opt(None, "Index directory from `ember synth index`.", argument=True,
                     metavar="INDEX")
    port: int = opt(8001, "TCP port (0: any free one).", short="-p", min=0, max=65535)
    host: str = opt("127.0.0.1", "Address to bind; keep it local unless you mean to share "
                                 "the corpus.")


def run_serve(cfg: ServeConfig, on_ready=None) -> Summary:
    """Serve until interrupted (Ctrl-C ends it cleanly); ``on_ready(url)`` once listening."""
    if not cfg.index:
        raise ValueError("ember synth serve-search needs INDEX")
    server = make_server(SearchIndex(cfg.index), cfg.host, cfg.port)
    url = f"http://{cfg.host}:{server.server_address[1]}/retrieve"
    if on_ready:
        on_ready(url)
    start = time.perf_counter()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return Summary("synth serve-search", output=url, seconds=time.perf_counter() - start)


def index_docs(docs: list[dict], out: str | Path) -> None:
    """Write the index of checked ``{id, title, text}`` documents into ``out``."""
    import bm25s

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # The title is indexed with the text: a question naming an entity should find its page.
    retriever = bm25s.BM25()
    retriever.index(_tokenize([f"{d['title']} {d['text']}" for d in docs]), show_progress=False)
    retriever.save(str(out / BM25_DIR), show_progress=False)
    # docs.jsonl last: its presence marks a complete index (SearchIndex checks for it)
    with atomic_writer(out / DOCS_FILE) as f:
        f.write(b"".join(orjson.dumps(d) + b"\n" for d in docs))


class SearchIndex:
    """A loaded index; ``index(queries, k)`` returns the top-k Hits per query."""

    def __init__(self, path: str | Path):
        import bm25s

        path = Path(path)
        if not (path / DOCS_FILE).is_file() or not (path / BM25_DIR).is_dir():
            raise FileNotFoundError(f"{path} is not a search index (build one with "
                                    "`ember synth index CORPUS.jsonl -o DIR`)")
        self.path = path
        self.docs = [orjson.loads(line) for line in (path / DOCS_FILE).open("rb") if line.strip()]
        self.bm25 = bm25s.BM25.load(str(path / BM25_DIR))
        self.vocab = self.bm25.vocab_dict
        self.lock = threading.Lock()  # the HTTP server searches from several threads

    def __call__(self, queries: list[str], k: int = 3) -> list[list[Hit]]:
        k = max(0, min(k, len(self.docs)))
        tokens = [[t for t in q if t in self.vocab] for q in _tokenize(list(queries))]
        results: list[list[Hit]] = [[] for _ in queries]
        asked = [i for i, t in enumerate(tokens) if t]
        if not asked or k == 0:
            return results
        with self.lock:
            ids, scores = self.bm25.retrieve([tokens[i] for i in asked], k=k,
                                             show_progress=False, n_threads=0)
        for row, i in enumerate(asked):
            for j, s in zip(ids[row], scores[row]):
                if s > 0:
                    d = self.docs[int(j)]
                    results[i].append(Hit(d["id"], d["title"], d["text"], float(s)))
        return results


class RemoteSearch:
    """A client for any server speaking the Search-R1 ``/retrieve`` contract."""

    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        if not self.url.endswith("/retrieve"):
            self.url += "/retrieve"
        self.timeout = timeout

    def __call__(self, queries: list[str], k: int = 3) -> list[list[Hit]]:
        import urllib.request

        body = json.dumps({"queries": list(queries), "topk": k, "return_scores": True}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            result = json.loads(r.read())["result"]
        return [[_hit_of(item) for item in per_query] for per_query in result]


def _hit_of(item: dict) -> Hit:
    doc = item.get("document", item)
    title, _, text = doc.get("contents", "").partition("\n")
    return Hit(str(doc.get("id", "")), title.strip('"'), text, float(item.get("score", 0.0)))


def open_searcher(spec: str | Path):
    """An index directory, or the URL of a /retrieve server."""
    if str(spec).startswith(("http://", "https://")):
        return RemoteSearch(str(spec))
    return SearchIndex(spec)


# --- the /retrieve server ---------------------------------------------------------------


def retrieve_response(index: SearchIndex, body) -> tuple[int, dict]:
    """(HTTP status, JSON body) for one /retrieve request."""
    if not isinstance(body, dict) or not isinstance(body.get("queries"), list) or not all(
            isinstance(q, str) for q in body["queries"]):
        return 400, {"error": "expected {\"queries\": [str, ...], \"topk\": int, "
                              "\"return_scores\": bool}"}
    topk = body.get("topk") or 3  # Search-R1 reads a missing or zero topk as its default
    if not isinstance(topk, int) or isinstance(topk, bool) or topk < 1:
        return 400, {"error": "topk should be a positive integer"}
    hits = index(body["queries"], topk)
    if body.get("return_scores"):
        result = [[{"document": {"id": h.id, "contents": h.contents}, "score": h.score}
                   for h in per] for per in hits]
    else:
        result = [[{"id": h.id, "contents": h.contents} for h in per] for per in hits]
    return 200, {"result": result}


def make_server(index: SearchIndex, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A ThreadingHTTPServer answering POST /retrieve (and GET /health); not started."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, payload: dict) -> None:
            data = orjson.dumps(payload)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                self._send(200, {"status": "ok", "docs": len(index.docs)})
            else:
                self._send(404, {"error": "only POST /retrieve and GET /health"})

        def do_POST(self):
            if self.path.rstrip("/") != "/retrieve":
                self._send(404, {"error": "only POST /retrieve and GET /health"})
                return
            try:
                body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            except (orjson.JSONDecodeError, ValueError):
                self._send(400, {"error": "body is not JSON"})
                return
            self._send(*retrieve_response(index, body))

        def log_message(self, *args):  # one line per request would drown the console
            pass

    return ThreadingHTTPServer((host, port), Handler)
