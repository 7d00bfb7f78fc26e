"""Inputs as users name them on the command line: saved DatasetDict folders need a split,
and a hub read that cannot happen fails at once, in one line, leaving no output behind.

Every test runs `ember convert` as a subprocess (tests/conftest.py: run_ember). The hub
tests need no network: offline mode, a closed local port, and a local HTTP server that
answers like the hub for a missing dataset.
"""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.conftest import FIXTURES

STD = FIXTURES / "adp" / "agenttuning_os" / "sample_std.json"
# Startup of `ember convert` is ~2-3 s here; the retries this guards against took 24 s.
FAST = 15.0


@pytest.fixture(scope="module")
def dataset_dict(tmp_path_factory):
    """A real `DatasetDict.save_to_disk` folder: train (2 ADP records) and test (1)."""
    import datasets

    records = json.loads(STD.read_text())
    path = tmp_path_factory.mktemp("dd") / "saved"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_list([records[0] | {"id": "train-0"},
                                             records[1] | {"id": "train-1"}]),
        "test": datasets.Dataset.from_list([records[2] | {"id": "test-0"}]),
    }).save_to_disk(str(path))
    return path


def ids(path):
    return [json.loads(line)["id"] for line in open(path)]


def assert_nothing_written(tmp_path):
    # the one-writer lock (.out.jsonl.lock) may stay; no output, rejects or partial file
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == []


def test_datasetdict_without_a_split_is_refused_and_names_the_splits(ember, tmp_path,
                                                                     dataset_dict):
    out = tmp_path / "out.jsonl"
    proc = ember("convert", dataset_dict, "-o", out, check=False)
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "train, test" in message and f"{dataset_dict}:train" in message
    assert f"{dataset_dict}:all" in message
    assert_nothing_written(tmp_path)


def test_datasetdict_split_reads_only_that_split(ember, tmp_path, dataset_dict):
    ember("convert", f"{dataset_dict}:train", "-o", tmp_path / "train.jsonl")
    assert ids(tmp_path / "train.jsonl") == ["train-0", "train-1"]


def test_datasetdict_all_and_unknown_split(dataset_dict):
    from ember.adp.io import InputError, iter_units

    assert [r["id"] for _, r in iter_units(f"{dataset_dict}:all")] == \
        ["train-0", "train-1", "test-0"]
    with pytest.raises(InputError, match="no split 'dev'; the splits are train, test"):
        iter_units(f"{dataset_dict}:dev")


def _hub_read(ember, tmp_path, **env):
    out = tmp_path / "out.jsonl"
    start = time.monotonic()
    proc = ember("convert", "hf://ember-test/no-such-dataset", "-o", out, check=False,
                 env={"HF_HOME": str(tmp_path / "hf-home"), **env})
    return proc, time.monotonic() - start


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_hub_read_offline_fails_fast_in_one_line_and_writes_nothing(ember, tmp_path, var):
    proc, seconds = _hub_read(ember, tmp_path / "run", **{var: "1"})
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert f"{var}=1" in message and "hf://ember-test/no-such-dataset" in message
    assert seconds < FAST, seconds
    assert_nothing_written(tmp_path / "run")


def test_hub_read_with_the_hub_unreachable_fails_fast(ember, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    proc, seconds = _hub_read(ember, tmp_path / "run", HF_ENDPOINT=endpoint,
                              HF_HUB_OFFLINE="0")
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert f"cannot reach the Hugging Face hub at {endpoint}" in message
    assert "HF_HUB_OFFLINE=1" in message  # says how to work without the hub
    assert seconds < FAST, seconds
    assert_nothing_written(tmp_path / "run")


class _MissingRepo(BaseHTTPRequestHandler):
    """Answers every request as the hub does for a dataset that does not exist."""

    def do_GET(self):
        body = b'{"error":"Repository not found"}'
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


def test_hub_read_of_a_missing_dataset_says_so(ember, tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _MissingRepo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        proc, seconds = _hub_read(ember, tmp_path / "run", HF_ENDPOINT=endpoint,
                                  HF_HUB_OFFLINE="0")
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 2, proc.stderr
    assert "no dataset 'ember-test/no-such-dataset' on the hub" in proc.stderr
    assert seconds < FAST, seconds
    assert_nothing_written(tmp_path / "run")
