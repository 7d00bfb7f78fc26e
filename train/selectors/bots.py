"""`bots`: Bayesian online task selection (BOTS, Shen et al. 2025).

Each task k has a Beta(α_k, β_k) belief about the policy's success rate on it. After each
step, with m the number of rollouts a selected task actually got (the batch mean for
unselected tasks):

    α_k ← (1 − λ)·α_k + λ·α₀  +  s_k                  selected: explicit evidence
    β_k ← (1 − λ)·β_k + λ·β₀  +  f_k
    α_k ← (1 − λ)·α_k + λ·α₀  +  ρ·m·p̃_k              unselected: implicit evidence
    β_k ← (1 − λ)·β_k + λ·β₀  +  ρ·m·(1 − p̃_k)

λ forgets toward the prior (the policy keeps changing), s/f are observed successes and
failures. The plug-in p̃_k = clip(w_k + c·(v_k − w_k), 0, 1) interpolates between two
reference pass rates from offline runs, a weak one w (e.g. the starting model) and a
strong one v, with one global capability coefficient c fitted online: least squares of
the batch's observed pass rates on the interpolation, with the previous batches' sums kept
at weight `cap_memory`. ρ = 0 gives explicit evidence only (MoPPS-like); without the two
reference columns implicit evidence is off.

Selection: Thompson sampling draws p_k ~ Beta(α_k, β_k) (posterior mean with
`thompson=False`) and takes the B tasks nearest the target, or with τ > 0 samples B tasks
without replacement with weights exp(−|p_k − target|/τ) (Gumbel top-k). Above
`exact_beta_max` tasks a draw is a moment-matched normal (same mean and variance as the
Beta), which keeps select + update within a few ms at 100k tasks
(benchmarks/selector_overhead.py).

Try it on the simulated learner: `ember bench selectors --selectors uniform,bots`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ember.train.selectors.base import BaseSelector, column, hparam


@dataclasses.dataclass
class BotsConfig:
    lam: float = hparam(0.1, "λ, forgetting: each step every posterior moves this share of "
                             "the way back to the prior")
    rho: float = hparam(0.1, "ρ, implicit-evidence weight: an unselected task gains ρ·m "
                             "pseudo-rollouts at its plug-in estimate (0 = explicit only)")
    target: float = hparam(0.5, "success rate to aim for")
    thompson: bool = hparam(True, "draw p ~ Beta(α, β); False ranks by the posterior mean")
    tau: float = hparam(0.0, "τ: 0 takes the B tasks nearest the target; > 0 samples B "
                             "tasks with weights exp(-|p - target|/τ)")
    prior_alpha: float = hparam(1.0, "α₀ of the Beta prior")
    prior_beta: float = hparam(1.0, "β₀ of the Beta prior")
    cap_memory: float = hparam(0.5, "weight kept on earlier batches when fitting the "
                                    "capability coefficient (0 = this batch only)")
    exact_beta_max: int = hparam(20_000, "with more tasks than this, Thompson draws are "
                                         "moment-matched normals instead of exact Beta")


def smallest(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest scores (as argpartition gives them), without partitioning
    all n: a threshold from a strided sample keeps a few·k candidates that surely include
    them; if the guess keeps too few, the full argpartition answers."""
    n = len(score)
    if k == n:
        return np.argsort(score, kind="stable")
    if n > 64 * k:
        sample = score[::n // (16 * k)]
        j = 3 * k * len(sample) // n + 8            # ~3k of n expected at or below it
        threshold = np.partition(sample, j)[j]
        candidates = np.flatnonzero(score <= threshold)
        if len(candidates) >= k:
            return candidates[np.argpartition(score[candidates], k - 1)[:k]]
    return np.argpartition(score, k - 1)[:k]


class BotsSelector(BaseSelector):
    Config = BotsConfig
    columns = ("ref_weak", "ref_strong")
    _state = ("alpha", "beta", "capability", "cap_sums")

    def __init__(self, n_tasks: int, ref_weak=None, ref_strong=None, **kwargs):
        super().__init__(n_tasks, **kwargs)
        cfg = self.config
        if not (0 <= cfg.lam <= 1 and cfg.rho >= 0 and cfg.tau >= 0):
            raise ValueError("bots needs 0 <= lam <= 1, rho >= 0, tau >= 0")
        weak = column(ref_weak, self.n_tasks, "ref_weak")
        strong = column(ref_strong, self.n_tasks, "ref_strong")
        if (weak is None) != (strong is None):
            raise ValueError("bots needs both reference columns (weak and strong) or neither")
        self.ref_weak = weak
        self.ref_delta = None if weak is None else strong - weak
        self.implicit = weak is not None and cfg.rho > 0
        self.alpha = np.full(self.n_tasks, float(cfg.prior_alpha))
        self.beta = np.full(self.n_tasks, float(cfg.prior_beta))
        self.capability = 0.0                   # plug-in starts at the weak reference
        self.cap_sums = np.zeros(2)             # Σ x·y and Σ x·x of the running fit
        self._buffers = None

    def _scratch(self, i: int) -> np.ndarray:
        """Work arrays reused every step: fresh n-sized arrays cost page faults that, at
        100k+ tasks, take longer than the arithmetic."""
        if self._buffers is None:
            self._buffers = np.empty((4, self.n_tasks))
        return self._buffers[i]

    def _draw(self) -> np.ndarray:
        a, b, cfg = self.alpha, self.beta, self.config
        if not cfg.thompson:
            return np.divide(a, np.add(a, b, out=self._scratch(0)), out=self._scratch(0))
        if self.n_tasks <= cfg.exact_beta_max:
            return self.rng.beta(a, b)
        n = np.add(a, b, out=self._scratch(0))      # a normal with the Beta's mean and
        mean = np.divide(a, n, out=self._scratch(1))  # variance: mean(1 - mean)/(n + 1)
        sd = np.subtract(1.0, mean, out=self._scratch(2))
        sd *= mean
        n += 1.0
        sd /= n
        np.sqrt(sd, out=sd)
        draw = self.rng.standard_normal(out=self._scratch(0))
        draw *= sd
        draw += mean
        return draw

    def _select(self, step: int, batch_size: int) -> np.ndarray:
        cfg = self.config
        score = self._draw()
        score -= cfg.target
        np.abs(score, out=score)                            # distance to target: smaller wins
        if cfg.tau > 0:                                     # Gumbel top-k = sampling
            score /= cfg.tau
            noise = self.rng.random(out=self._scratch(3))
            np.log(noise, out=noise)
            np.negative(noise, out=noise)
            score += np.log(noise, out=noise)               # score - Gumbel noise
        return smallest(score, batch_size)

    def _update(self, ids: np.ndarray, successes: np.ndarray, counts: np.ndarray) -> None:
        cfg = self.config
        keep = 1.0 - cfg.lam
        self.alpha *= keep
        self.alpha += cfg.lam * cfg.prior_alpha
        self.beta *= keep
        self.beta += cfg.lam * cfg.prior_beta
        if not len(ids):
            return
        if self.implicit:
            pseudo = cfg.rho * float(counts.mean())             # ρ·m
            rate = successes / np.maximum(counts, 1)
            x = self.ref_delta[ids]
            y = rate - self.ref_weak[ids]
            self.cap_sums = cfg.cap_memory * self.cap_sums + np.array([x @ y, x @ x])
            if self.cap_sums[1] > 1e-12:
                self.capability = float(self.cap_sums[0] / self.cap_sums[1])
            plug = np.multiply(self.ref_delta, self.capability, out=self._scratch(3))
            plug += self.ref_weak
            np.clip(plug, 0.0, 1.0, out=plug)                   # p̃
            plug *= pseudo                                      # ρ·m·p̃
            picked = np.unique(ids)                             # selected: explicit only
            plug[picked] = 0.0
            self.alpha += plug
            self.beta += pseudo
            self.beta[picked] -= pseudo
            self.beta -= plug
        np.add.at(self.alpha, ids, successes)
        np.add.at(self.beta, ids, counts - successes)

    def posterior_mean(self) -> np.ndarray:
        return self.alpha / (self.alpha + self.beta)

    def metrics(self) -> dict:
        out = super().metrics()
        if self.implicit:
            out["capability"] = self.capability
        return out
