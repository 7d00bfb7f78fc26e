"""What a command did: the one summary shape every `ember` command returns and prints.

    from ember.adp.summary import Summary
    s = Summary("convert", read=10, produced=9, rejected=1,
                rejected_by_reason={"missing-field": 1}, output="o.jsonl",
                rejects="o.rejects.jsonl", details={"converted": 9})
    s.to_dict()    # what `--json` prints and `OUT.summary.json` holds

The common keys are ``command``, ``read`` (input units considered: records, items,
tasks, questions), ``produced`` (output units written), ``rejected`` and
``rejected_by_reason`` (ember.adp.rejects reasons), ``output`` and ``rejects`` (paths),
``seconds``; a command's own figures follow them at the top level (``details``).
``exit_code`` is 0 for a complete result, 1 when the run finished but its result is not
acceptable (too many rejects, nothing produced), with ``error`` saying why in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Summary:
    command: str
    read: int = 0
    produced: int = 0
    rejected: int = 0
    rejected_by_reason: dict = field(default_factory=dict)
    output: str | None = None
    rejects: str | None = None
    seconds: float = 0.0
    details: dict = field(default_factory=dict)
    exit_code: int = 0
    error: str | None = None
    warnings: list = field(default_factory=list)  # one line each, shown on stderr

    def require(self, min_yield: int, what: str) -> None:
        """Exit code 3 (partial result), saying why, when fewer than ``min_yield`` ``what``
        (questions, solutions, ...) were produced: the one --min-yield rule."""
        if self.produced < min_yield:
            self.exit_code = 3
            self.error = (f"{self.produced} {what} produced from {self.read} read, fewer than "
                          f"--min-yield {min_yield}" +
                          (f"; reasons in {self.rejects}" if self.rejects else ""))

    def __getitem__(self, key: str):
        """``summary["produced"]``: the same keys as ``to_dict`` (and the JSON)."""
        return self.to_dict()[key]

    def to_dict(self) -> dict:
        core = {"command": self.command, "read": self.read, "produced": self.produced,
                "rejected": self.rejected, "rejected_by_reason": dict(self.rejected_by_reason),
                "output": self.output, "rejects": self.rejects,
                "seconds": round(self.seconds, 3)}
        clash = set(core) & set(self.details)
        assert not clash, f"summary details repeat common keys {clash}"
        out = {**core, **self.details}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.exit_code:
            out.update(exit_code=self.exit_code, error=self.error)
        return out
