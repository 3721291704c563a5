"""The ``jaxnet`` command line: ``jaxnet check``, ``jaxnet bench`` and ``jaxnet version``."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _fmt(x: float) -> str:
    return f"{x:.1e}"


def run_check(args: argparse.Namespace) -> int:
    """Verify every built-in layer and loss three ways; print the table; 0 iff all agree.

    The precision is entered for this call only (``jax.enable_x64``), so running the
    command in-process (``jaxnet._cli.main(["check"])``) leaves the caller's settings
    as they were.
    """
    import jax

    with jax.enable_x64(args.dtype == "float64"):
        return _run_check(args)


def _run_check(args: argparse.Namespace) -> int:
    import jax
    import jax.numpy as jnp

    from . import __version__
    from .testing._case import LayerCase
    from .testing._registry import (
        LAYER_CASES,
        LOSS_CASES,
        check_l2_penalty,
        check_layer,
        check_loss,
    )
    from .testing._tolerances import tolerance as tolerance_of

    dtype = jnp.dtype(args.dtype)
    builtin = [] if args.no_builtin else list(LAYER_CASES + LOSS_CASES)
    user = [c for m in args.module or [] for c in _user_cases(m)]
    selected = [c for c in builtin + user if not args.only or args.only in c.id]
    jobs: list[tuple[str, Any]] = [
        ("layer" if isinstance(c, LayerCase) else "loss", c) for c in selected
    ]
    if not args.no_builtin and (not args.only or args.only in "l2_penalty"):
        jobs.append(("loss", None))
    if not jobs:
        names = [c.id for c in builtin + user] + (
            [] if args.no_builtin else ["l2_penalty"]
        )
        close = difflib.get_close_matches(args.only or "", names, n=5, cutoff=0.4)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise SystemExit(
            f"jaxnet check: no case matches --only {args.only!r} among {len(names)} "
            f"cases.{hint} (--only selects the cases whose name contains it.)"
            if args.only
            else "jaxnet check: no case selected (see --only, --module)."
        )

    print(
        f"jaxnet {__version__} gradient check: jax.grad vs hand-written (jaxnet.analytic) "
        f"vs numerical, {dtype}, jax {jax.__version__} on {jax.default_backend()}"
    )
    head = (
        "kind",
        "case",
        "leaf",
        "shape",
        "method",
        "ad~analytic",
        "ad~numeric",
        "analytic~numeric",
        "detects",
        "",
    )
    rows: list[tuple[str, ...]] = []
    records: list[dict[str, Any]] = []
    failed = 0
    t0 = time.perf_counter()
    for kind, case in jobs:
        if case is None:
            report, cid = check_l2_penalty(dtype), "l2_penalty"
        else:
            method = args.method or case.method
            check = check_layer if kind == "layer" else check_loss
            report, cid = check(case, dtype, method), case.id
        by_leaf: dict[str, list[Any]] = {}
        for r in report.rows:
            by_leaf.setdefault(r.path, []).append(r)
        for leaf, leaf_rows in by_leaf.items():
            ok = all(r.ok for r in leaf_rows)
            failed += not ok
            named = {r.check: r for r in leaf_rows}
            numeric = [r for r in leaf_rows if r.check.startswith("jax.grad vs ")
                       and r.check != "jax.grad vs analytic"
                       and "jax.grad@" not in r.check]  # fmt: skip
            num = numeric[0] if numeric else None
            m = num.check.split(" vs ")[1] if num else ""
            an_num = named.get(f"analytic vs {m}")
            rows.append(
                (
                    kind,
                    cid,
                    leaf or "predictions",
                    str(leaf_rows[0].shape),
                    num.method if num else "-",
                    _fmt(named["jax.grad vs analytic"].max_rel)
                    if "jax.grad vs analytic" in named
                    else "-",
                    _fmt(num.max_rel) if num else "-",
                    _fmt(an_num.max_rel) if an_num else "-",
                    f"{num.detectable:.0e}" if num else "-",
                    "ok"
                    if ok
                    else (
                        "FAIL"
                        if any(r.verdict == "FAIL" for r in leaf_rows)
                        else "noisy"
                    ),
                )
            )
        if not report.ok:
            print(report, file=sys.stderr)
        records += [{"kind": kind, "case": cid, **rec} for rec in report.to_records()]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*head).rstrip())
    for line in rows:
        print(fmt.format(*line).rstrip())
    an = tolerance_of(dtype)
    print(
        "\nmax rel error per leaf: ad~analytic elementwise, |a - r| / (|r| + atol/rtol) "
        f"at rtol {an.rtol:g} atol {an.atol:g}; numerical rows at tolerances from the "
        "measured noise of the reference (docs/verification.md); detects: the "
        "smallest relative gradient error each leaf's numerical row catches."
    )
    cases = len(jobs)
    verdict = "all agree" if not failed else f"{failed} leaves FAILED"
    print(
        f"{cases} layers and losses, {len(rows)} leaves: {verdict} "
        f"({time.perf_counter() - t0:.1f} s)."
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1, default=str)
    return 1 if failed else 0


def _user_cases(spec: str) -> list[Any]:
    """The ``LAYER_CASES`` and ``LOSS_CASES`` a user module declares.

    Raises:
      SystemExit: when the module cannot be imported or declares no case.
    """
    import importlib
    import importlib.util
    import os

    from .testing._case import LayerCase, LossCase

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
            f"jaxnet check --module {spec}: cannot import it ({type(exc).__name__}: "
            f"{exc}). Pass a dotted module name importable from this directory or a "
            "path to a .py file."
        ) from None
    cases = list(getattr(module, "LAYER_CASES", ())) + list(
        getattr(module, "LOSS_CASES", ())
    )
    bad = [c for c in cases if not isinstance(c, (LayerCase, LossCase))]
    if not cases or bad:
        raise SystemExit(
            f"jaxnet check --module {spec}: expected LAYER_CASES and/or LOSS_CASES, "
            "sequences of jaxnet.testing.LayerCase / LossCase"
            + (f"; got {type(bad[0]).__name__}" if bad else "; found none")
            + "."
        )
    return cases


def run_bench(argv: Sequence[str]) -> int:
    """``jaxnet bench ARGS``: run the benchmark suite (:func:`jaxnet.bench.main`).

    The harness and its cases are part of the installed package (``jaxnet.bench``),
    so this works from any directory, with or without a source checkout.
    """
    from .bench import main as bench_main

    return int(bench_main(list(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxnet`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":  # every further argument belongs to the suite
        return run_bench(argv[1:])
    parser = argparse.ArgumentParser(prog="jaxnet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser(
        "check",
        help="verify every built-in layer and loss: jax.grad vs analytic vs numerical",
    )
    p_check.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p_check.add_argument(
        "--method",
        choices=["central", "complex"],
        default=None,
        help="numerical method for every case (default: complex where the case is "
        "real-analytic, central otherwise)",
    )
    p_check.add_argument(
        "--only", default=None, help="only cases whose name contains this"
    )
    p_check.add_argument(
        "--json", default=None, help="also write every row to this file"
    )
    p_check.add_argument(
        "--module",
        action="append",
        default=None,
        help="also check the cases a module declares (LAYER_CASES and/or LOSS_CASES "
        "of jaxnet.testing.LayerCase / LossCase): a dotted name importable from the "
        "current directory, or a path to a .py file; repeatable",
    )
    p_check.add_argument(
        "--no-builtin",
        action="store_true",
        help="check only the --module cases, not jaxnet's built-in ones",
    )
    sub.add_parser(
        "bench",
        add_help=False,
        help="run the benchmark suite: autodiff vs hand-written vs raw JAX "
        "('jaxnet bench --help')",
    )
    sub.add_parser("version", help="print the versions of jaxnet, jax and jaxlib")
    args = parser.parse_args(argv)
    if args.command == "check":
        return run_check(args)
    import jax
    import jaxlib

    from . import __version__

    print(f"jaxnet {__version__}, jax {jax.__version__}, jaxlib {jaxlib.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
