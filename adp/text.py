"""The one rule for text patterns in mappings: every prefix, suffix, pattern, phrase and
replacement key is a Python regular expression.

- a prefix is matched at the start of the text (``re.match``) and the match is cut;
- a suffix is matched at the end of the text and the match is cut;
- a replacement table maps pattern -> replacement, applied to every match (``re.sub``,
  so the replacement may name groups: ``\\1``);
- phrases and other patterns are searched anywhere (``re.search``).

Shapes compile their options once with these helpers. A pattern without regex syntax is
applied with ``str`` methods, which give the same result faster.
"""

from __future__ import annotations

import re

Replacements = list[tuple["re.Pattern | str", str]]


_META = frozenset(".^$*+?{}[]\\|()")


def _literal(pattern: str) -> bool:
    """Whether ``pattern`` matches only its own text (no regex syntax in it)."""
    return not _META.intersection(pattern)


def compile_replacements(table: dict[str, str]) -> Replacements:
    """pattern -> replacement, compiled; literal patterns stay strings."""
    out: Replacements = []
    for pattern, repl in table.items():
        if _literal(pattern) and "\\" not in repl:
            out.append((pattern, repl))
        else:
            out.append((re.compile(pattern), repl))
    return out


def replace_all(table: Replacements, text: str) -> str:
    """``text`` with every replacement of ``table`` applied, in order."""
    for pattern, repl in table:
        text = text.replace(pattern, repl) if isinstance(pattern, str) else pattern.sub(repl, text)
    return text


def compile_prefix(pattern: str | None) -> re.Pattern | None:
    """A prefix option compiled (None when unset), for ``cut_prefix``."""
    return re.compile(pattern) if pattern else None


def cut_prefix(prefix: re.Pattern | None, text: str) -> tuple[str, bool]:
    """(text without the prefix, whether it was there)."""
    m = prefix.match(text) if prefix is not None else None
    return (text[m.end():], True) if m else (text, False)


def compile_suffix(pattern: str | None) -> re.Pattern | None:
    """A suffix option compiled (None when unset), for ``cut_suffix``."""
    # (?:...)\Z: the suffix must reach the very end; search finds its leftmost start
    return re.compile(f"(?:{pattern})\\Z") if pattern else None


def cut_suffix(suffix: re.Pattern | None, text: str) -> str:
    """``text`` without the suffix at its end (unchanged when it is not there)."""
    m = suffix.search(text) if suffix is not None else None
    return text[:m.start()] if m else text


def compile_phrases(phrases: list[str], flags: int = 0) -> re.Pattern | None:
    """One pattern searching for any of ``phrases``."""
    return re.compile("|".join(f"(?:{p})" for p in phrases), flags) if phrases else None
