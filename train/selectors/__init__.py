"""Task selectors for RFT: which B tasks form each generation batch.

    from ember.train.selectors import load_selector
    sel = load_selector("bots", n_tasks=len(tasks), ref_weak=p_base, ref_strong=p_big, seed=0)
    ids = sel.select(step, batch_size); ...; sel.update(ids, successes, counts)

`SELECTORS` maps each built-in name to "module:Class"; `load_selector` also takes any
"package.module:Class" (or "package.module.Class") path to a class that follows
`Selector` (a Protocol; subclass `BaseSelector` to get timing, metrics and state for
free). Compare them with `ember bench selectors`; docs/python-api.md shows one driving
your own training loop.
"""

from __future__ import annotations

from ember.adp.dotted import load_function
from ember.train.selectors.base import BaseSelector, Selector

__all__ = ["SELECTORS", "BaseSelector", "Selector", "load_selector", "selector_class"]

SELECTORS = {
    "uniform": "ember.train.selectors.uniform:UniformSelector",
    "sequential": "ember.train.selectors.sequential:SequentialSelector",
    "offline-easy2hard": "ember.train.selectors.offline_easy2hard:OfflineEasy2HardSelector",
    "bots": "ember.train.selectors.bots:BotsSelector",
    "sec": "ember.train.selectors.sec:SecSelector",
    "greso": "ember.train.selectors.greso:GresoSelector",
}


def selector_class(name_or_path: str) -> type:
    """The class behind a built-in name (``_`` and ``-`` alike) or a dotted path."""
    path = SELECTORS.get(name_or_path.replace("_", "-"), name_or_path)
    return load_function(path, what="selector", builtins=list(SELECTORS))


def load_selector(name_or_path: str, **kwargs):
    """Build a selector: ``n_tasks``, per-task columns, ``seed`` and hyper-parameters."""
    return selector_class(name_or_path)(**kwargs)
