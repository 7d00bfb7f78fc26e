"""The Python API as docs/python-api.md and the README show it: every example runs as it
stands, and the exported names are what the page lists."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = (ROOT / "docs" / "python-api.md").read_text()
README = (ROOT / "README.md").read_text()
EXAMPLES = re.findall(r"```python\n(.*?)```", PAGE, re.S) + re.findall(
    r"```python\n(.*?)```", README.split("## Use it from Python", 1)[1].split("\n## ", 1)[0],
    re.S)


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_example_runs(code, tmp_path):
    # From a fresh directory that sees the repository's examples/ (as a user's checkout
    # does), so the files an example writes land in tmp_path.
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "an example prints what it shows"


def test_page_has_examples():
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("package", ["ember.adp", "ember.evaluate", "ember.train.selectors"])
def test_exported_names_are_listed_and_resolve(package):
    code = (f"import {package} as p; print(' '.join(sorted(p.__all__)));"
            "[getattr(p, n) for n in p.__all__]")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in PAGE.splitlines() if line.startswith(f"| `{package}`"))
    for name in proc.stdout.split():
        assert f"`{name}`" in row, f"{package}.{name} is exported but not in the page's table"


def test_importing_the_api_packages_is_cheap():
    # The CLI imports ember.adp (for its config module) at start-up: the package itself
    # must not pull in the converters, numpy or the scorers.
    code = ("import sys, ember.adp, ember.evaluate;"
            "print(' '.join(m for m in ('ember.adp.convert', 'ember.adp.mapping', 'numpy',"
            " 'ember.evaluate.scoring', 'ember.evaluate.benchmarks') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_unknown_name_is_an_attribute_error():
    import ember.adp

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ember.adp.nope  # noqa: B018
