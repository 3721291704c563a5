"""``jaxnet bench`` (or ``python -m jaxnet.bench``): autodiff vs hand-written vs raw JAX.

Cases (``--case``, repeatable: a case name, a family, ``seed`` or ``all``):

* ``dense``: softmax regression ``Dense(10)`` on 784 inputs, batch 128 and 1024.
* ``mlp``: the MLP 784-512-512-10 (ReLU), batch 128 and 1024.
* the per-layer cases (``layers``: ``layernorm``, ``layernorm_dx``, ``mha``,
  ``mha_bf16``, ``gpt_block``, ``conv2d``, ``lstm``), one module per layer family in
  :mod:`jaxnet.bench.cases`; ``mha_bf16`` adds the cuDNN attention on a GPU.
* ``peers``: the MLP 784-512-512-10 as jaxnet vs raw JAX vs Flax NNX, Equinox and
  PyTorch eager (each where importable), batch 1, 128 and 1024, plus first-call
  compile and fresh-process build + init times; see ``jaxnet/bench/peers.py``. Not in
  ``--quick`` unless named.
* ``deep``: a GPT-style ``jaxnet.Stack`` of N ``TransformerBlock(4, 256, causal=True)``
  on ``(8, 128, 256)``: trace + compile seconds of the gradient step vs N (1-12),
  scanned vs unrolled; XLA's memory analysis and step time at N = 12 with remat off,
  on and ``"dots_saveable"``; see ``jaxnet/bench/deep.py``. Not in ``--quick`` unless
  named (then width 64, N in 1 and 4).
* ``verify``: the verification targets of ``jaxnet.testing.check_grads`` (float64:
  time on a 10M-parameter MLP and the tiny GPT, detection power, float32, localisation,
  exhaustive mode, the transpose identity, HVPs, the Taylor test), each measured figure
  beside its target, met or NOT met; see ``jaxnet/bench/verify.py``. Not in ``--quick``
  unless named (then smaller sizes, bias-free MLPs and no GPT).
* ``seed``: logistic regression, 2 features, 100 samples, 100 full-batch SGD epochs:
  a per-step jitted Python loop vs the fused ``lax.scan`` (``jaxnet.train_scan``) vs
  NumPy by hand (vs PyTorch eager where importable); see ``jaxnet/bench/seed.py``.

Every case (softmax cross-entropy, one SGD step) is timed four ways: the forward, the
``jax.grad`` step, the hand-written step (``jaxnet.analytic``) and the same model in
raw JAX, after proving their gradients agree; see :mod:`jaxnet.bench._runner`. The
machine's matmul peak is measured first, in the same run.

``--quick`` is a smoke run: fewer repeats, and only the cases marked quick (a case
named exactly by ``--case`` runs anyway). ``--out DIR`` writes ``results.json``,
``results.md`` and PNG plots (with matplotlib).

``--module PKG.MOD`` (repeatable; or a path to a ``.py`` file) runs your own cases
instead of the built-in ones: the module declares ``CASES``, a list whose items are
:class:`jaxnet.bench.Case` objects or functions ``build(quick: bool) -> Case``; with
``--case`` as well, the named built-in and module cases run. Each module case goes
through the same agreement gate, timing and report as a built-in one.

Every result row carries the backend, the device and the dtype.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from typing import Any

from . import _report
from ._case import Case
from ._peak import matmul_peak, peak_line
from ._runner import RefusedToTime, environment, run_case
from .cases import CASES, DEEP, PEERS, SEED, VERIFY, select
from .seed import format_seed, seed_case

__all__ = ["environment", "main"]


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxnet bench",
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
    parser.add_argument(
        "--module",
        action="append",
        default=None,
        metavar="MOD",
        help="run the cases a module declares (CASES: jaxnet.bench.Case objects or "
        "build(quick) functions): a dotted name importable from the current "
        "directory, or a path to a .py file; repeatable",
    )
    parser.add_argument(
        "--no-peak",
        action="store_true",
        help="skip the matmul peak measurement (no fractions of peak)",
    )
    return parser


def _import(spec: str) -> Any:
    """The module ``spec`` names: a dotted name (from the current directory too) or a
    path to a ``.py`` file.

    Raises:
      SystemExit: when it cannot be imported, naming it and the error.
    """
    import importlib
    import importlib.util
    import os
    from pathlib import Path

    try:
        if spec.endswith(".py"):
            loader = importlib.util.spec_from_file_location(Path(spec).stem, spec)
            if loader is None or loader.loader is None:
                raise ImportError(f"cannot load {spec}")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            # As `python -m` does: modules in the current directory are importable.
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(spec)
    except Exception as exc:  # noqa: BLE001 - reported as a usage error
        raise SystemExit(
            f"jaxnet bench --module {spec}: cannot import it ({type(exc).__name__}: "
            f"{exc}). Pass a dotted module name importable from this directory or a "
            "path to a .py file."
        ) from None
    return module


def module_cases(spec: str) -> dict[str, Any]:
    """``name -> build(quick) -> Case`` for the ``CASES`` a module declares.

    Raises:
      SystemExit: when the module cannot be imported, declares no ``CASES``, an item
        is neither a :class:`Case` nor callable, or a name repeats a built-in case's.
    """
    module = _import(spec)
    items = getattr(module, "CASES", None)
    if items is None or isinstance(items, (str, bytes)) or not len(items):
        raise SystemExit(
            f"jaxnet bench --module {spec}: expected CASES, a non-empty list of "
            "jaxnet.bench.Case objects or functions build(quick: bool) -> Case; "
            + ("found none." if items is None else f"got {items!r}.")
        )
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        if isinstance(item, Case):
            name, build = item.name, (lambda quick, c=item: c)
        elif callable(item):
            case = item(False)
            if not isinstance(case, Case):
                raise SystemExit(
                    f"jaxnet bench --module {spec}: CASES[{i}] ({item!r}) returned "
                    f"{type(case).__name__}, not a jaxnet.bench.Case."
                )
            name, build = case.name, item
        else:
            raise SystemExit(
                f"jaxnet bench --module {spec}: CASES[{i}] is a "
                f"{type(item).__name__}; expected a jaxnet.bench.Case or a function "
                "build(quick: bool) -> Case."
            )
        if name in CASES or name in out:
            raise SystemExit(
                f"jaxnet bench --module {spec}: case name {name!r} is already taken "
                f"({'a built-in case' if name in CASES else 'twice in CASES'}); "
                "give each case a unique name."
            )
        out[name] = build
    return out


def _resolve(
    values: list[str] | None, user: dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    """``(names, builders)``: what ``--case`` and ``--module`` select, in run order."""
    if not user:
        return select(values), CASES
    builders = {**CASES, **user}
    if not values:
        return list(user), builders
    user_fams = {n: {n.split("_", 1)[0], user[n](True).family} for n in user}
    from_user = [
        n for n in user if any(v in (n, "all") or v in user_fams[n] for v in values)
    ]
    rest = [
        v
        for v in values
        if v not in user and not any(v in f for f in user_fams.values())
    ]
    return (select(rest) if rest else []) + from_user, builders


def _tag(row: dict[str, Any], env: dict[str, Any], dtype: str) -> dict[str, Any]:
    """Every row names its backend, device and dtype."""
    for k in ("backend", "device"):
        row.setdefault(k, env[k])
    row.setdefault("dtype", dtype)
    return row


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
        for spec in args.module or []:
            for name in module_cases(spec):
                print(f"{name} (from {spec})")
        return 0
    user = {n: b for spec in args.module or [] for n, b in module_cases(spec).items()}
    names, builders = _resolve(args.case, user)
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
    if not args.no_peak and any(n not in (SEED, PEERS, DEEP, VERIFY) for n in names):
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
            row = seed_case(repeats=9, min_time=0.02) if args.quick else seed_case()
            rows.append(_tag({**env, **row}, env, "float32"))
            _progress(f"{tag} done in {time.perf_counter() - t:.1f} s")
            continue
        if name == VERIFY:  # slow: in --quick only when named (then smaller sizes)
            if args.quick and name not in exact:
                _progress(f"{tag} skipped (not a quick case)")
                continue
            from .verify import verify_case

            _progress(f"{tag}: gradient checker verification targets ...")
            t = time.perf_counter()
            rows.append(
                _tag({**env, **verify_case(args.quick, say=_progress)}, env, "float64")
            )
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
                rows.append(
                    {**env, "case": name, "dtype": "float32", "refused": str(e)}
                )
                continue
            rows.append(_tag(row, env, "float32"))
            _progress(f"{tag} done in {time.perf_counter() - t:.1f} s")
            continue
        case = builders[name](args.quick)
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
            rows.append({**env, "case": name, "dtype": case.dtype, "refused": str(e)})
            continue
        row["peak"] = peak
        rows.append(row)
        diffs = ", ".join(
            f"{k} {v:.1e}"
            for k, v in row["max_rel_grad_diff"].items()
            if k != "autodiff"
        )
        ratio = row["ratios"].get("autodiff/hand")  # absent without a "hand" step
        _progress(
            f"{tag} done in {time.perf_counter() - t:.1f} s: max rel grad diff vs "
            f"autodiff: {diffs or 'nothing else to compare'}"
            + (f"; autodiff/hand {ratio['median']:.3f}" if ratio else "")
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
