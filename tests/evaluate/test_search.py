"""The BM25 search environment: building an index from the shipped HotpotQA corpus, ranking
sanity, bad corpus lines, and the Search-R1 /retrieve contract over real HTTP (in-process
server and the `ember synth serve-search` command)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ember.evaluate.search import RemoteSearch, SearchIndex, build_index, make_server

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data" / "search"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open() if line.strip()]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("search") / "index"
    summary = build_index(DATA / "corpus.jsonl", out)
    assert summary.produced == 521 and summary.rejected == 0
    return out


@pytest.fixture(scope="module")
def index(index_dir) -> SearchIndex:
    return SearchIndex(index_dir)


def _post(url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_index_holds_every_document(index_dir, index):
    assert {p.name for p in index_dir.iterdir()} >= {"bm25", "docs.jsonl", "rejects.jsonl"}
    assert len(index.docs) == 521
    assert index.docs[0] == _rows(DATA / "corpus.jsonl")[0]


def test_gold_paragraph_in_top5_for_most_questions(index):
    questions = _rows(DATA / "questions.jsonl")
    hits = index([q["question"] for q in questions], 5)
    found = sum(any(h.title in q["supporting_titles"] for h in per)
                for q, per in zip(questions, hits))
    assert found / len(questions) >= 0.9, f"{found}/{len(questions)}"
    for per in hits:  # best first, and never more than asked
        assert len(per) <= 5
        assert [h.score for h in per] == sorted((h.score for h in per), reverse=True)


def test_entity_query_ranks_its_page_first(index):
    [[top, *_]] = index(["Scott Derrickson director"], 3)
    assert top.title == "Scott Derrickson"
    assert top.contents.startswith('"Scott Derrickson"\n')


def test_queries_without_known_words_find_nothing(index):
    assert index(["the of and", "qwzxv", ""], 3) == [[], [], []]
    assert len(index(["film"], 10_000)[0]) <= 521  # k larger than the corpus is capped


def test_bad_corpus_lines_are_rejected_with_reasons(tmp_path, ember):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join([
        json.dumps({"id": "a", "title": "Alpha", "text": "Alpha is a letter."}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "b", "title": "Beta"}),
        json.dumps({"id": "c", "title": "Gamma", "text": "   "}),
        json.dumps({"id": "d", "title": 5, "text": "Delta is a river delta."}),
        json.dumps({"id": "a", "title": "Alpha again", "text": "A repeated id."}),
        json.dumps({"title": "No id", "text": "Epsilon takes its line number as id."}),
    ]) + "\n")
    proc = ember("synth", "index", corpus, "-o", tmp_path / "idx", "--json")
    summary = json.loads(proc.stdout)
    assert summary["produced"] == 2 and summary["rejected"] == 6
    assert summary["rejected_by_reason"] == {"bad-json": 1, "not-an-object": 1, "missing-text": 2,
                                  "bad-title": 1, "duplicate-id": 1}
    rejects = _rows(tmp_path / "idx" / "rejects.jsonl")
    assert [r["line"] for r in rejects] == [2, 3, 4, 5, 6, 7]
    index = SearchIndex(tmp_path / "idx")
    assert [d["id"] for d in index.docs] == ["a", "8"]
    assert index(["epsilon"], 1)[0][0].id == "8"


def test_corpus_without_usable_lines_fails_clearly(tmp_path, ember):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"title": "x"}\n')
    proc = ember("synth", "index", corpus, "-o", tmp_path / "idx", check=False)
    assert proc.returncode == 2
    assert "no usable document" in proc.stderr
    proc = ember("synth", "index", tmp_path / "missing.jsonl", "-o", tmp_path / "idx",
                 check=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_retrieve_contract_over_http(index):
    server = make_server(index, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        status, body = _post(f"{url}/retrieve", {"queries": ["Scott Derrickson", "Ed Wood film",
                                                             "qwzxv"],
                                                 "topk": 2, "return_scores": True})
        assert status == 200 and set(body) == {"result"}
        assert [len(per) for per in body["result"]] == [2, 2, 0]
        for per in body["result"][:2]:
            for item in per:
                assert set(item) == {"document", "score"}
                assert set(item["document"]) == {"id", "contents"}
                title, _, text = item["document"]["contents"].partition("\n")
                assert title.startswith('"') and title.endswith('"') and text
                assert isinstance(item["score"], float) and item["score"] > 0
        assert body["result"][0][0]["document"]["contents"].startswith('"Scott Derrickson"')
        # without scores: the documents alone
        status, plain = _post(f"{url}/retrieve", {"queries": ["Scott Derrickson"], "topk": 1})
        assert status == 200 and set(plain["result"][0][0]) == {"id", "contents"}
        # the client reads what the server says, same as searching in process
        remote = RemoteSearch(url)(["Ed Wood film"], 3)
        local = index(["Ed Wood film"], 3)
        assert [(h.id, h.title, h.text) for h in remote[0]] == \
            [(h.id, h.title, h.text) for h in local[0]]
        # bad requests get a 400 with a reason, and the server keeps serving
        assert _post(f"{url}/retrieve", b"{nope")[0] == 400
        assert _post(f"{url}/retrieve", {"queries": "one string"})[0] == 400
        assert _post(f"{url}/retrieve", {"queries": ["x"], "topk": -1})[0] == 400
        # as in Search-R1, a missing or zero topk means the default (3)
        assert len(_post(f"{url}/retrieve", {"queries": ["Ed Wood"], "topk": 0})[1]["result"][0]) == 3
        assert _post(f"{url}/other", {"queries": ["x"]})[0] == 404
        with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
            assert json.loads(r.read()) == {"status": "ok", "docs": 521}
    finally:
        server.shutdown()
        server.server_close()


def test_serve_search_command(index_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ember.cli.main", "synth", "serve-search",
                             str(index_dir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                status, body = _post(f"http://127.0.0.1:{port}/retrieve",
                                     {"queries": ["Kiss and Tell film"], "topk": 3,
                                      "return_scores": True})
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline, "serve-search did not come up"
                time.sleep(0.2)
        assert status == 200 and len(body["result"][0]) == 3
        assert "Kiss and Tell" in body["result"][0][0]["document"]["contents"]
    finally:
        proc.terminate()
        proc.wait(timeout=15)
