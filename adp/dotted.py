"""Plugins by dotted path: the one loader for user code named on the command line.

    from ember.adp.dotted import load_object
    fn = load_object("my_pkg.rewards:score", what="reward", builtins=["math", "qa"])

Converters (``--from``), scorers, rewards and selectors are each a small dict of built-in
names plus ``package.module:attr`` (or ``package.module.attr``) paths to user code. A
path whose module does not exist is a ValueError that lists the built-ins; a module that
exists but fails to import shows the user's own error (its type and message), so a typo
inside the user's file is not reported as "unknown name".
"""

from __future__ import annotations

import importlib
from typing import Any


def split_path(spec: str, default_attr: str | None = None) -> list[tuple[str, str]]:
    """Candidate (module, attribute) pairs for ``spec``, the most explicit first."""
    if ":" in spec:
        module, _, attr = spec.partition(":")
        return [(module, attr)] if module and attr else []
    candidates = [(spec, default_attr)] if default_attr else []
    if "." in spec:
        module, _, attr = spec.rpartition(".")
        candidates.append((module, attr))
    return candidates


def load_object(spec: str, *, what: str, builtins: list[str] | tuple[str, ...] = (),
                default_attr: str | None = None) -> Any:
    """The object at ``spec``; ValueError with a one-line reason when there is none."""
    known = f"built-in: {', '.join(builtins)}; " if builtins else ""
    hint = f"{known}or a dotted path such as my_pkg.module:name"
    candidates = split_path(spec, default_attr)
    if not candidates:
        raise ValueError(f"unknown {what} {spec!r} ({hint})")
    for module_name, attr in candidates:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            missing = e.name or ""
            if module_name == missing or module_name.startswith(missing + "."):
                continue  # this candidate's module does not exist: try the next reading
            raise ValueError(f"{what} {spec!r}: importing {module_name} failed: "
                             f"{type(e).__name__}: {e}") from e
        except Exception as e:  # the user's module exists but breaks on import
            raise ValueError(f"{what} {spec!r}: importing {module_name} failed: "
                             f"{type(e).__name__}: {e}") from e
        if hasattr(module, attr):
            return getattr(module, attr)
        if len(candidates) == 1 or (module_name, attr) == candidates[-1]:
            raise ValueError(f"{what} {spec!r}: module {module_name} has no {attr!r}")
    raise ValueError(f"unknown {what} {spec!r}: no such module ({hint})")


def load_function(spec: str, *, what: str, builtins: list[str] | tuple[str, ...] = (),
                  default_attr: str | None = None):
    """``load_object`` for something that must be callable (a function or a class)."""
    obj = load_object(spec, what=what, builtins=builtins, default_attr=default_attr)
    if not callable(obj):
        raise ValueError(f"{what} {spec!r} is a {type(obj).__name__}, not a function or class")
    return obj


def lazy_exports(package: str, exports: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for a package whose public names (``name ->
    "module:attr"``) are imported on first use, so importing the package costs nothing."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = exports[name].split(":")
        namespace[name] = value = getattr(importlib.import_module(module), attr)
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
