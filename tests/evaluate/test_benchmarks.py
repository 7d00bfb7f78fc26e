"""Built-in benchmarks load from the package's own data with the right counts and golds;
custom:SPEC.yaml maps fields, renders chat and completion prompts with few-shot examples,
and rejects bad specs with a message naming the problem."""

import json
import subprocess
import sys
import zipfile

import pytest

from ember.evaluate.benchmarks import BENCHMARKS, data_file, load_benchmark
from ember.evaluate.templates import PROMPTS, render
from ember.evaluate.scoring import get_scorer
from tests.conftest import ROOT

COUNTS = {"gsm8k": 1319, "gsm8k_cot": 1319, "gsm8k-boxed": 1319, "gsm8k-train": 7473, "math500": 500, "mawps": 395 + 600 + 562,
          "asdiv": 2093, "hotpotqa": 53, "hotpotqa-context": 53}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_builtin_loads(name):
    bench = load_benchmark(name)
    items = bench.load()
    assert bench.name == name and len(items) == COUNTS[name]
    assert len({it.id for it in items}) == len(items)
    assert all(isinstance(it.id, str) and it.gold and str(it.gold).strip() for it in items)
    assert all(it.messages[-1]["role"] == "user" and it.messages[-1]["content"]
               for it in items)
    get_scorer(bench.scorer)


def test_builtin_golds_and_prompts():
    gsm = load_benchmark("gsm8k-boxed").load()
    assert gsm[0].gold == "18" and "\\boxed{}" in gsm[0].messages[0]["content"]
    assert all("," not in it.gold and "####" not in it.gold for it in gsm)
    mawps = load_benchmark("mawps").load()
    assert mawps[0].id == "addsub-0" and mawps[0].gold == "43"          # target 43.0
    assert {it.id.split("-")[0] for it in mawps} == {"addsub", "multiarith", "singleop"}
    asdiv = {it.id: it for it in load_benchmark("asdiv").load()}
    assert asdiv["0"].gold == "9"                                       # "9 (apples)"
    assert "Seven red apples" in asdiv["0"].messages[0]["content"]
    m500 = load_benchmark("math500").load()
    assert m500[0].gold == "\\left( 3, \\frac{\\pi}{2} \\right)"
    closed, ctx = (load_benchmark(n).load()[0] for n in ("hotpotqa", "hotpotqa-context"))
    assert closed.gold == ctx.gold == "yes" and closed.id == ctx.id
    assert "Answer:" in closed.messages[0]["content"]
    assert "[Scott Derrickson]" not in closed.messages[0]["content"]
    assert ctx.messages[0]["content"].count("\n[") == 9    # 10 titled paragraphs
    assert "[Scott Derrickson] Scott Derrickson (born July 16, 1966)" in ctx.messages[0]["content"]


def test_golds_score_as_correct():
    # every gold, boxed, is accepted by its own scorer: golds are well-formed and parsable
    score = get_scorer("math")
    for name in ("gsm8k-boxed", "mawps", "asdiv"):
        for it in load_benchmark(name).load()[:200]:
            assert score(f"So the answer is \\boxed{{{it.gold}}}.", it)["score"] == 1.0, it


def test_unknown_benchmark_lists_builtins():
    with pytest.raises(ValueError, match="gsm8k.*math500.*hotpotqa.*custom:SPEC.yaml"):
        load_benchmark("gsm9k")
    assert "humaneval" in BENCHMARKS


def test_render():
    assert render("{q} in \\boxed{} {{x}} {a.b}", {"q": "Q", "a": {"b": 2}}) == \
        "Q in \\boxed{} {x} 2"
    assert render(PROMPTS["math"], {"question": "1+1?"}).startswith("1+1?\n\n")
    with pytest.raises(KeyError, match="'nope'"):
        render("{nope}", {"q": 1})


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def custom(tmp_path):
    write_jsonl(tmp_path / "data.jsonl", [
        {"uid": "a", "p": {"text": "2+2?"}, "sol": {"final": 4.0}},
        {"uid": "b", "p": {"text": "3*3?"}, "sol": {"final": [9, "nine"]}},
    ])
    write_jsonl(tmp_path / "shots.jsonl", [
        {"uid": "s1", "p": {"text": "1+1?"}, "sol": {"final": 2, "why": "one and one"}},
        {"uid": "s2", "p": {"text": "5-1?"}, "sol": {"final": 4, "why": "five less one"}},
        {"uid": "s3", "p": {"text": "unused"}, "sol": {"final": 0, "why": "-"}},
    ])
    return tmp_path


