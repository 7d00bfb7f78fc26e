#!/usr/bin/env bash
# Gather what benchmarks/gpu_check.sh needs on an offline GPU machine (run it here, where
# the package registries are reachable):
#
#   bash benchmarks/gpu_prepare.sh          # -> .whl/ (wheels) and .gpu/smollm2-shape/
#
# .whl/ holds the packages the GPU image lacks (its python3 is 3.12 with torch,
# transformers, accelerate, peft, pyarrow, pandas, matplotlib, rich, typer, pyyaml), for
# CPython 3.12 on x86-64; .gpu/smollm2-shape/ holds the embedded model's config,
# tokenizer and chat template without its weights (the 98 MB GGUF does not fit in what
# travels: gpu_check.sh builds a model of the same shape with random weights). Both are
# ignored by git; together they are about 20 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p .whl .gpu/smollm2-shape
for d in /.whl/ /.gpu/; do grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
rm -f .whl/*.whl
# Exact versions: the ones this checkout is tested with, where the image lacks them.
pins=$($PY - <<'PY'
from importlib.metadata import version
names = ["trl", "datasets", "dill", "multiprocess", "orjson", "jsonschema",
         "jsonschema-specifications", "referencing", "rpds-py", "zstandard", "math-verify",
         "latex2sympy2_extended", "antlr4-python3-runtime", "openai", "distro", "jiter",
         "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "sniffio",
         "bm25s", "gguf"]
print(" ".join(f"{n}=={version(n)}" for n in names))
PY
)
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl $pins
# ember itself, as a wheel (the image has setuptools, but building there is one more step).
$PY -m pip wheel -q --no-deps --no-build-isolation -w .whl .
$PY - <<'PY'
import shutil
from pathlib import Path
from ember.llm.models import resolve_model
src, dst = Path(resolve_model("smollm2")), Path(".gpu/smollm2-shape")
for f in src.iterdir():
    if f.suffix != ".safetensors":
        shutil.copy(f, dst / f.name)
print("model shape:", sorted(p.name for p in dst.iterdir()))
PY
du -sh .whl .gpu
