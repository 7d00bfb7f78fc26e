"""`ember eval --backend openai` against a real `transformers serve` on 127.0.0.1 gives
the same greedy responses and scores as the in-process hf backend on the same items."""

import json

import jsonschema
import pytest

from ember.schemas import load_schema


@pytest.mark.slow
def test_openai_endpoint_matches_hf(ember, served_model, tmp_path):
    common = ["--benchmarks", "mawps,hotpotqa", "--limit", "2", "--max-new-tokens", "40"]
    api = json.loads(ember("eval", "--backend", "openai", "--base-url", served_model.base_url,
                           "--model", served_model.model, *common, "--out", tmp_path / "api",
                           "--json").stdout)
    hf = json.loads(ember("eval", "--model", "smollm2", *common, "--out", tmp_path / "hf",
                          "--json").stdout)
    jsonschema.validate(api, load_schema("results"))
    assert api["backend"] == "openai" and api["base_url"] == served_model.base_url
    for bench in ("mawps", "hotpotqa"):
        assert api["benchmarks"][bench]["samples"] == 2
        assert api["benchmarks"][bench]["metrics"] == hf["benchmarks"][bench]["metrics"]
    responses = [[json.loads(l)["response"] for l in (tmp_path / d / "samples.jsonl").open()]
                 for d in ("api", "hf")]
    assert responses[0] == responses[1]
