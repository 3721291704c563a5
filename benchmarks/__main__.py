"""``python -m benchmarks`` (or ``jaxnet bench``): autodiff vs hand-written vs raw JAX.

Cases (``--case``, repeatable: a case name, a family, ``seed`` or ``all``):

* ``dense``: softmax regression ``Dense(10)`` on 784 inputs, batch 128 and 1024.
* ``mlp``: the MLP 784-512-512-10 (ReLU), batch 128 and 1024.
* whatever :mod:`benchmarks.cases_layers` adds, when present.
* ``peers``: the MLP 784-512-512-10 as jaxnet vs raw JAX vs Flax NNX, Equinox and
  PyTorch eager (each where importable), batch 1, 128 and 1024, plus first-call
  compile and fresh-process build + init times; see ``benchmarks/peers.py``. Not in
  ``--quick`` unless named.
* ``deep``: a GPT-style ``jaxnet.Stack`` of N ``TransformerBlock(4, 256, causal=True)``
  on ``(8, 128, 256)``: trace + compile seconds of the gradient step vs N (1-12),
  scanned vs unrolled; XLA's memory analysis and step time at N = 12 with remat off,
  on and ``"dots_saveable"``; see ``benchmarks/deep.py``. Not in ``--quick`` unless
  named (then width 64, N in 1 and 4).
* ``verify``: the verification targets of ``jaxnet.testing.check_grads`` (float64:
  time on a 10M-parameter MLP and the tiny GPT, detection power, float32, localisation,
  exhaustive mode, the transpose identity, HVPs, the Taylor test), each measured figure
  beside its target, met or NOT met; see ``benchmarks/verify.py``. Not in ``--quick``
  unless named (then smaller sizes, bias-free MLPs and no GPT).
* ``seed``: logistic regression, 2 features, 100 samples, 100 full-batch SGD epochs:
  a per-step jitted Python loop vs the fused ``lax.scan`` (``jaxnet.train_scan``) vs
  NumPy by hand (vs PyTorch eager where importable); see ``benchmarks/seed.py``.

Every case (softmax cross-entropy, one SGD step) is timed four ways: the forward, the
``jax.grad`` step, the hand-written step (``jaxnet.analytic``) and the same model in
raw JAX, after proving their gradients agree; see :mod:`benchmarks._runner`. The
machine's matmul peak is measured first, in the same run.

``--quick`` is a smoke run: fewer repeats, and only the cases marked quick (a case
named exactly by ``--case`` runs anyway). ``--out DIR`` writes ``results.json``,
``results.md`` and PNG plots (with matplotlib).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from typing import Any

from . import _report
from ._peak import matmul_peak, peak_line
from ._runner import RefusedToTime, environment, run_case
from .cases import CASES, DEEP, PEERS, SEED, VERIFY, select
from .seed import format_seed, seed_case

__all__ = ["environment", "main"]


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--case",
        action="append",
        default=None,
        metavar="NAME",
        help="a case, a family or 'seed' (repeatable; default: all)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: fewer repeats, only quick cases (about a minute)",
    )
    parser.add_argument(
        "--out", default=None, help="write results.json, results.md and plots here"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="interleaved rounds per case"
    )
    parser.add_argument(
        "--list", action="store_true", help="list the cases and families, then exit"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the selected cases, print the tables, write the results with ``--out``.

    Returns:
      0 when every case ran; 1 when a case was refused (its gradients disagree).
    """
    args = _parser().parse_args(argv)
    if args.list:
        for name in CASES:
            print(name)
        print(DEEP)
        print(VERIFY)
        print(PEERS)
        print(SEED)
        return 0
    names = select(args.case)
    exact = set(args.case or [])
    repeats = args.repeats or (5 if args.quick else 15)
    min_time = 0.01 if args.quick else 0.05
    env = environment()
    print(
        f"jaxnet {env['jaxnet']}, jax {env['jax']}, jaxlib {env['jaxlib']}, "
        f"{env['backend']} ({env['device']}), CPU {env['cpu']}, "
        f"{env['cpu_threads']} threads"
    )
    t0 = time.perf_counter()
    peak = None
    if any(n not in (SEED, PEERS, DEEP, VERIFY) for n in names):
        _progress("[peak] matmul float32 at n = 512, 1024, 2048 ...")
        peak = matmul_peak(repeats=3 if args.quick else 7, min_time=min_time)
        print(peak_line(peak))
    rows: list[dict[str, Any]] = []
    refused: list[str] = []
    total = len(names)
    for i, name in enumerate(names, 1):
        tag = f"[{i}/{total}] {name}"
        if name == SEED:
            _progress(f"{tag} ...")
            t = time.perf_counter()
            row = seed_case(**({"repeats": 9, "min_time": 0.02} if args.quick else {}))
            rows.append({**env, **row})
            _progress(f"{tag} done in {time.perf_counter() - t:.1f} s")
            continue
        if name == VERIFY:  # slow: in --quick only when named (then smaller sizes)
            if args.quick and name not in exact:
                _progress(f"{tag} skipped (not a quick case)")
                continue
            from .verify import verify_case

            _progress(f"{tag}: gradient checker verification targets ...")
            t = time.perf_counter()
            rows.append({**env, **verify_case(args.quick, say=_progress)})
            _progress(f"{tag} done in {time.perf_counter() - t:.1f} s")
            continue
        if name in (PEERS, DEEP):  # slow families: in --quick only when named
            if args.quick and name not in exact:
                _progress(f"{tag} skipped (not a quick case)")
                continue
            if name == PEERS:
                from .peers import peers_case

                label = "MLP vs raw JAX, Flax NNX, Equinox, PyTorch"
                run = functools.partial(
                    peers_case,
                    repeats=repeats,
                    min_time=min_time,
                    init_runs=2 if args.quick else 3,
                    compile_repeats=2 if args.quick else 5,
                )
            else:
                from .deep import deep_case

                label = "Stack of transformer blocks, scan vs unroll, remat"
                run = functools.partial(
                    deep_case,
                    quick=args.quick,
                    repeats=args.repeats or (3 if args.quick else 7),
                    min_time=min_time,
                    compile_repeats=1 if args.quick else 3,
                    say=_progress,
                )
            _progress(f"{tag}: {label} ...")
            t = time.perf_counter()
            try:
                row = run()
            except RefusedToTime as e:
                _progress(f"{tag} REFUSED: {e}")
                refused.append(name)
                rows.append({**env, "case": name, "refused": str(e)})
                continue
            rows.append(row)
            _progress(f"{tag} done in {time.perf_counter() - t:.1f} s")
            continue
        case = CASES[name](args.quick)
        if args.quick and not case.quick and name not in exact:
            _progress(f"{tag} skipped (not a quick case)")
            continue
        _progress(f"{tag}: {case.description} ...")
        t = time.perf_counter()
        try:
            row = run_case(
                case,
                repeats=repeats,
                min_time=min_time,
                peak_gflops=peak["gflops"]["peak"] if peak else None,
            )
        except RefusedToTime as e:
            _progress(f"{tag} REFUSED: {e}")
            refused.append(name)
            rows.append({**env, "case": name, "refused": str(e)})
            continue
        row["peak"] = peak
        rows.append(row)
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in row["max_rel_grad_diff"].items())
        r = row["ratios"]
        _progress(
            f"{tag} done in {time.perf_counter() - t:.1f} s: max rel grad diff vs "
            f"autodiff {diffs}; autodiff/hand {r.get('autodiff/hand', {}).get('median', 0):.3f}"
        )
    if any(_report._is_case_row(r) for r in rows):
        print()
        print(_report.case_table(rows))
    over = _report.over_peak(rows)
    if over:
        print()
        print(_report.over_peak_warning(over))
    extras = _report.extras_table(rows)
    if extras:
        print()
        print(extras)
    peers = _report.peers_table(rows)
    if peers:
        print()
        print(peers)
    deep = _report.deep_table(rows)
    if deep:
        print()
        print(deep)
    for row in rows:
        if row.get("case") == _report.SEED_CASE:
            print()
            print(format_seed(row))
    verify = [r for r in rows if r.get("case") == VERIFY and "targets" in r]
    if verify:
        from .verify import format_verify

        for row in verify:
            print()
            print(format_verify(row))
    if refused:
        print(f"\nrefused (gradients disagree, not timed): {', '.join(refused)}")
    if args.out:
        paths = _report.write(args.out, rows, env, peak)
        if verify:  # results.md: the verify table after the others
            with open(paths["markdown"], "a") as fh:
                fh.write("".join(f"\n{format_verify(r)}\n" for r in verify))
        print(f"\nwrote {paths['json']} and {paths['markdown']}")
    _progress(f"total {time.perf_counter() - t0:.1f} s")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
