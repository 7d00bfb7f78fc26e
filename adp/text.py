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

# The standard library's regex parser (private), read by required_text. It only speeds
# up searches that would fail, so where it is missing or changes shape we do not skip.
try:
    from re import _constants as sre_constants, _parser as sre_parse  # Python 3.11+
except ImportError:
    try:
        import sre_constants
        import sre_parse
    except ImportError:
        sre_parse = None


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


# --- one regex for a list of rules tried in order ---------------------------------------

_LEADING_FLAGS = re.compile(r"\A((?:\(\?[aiLmsu]+\))+)")
_GROUP_NAME = re.compile(r"\(\?P<([A-Za-z_]\w*)>")
_NO_COMBINE = re.compile(r"\(\?P=|\(\?\(|\\[1-9]|\\g<|\(\?[a-zA-Z]*x")  # backrefs, verbose


class Alternatives:
    """Rules tried in order with ``re.match``, the first that matches wins, run as ONE
    alternation ``(?P<_r0>rule0)|(?P<_r1>rule1)|...`` (each rule's named groups renamed
    apart) and dispatched on the group that matched, instead of one ``match`` per rule.
    The regex engine tries the branches in order at the start of the text, backtracking
    inside each one, so the winner and its groups are those of the sequential loop.
    Patterns the combination cannot hold (back-references, verbose mode) are matched one
    by one, with the same result.

        rules = Alternatives(['go to (?P<location>.+)', 'look$'])
        rules.match("go to desk 1")  ->  (0, {"location": "desk 1"}, "go to desk 1")
    """

    def __init__(self, patterns: list[str]):
        self.patterns = [re.compile(p) for p in patterns]  # also checks each one
        self.names = [tuple(p.groupindex) for p in self.patterns]
        self.regex: re.Pattern | None = None
        self._slots: dict[int, tuple[int, tuple[tuple[str, int], ...]]] = {}
        try:
            self._combine(patterns)
        except (re.error, ValueError, OverflowError, RecursionError):
            self.regex = None

    def _combine(self, patterns: list[str]) -> None:
        if len(patterns) < 2 or any(_NO_COMBINE.search(p) for p in patterns):
            return
        parts = []
        for i, p in enumerate(patterns):
            m = _LEADING_FLAGS.match(p)
            flags = "".join(f[2:-1] for f in re.findall(r"\(\?[aiLmsu]+\)", m.group(1))) \
                if m else ""
            body = p[m.end():] if m else p
            body = _GROUP_NAME.sub(lambda g: f"(?P<_r{i}_{g.group(1)}>", body)
            parts.append(f"(?P<_r{i}>(?{flags}:{body}))" if flags else f"(?P<_r{i}>{body})")
        regex = re.compile("|".join(parts))
        slots = {}
        for i, names in enumerate(self.names):
            own = tuple((n, regex.groupindex[f"_r{i}_{n}"]) for n in names)
            if len(own) != len(names):
                raise ValueError("a group was not renamed")
            slots[regex.groupindex[f"_r{i}"]] = (i, own)
        if len(slots) != len(patterns):
            raise ValueError("rules lost")
        self.regex, self._slots = regex, slots

    def slots(self) -> dict[int, tuple[int, tuple[tuple[str, int], ...]]]:
        """The combined regex's branch group -> (rule index, ((name, group), ...)): a
        match's ``lastindex`` says which rule won and where its named groups are."""
        return dict(self._slots)

    def match(self, text: str) -> tuple[int, dict[str, str | None], str] | None:
        """(index of the first rule that matches at the start, its named groups, the text
        it matched), or None."""
        regex = self.regex
        if regex is not None:
            m = regex.match(text)
            if m is None:
                return None
            i, own = self._slots[m.lastindex]
            group = m.group
            return i, {n: group(k) for n, k in own}, group(m.lastindex)
        for i, pattern in enumerate(self.patterns):
            m = pattern.match(text)
            if m is not None:
                return i, m.groupdict(), m.group(0)
        return None


def required_text(pattern: re.Pattern, folded: bool = False) -> list[str]:
    """Literal text every match of ``pattern`` contains: the runs of plain characters in
    its top-level sequence and (nested) groups. Text lacking one cannot match, so the
    search, which can be slow to fail (a lazy ``.*?`` tried from every start), is skipped.

    Case-insensitive parts give nothing, unless ``folded``: then every run is given
    lower-cased, ASCII runs only, and holds for ASCII text lower-cased (a case-insensitive
    match of ASCII text is an ASCII-case match)."""
    if sre_parse is None or (pattern.flags & re.IGNORECASE and not folded):
        return []
    runs: list[str] = []

    def walk(items):
        run = ""
        for op, arg in items:
            if op is sre_constants.LITERAL:
                run += chr(arg)
                continue
            runs.append(run)
            run = ""
            if op is sre_constants.SUBPATTERN and (folded or not arg[1] & re.IGNORECASE):
                walk(arg[3])  # (group, added flags, removed flags, items)
        runs.append(run)

    try:
        walk(sre_parse.parse(pattern.pattern, pattern.flags))
    except Exception:  # a private API: never let it break conversion
        return []
    if folded:
        return [run.lower() for run in runs if run and run.isascii()]
    return [run for run in runs if run]
