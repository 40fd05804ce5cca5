"""Our single random-effects fit against the Python peers, timed in one process on the same data.

    python benchmarks/bench_peers.py            # k = 10, 1 000, 100 000 and a loop of 10 000 fits
    python benchmarks/bench_peers.py --quick    # fewer repeats, a loop of 1 000 fits

Peers (optional; ``pip install .[bench]``, statsmodels is a core dependency): pimeta
(``pimeta.rma``, a port of metafor), metapipe-kit (``metapipe.models.random_effects``) and
statsmodels (``statsmodels.stats.meta_analysis.combine_effects``). A peer that is not installed,
or fails on a size (pimeta forms k x k matrices), is skipped with the reason printed.

What is timed (wall clock, best of --repeats; data generation excluded):

* ours "full": ``fit_random_effects(method="REML", test="knha")`` -- REML, Knapp-Hartung CI,
  prediction interval and the Q-profile CI of tau^2 (what the workflow computes per window);
* ours like-for-like: the same estimator as the peer call, z test, no tau^2 CI
  (``compute_tau2_ci=False``), since no peer computes one;
* each peer's own call with that estimator.

"ratio" = peer time / our time: > 1 means ours is faster. Ratios are measured in this run only;
the machine is shared, so absolute times vary with its load (printed first).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
from _common import machine_line

from timecourse_meta import fit_random_effects


def peers() -> tuple[dict[str, Callable], list[str]]:
    """{name: fn(y, v) -> object} of the installed peers, and the reasons for those skipped."""
    found: dict[str, Callable] = {}
    skipped: list[str] = []
    try:
        from statsmodels.stats.meta_analysis import combine_effects

        found["statsmodels DL"] = lambda y, v: combine_effects(y, v, method_re="dl")
        found["statsmodels PM"] = lambda y, v: combine_effects(y, v, method_re="pm")
    except ImportError as err:
        skipped.append(f"statsmodels: not installed ({err})")
    try:
        from metapipe.models import random_effects

        for m in ("dl", "reml", "pm"):
            found[f"metapipe-kit {m.upper()}"] = lambda y, v, m=m: random_effects(
                y, v, tau_method=m
            )
    except ImportError as err:
        skipped.append(f"metapipe-kit: not installed ({err}); pip install metapipe-kit")
    try:
        import pimeta

        for m in ("DL", "REML", "PM"):
            found[f"pimeta {m}"] = lambda y, v, m=m: pimeta.rma(y, v, method=m)
    except ImportError as err:
        skipped.append(f"pimeta: not installed ({err}); pip install pimeta")
    return found, skipped


def best_time(fn: Callable[[], object], repeats: int, budget: float = 1.0) -> float:
    """Seconds per call: best over ``repeats`` runs of a batch sized to ~budget/repeats s."""
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(budget / repeats / one))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def data(k: int, seed: int = 20261201) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + k)
    v = rng.uniform(0.01, 0.5, k)
    return rng.normal(0.3, np.sqrt(v + 0.1)), v


def ours(method: str) -> Callable:
    return lambda y, v: fit_random_effects(y, v, method=method, compute_tau2_ci=False)


def single_sizes(found: dict[str, Callable], sizes: list[int], repeats: int) -> None:
    full = lambda y, v: fit_random_effects(y, v, method="REML", test="knha")  # noqa: E731
    for k in sizes:
        y, v = data(k)
        budget = 1.0 if k < 10_000 else 3.0
        t_full = best_time(lambda y=y, v=v: full(y, v), repeats, budget)
        mine = {
            m: best_time(lambda m=m, y=y, v=v: ours(m)(y, v), repeats, budget)
            for m in ("DL", "REML", "PM")
        }
        print(f"\n## one fit, k = {k}")
        head = f"{'program / estimator':28s} {'ms':>10s} {'ours ms':>10s}"
        print(f"{head} {'ratio':>8s} {'vs full':>8s}")
        print(f"{'ours full (REML+KH+CIs)':28s} {1e3 * t_full:10.4f}")
        for m, t in mine.items():
            print(f"{'ours ' + m + ' (z, no tau2 CI)':28s} {1e3 * t:10.4f}")
        fastest = None
        for name, fn in found.items():
            method = name.split()[-1]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if name.startswith("pimeta") and k > 2000:
                        raise MemoryError("forms k x k matrices (74.5 GiB at k = 100 000)")
                    t = best_time(lambda fn=fn, y=y, v=v: fn(y, v), repeats, budget)
            except Exception as err:  # a peer failing is reported, not fatal
                print(f"{name:28s} skipped: {type(err).__name__}: {err}")
                continue
            fastest = t if fastest is None else min(fastest, t)
            print(
                f"{name:28s} {1e3 * t:10.4f} {1e3 * mine[method]:10.4f} "
                f"{t / mine[method]:8.2f} {t / t_full:8.2f}"
            )
        if fastest is not None:
            print(
                f"fastest peer / ours full = {fastest / t_full:.2f}; "
                f"fastest peer / ours fastest like-for-like = {fastest / min(mine.values()):.2f}"
            )


def loop(found: dict[str, Callable], n: int) -> None:
    rng = np.random.default_rng(7)
    V = rng.uniform(0.01, 0.5, (n, 10))
    T = rng.uniform(0.0, 0.5, n)
    Y = rng.normal(0.3, np.sqrt(V + T[:, None]))
    print(f"\n## loop of {n} fits, k = 10 (each data set different)")

    def run(fn: Callable) -> tuple[float, int]:
        fails = 0
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(n):
                try:
                    fn(Y[i], V[i])
                except Exception:  # counted: a fit that does not return a result
                    fails += 1
        return time.perf_counter() - t0, fails

    t_full, f_full = run(lambda y, v: fit_random_effects(y, v, method="REML", test="knha"))
    print(f"{'ours full (REML+KH+CIs)':28s} {t_full:8.2f} s  failures {f_full}")
    mine = {}
    for m in ("DL", "REML", "PM"):
        mine[m], fails = run(ours(m))
        print(f"{'ours ' + m + ' (z, no tau2 CI)':28s} {mine[m]:8.2f} s  failures {fails}")
    for name, fn in found.items():
        t, fails = run(fn)
        m = name.split()[-1]
        print(
            f"{name:28s} {t:8.2f} s  failures {fails}  ratio {t / mine[m]:.2f}  vs full "
            f"{t / t_full:.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 repeat, loop of 1 000 fits")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    repeats = 1 if args.quick else args.repeats
    print(machine_line())
    found, skipped = peers()
    for reason in skipped:
        print(f"skipped peer: {reason}")
    single_sizes(found, [10, 1_000, 100_000], repeats)
    loop(found, 1_000 if args.quick else 10_000)


if __name__ == "__main__":
    main()