def test_custom_completion_with_fewshot(custom):
    spec = custom / "spec.yaml"
    spec.write_text(r"""
data: data.jsonl
fields: {id: uid, question: p.text, answer: sol.final}
template: "Q: {question}\nA:"
chat: false
fewshot: shots.jsonl
fewshot_n: 2
fewshot_answer: " {sol.why}, so {answer}."
extract: {regex: 'so (\S+?)\.'}
scorer: math
stop: ["\n\nQ:"]
""")
    bench = load_benchmark(f"custom:{spec}")
    assert bench.name == f"custom:{spec}" and not bench.chat and bench.stop == ["\n\nQ:"]
    items = bench.load()
    assert [it.id for it in items] == ["a", "b"]
    assert items[0].prompt == ("Q: 1+1?\nA: one and one, so 2.\n\n"
                               "Q: 5-1?\nA: five less one, so 4.\n\nQ: 2+2?\nA:")
    assert items[0].gold == "4" and items[1].gold == ["9", "nine"]
    score = get_scorer(bench.scorer)
    assert score(" two and two, so 4.", items[0])["score"] == 1.0
    assert score(" 4 minus 1, so 3. Then 4", items[0])["score"] == 0.0   # regex, not last number


def test_custom_chat_with_inline_fewshot(custom):
    spec = custom / "spec.yaml"
    spec.write_text(
        "data: data.jsonl\n"
        "fields: {question: p.text, answer: sol.final}\n"
        "system: Be brief.\n"
        "template: '{question} Reply as Answer: X'\n"
        "fewshot: [{p: {text: '1+1?'}, sol: {final: 2}}]\n"
        "fewshot_answer: 'Answer: {answer}'\n"
        "scorer: qa\n")
    items = load_benchmark(f"custom:{spec}").load()
    assert [it.id for it in items] == ["0", "1"]                      # line numbers
    assert items[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "1+1? Reply as Answer: X"},
        {"role": "assistant", "content": "Answer: 2"},
        {"role": "user", "content": "2+2? Reply as Answer: X"}]
    assert get_scorer("qa")("Answer: nine", items[1])["score"] == 1.0


@pytest.mark.parametrize("body, message", [
    ("data: data.jsonl\ntemplat: '{question}'\n", r"unknown keys \['templat'\]"),
    ("fields: {question: q}\n", "'data'.*required"),
    ("data: missing.jsonl\n", "missing.jsonl not found"),
    ("data: data.jsonl\nscorer: maths\n", "unknown scorer 'maths'"),
    ("data: data.jsonl\nextract: boxd\n", "extract must be one of"),
    ("data: data.jsonl\nfields: {questoin: p.text}\n", r"unknown fields \['questoin'\]"),
    ("data: data.jsonl\nfields: question\n", "'fields' must map"),
    ("- just a list\n", "expected a mapping"),
    ("data: [unclosed\n", "not valid YAML"),
])
def test_custom_bad_spec(custom, body, message):
    (custom / "spec.yaml").write_text(body)
    with pytest.raises(ValueError, match=message):
        load_benchmark(f"custom:{custom / 'spec.yaml'}")


def test_custom_bad_record_names_the_line(custom):
    (custom / "spec.yaml").write_text("data: data.jsonl\nfields: {question: p.txt}\n")
    # found when the spec loads (the first record is checked), not halfway through a run
    with pytest.raises(ValueError, match=r"data.jsonl line 1: field 'p.txt' is missing.*there is: text\)"):
        load_benchmark(f"custom:{custom / 'spec.yaml'}")
    with pytest.raises(ValueError, match="file not found"):
        load_benchmark(f"custom:{custom / 'nope.yaml'}")


def test_data_is_package_data_not_shared():
    f = data_file("gsm8k_test.jsonl.gz")
    assert f.is_file() and "shared" not in str(f)
    assert (data_file("LICENSES.md")).read_text().count("|") > 20


def test_benchmarks_load_from_the_built_wheel(tmp_path):
    """The wheel carries the data: installed alone, it loads benchmarks through
    importlib.resources (python -S: the editable install of the tree cannot answer)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("ember-*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    deps = [p for p in sys.path if p.endswith("site-packages")]
    code = (f"import sys; sys.path = [{str(tmp_path / 'site')!r}] + sys.path + {deps!r}\n"
            "from ember.evaluate import benchmarks as b\n"
            f"assert b.__file__.startswith({str(tmp_path)!r}), b.__file__\n"
            "print(len(b.load_benchmark('gsm8k').load()), len(b.load_benchmark('mawps').load()))")
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1319", "1557"]
