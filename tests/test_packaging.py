"""The built wheel carries every subpackage and the schemas, importable from the wheel."""

import subprocess
import sys
import zipfile

from tests.conftest import ROOT

SUBPACKAGES = ["ember.cli", "ember.adp", "ember.adp.shapes", "ember.adp.export",
               "ember.llm", "ember.synth", "ember.train", "ember.train.selectors", "ember.evaluate", "ember.schemas"]


def test_wheel_contains_and_imports_everything(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("ember-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ember/schemas/adp.schema.json" in names
    assert any(n.startswith("ember/adp/mappings/") and n.endswith(".yaml") for n in names)
    assert "ember/llm/templates/chatml_tools.jinja" in names
    assert "ember/evaluate/prompts/search_agent.md" in names
    assert not any(n.startswith(("cli/", "train/", "evaluate/")) for n in names)
    # Install the wheel into a bare folder and import from it alone: `python -S` skips
    # the .pth files, so the editable install of the source tree cannot answer.
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    deps = [p for p in sys.path if p.endswith("site-packages")]
    code = (
        "import importlib, sys\n"
        f"sys.path = [{str(site)!r}] + sys.path + {deps!r}\n"
        f"for name in {SUBPACKAGES!r}:\n"
        "    mod = importlib.import_module(name)\n"
        f"    assert mod.__file__.startswith({str(site)!r}), mod.__file__\n"
        "from ember.schemas import load_schema\n"
        "assert load_schema('adp')['title'] == 'ADP trajectory'\n"
        "from ember.adp.mapping import load_converter\n"
        "load_converter('agenttuning_os')\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
