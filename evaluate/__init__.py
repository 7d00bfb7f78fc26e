"""ember.evaluate: benchmarks, task records and the scorers that judge a response.

    from ember.evaluate import load_benchmark, get_scorer

    bench = load_benchmark("mawps")                 # or "custom:spec.yaml"
    item = bench.load()[0]                          # an Item: messages + gold
    get_scorer(bench.scorer)("... so \\boxed{7}", item)   # {"score": 1.0, "extracted": "7"}

Names are imported on first use. docs/python-api.md has the whole public API with examples.
"""

from ember.adp.dotted import lazy_exports

# public name -> "module:attribute"
_EXPORTS = {
    "load_benchmark": "ember.evaluate.benchmarks:load_benchmark",
    "BENCHMARKS": "ember.evaluate.benchmarks:BENCHMARKS",
    "Benchmark": "ember.evaluate.benchmarks:Benchmark",
    "Item": "ember.evaluate.item:Item",
    "get_scorer": "ember.evaluate.scoring:get_scorer",
    "SCORERS": "ember.evaluate.scoring:SCORERS",
    "score_math": "ember.evaluate.scoring:score_math",
    "score_qa": "ember.evaluate.scoring:score_qa",
    "score_code": "ember.evaluate.scoring:score_code",
    "math_equal": "ember.evaluate.scoring:math_equal",
    "read_tasks": "ember.evaluate.tasks:read_tasks",
    "task_item": "ember.evaluate.tasks:task_item",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
