"""Write the results: ``results.json``, ``results.md`` and PNG plots (matplotlib optional).

``results.json`` is a list of rows, each carrying the environment (backend, device,
versions, CPU model and threads). ``results.md`` holds the tables that go into the
README. Plots need ``matplotlib`` (``pip install jaxnet[bench]``); without it one line
says they were skipped.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from . import deep
from ._case import MATMULS
from ._format import fmt_range, md_table, mib, ms
from ._peak import fmt_fraction, fraction_status, peak_line

SEED_CASE = "seed_logreg_2x100_e100"
PEERS_CASE = "peers"
DEEP_CASE = "deep"
#: Timed functions that are not extra implementations of the step.
_NOT_EXTRAS = ("forward", "autodiff", "hand", "raw", MATMULS)


def _is_case_row(row: dict[str, Any]) -> bool:
    return "ratios" in row and "time_s" in row


def case_table(rows: list[dict[str, Any]]) -> str:
    """The main markdown table: one line per case row.

    Columns: case, forward ms, autodiff / hand / raw step ms (medians), the ratios
    autodiff/hand and autodiff/raw with min-max, grad/forward, GFLOP/s and % of peak of
    the autodiff step, peak memory (MiB) of the autodiff and hand-written steps.
    """
    head = [
        "case",
        "forward ms",
        "autodiff ms",
        "hand ms",
        "raw ms",
        "autodiff/hand (min-max)",
        "autodiff/raw (min-max)",
        "grad/forward (min-max)",
        "GFLOP/s",
        "% of peak",
        "peak MiB autodiff / hand",
        "grad error / bound",
    ]
    lines = []
    for r in rows:
        if not _is_case_row(r):
            continue
        t, rat, mem = r["time_s"], r["ratios"], r.get("memory", {})
        frac = r.get("fraction_of_peak", {}).get("autodiff")
        peak_mem = " / ".join(
            mib(mem.get(k, {}).get("peak_bytes"))
            for k in ("autodiff", "hand")
            if k in mem
        )
        extras = [k for k in t if k not in _NOT_EXTRAS]
        label = r["case"] + (f" (+{', '.join(extras)})" if extras else "")
        diffs = r.get("agreement", {})
        worst = max(diffs.values()) if diffs else None
        cells = [
            label,
            ms(t.get("forward")),
            ms(t.get("autodiff")),
            ms(t.get("hand")),
            ms(t.get("raw")),
            fmt_range(rat.get("autodiff/hand"), ".3f"),
            fmt_range(rat.get("autodiff/raw"), ".3f"),
            fmt_range(rat.get("grad/forward"), ".2f"),
            f"{r['gflops']['autodiff']['median']:.1f}"
            if "autodiff" in r["gflops"]
            else "",
            fmt_fraction(frac["median"]) if frac else "",
            peak_mem,
            "" if worst is None else f"{worst:.1e}",
        ]
        lines.append(cells)
    return md_table(head, lines)


def over_peak(rows: list[dict[str, Any]]) -> list[str]:
    """``"case/impl"`` for every median fraction of peak above 1."""
    return [
        f"{r['case']}/{k}"
        for r in rows
        if _is_case_row(r)
        for k, f in r.get("fraction_of_peak", {}).items()
        if fraction_status(f["median"]) != "ok"
    ]


def over_peak_warning(over: list[str]) -> str:
    """The warning for fractions above the measured peak (printed and in results.md)."""
    return (
        f"WARNING: measurement error: {', '.join(over)} ran faster than the matmul peak "
        "measured in this run, which cannot be; the machine was slowed while the peak "
        "was measured (shared or throttled CPU). Those fractions are not reported; "
        "rerun on a quiet machine."
    )


def matmul_table(rows: list[dict[str, Any]]) -> str:
    """Cases with a matmuls-only function: the rate of the step's matmuls alone
    (what the kernels give at the step's shapes) against the whole autodiff step's."""
    lines = []
    for r in rows:
        if not _is_case_row(r) or MATMULS not in r["time_s"]:
            continue
        g, f = r["gflops"], r.get("fraction_of_peak", {})
        share = r["flops"]["matmul"] / r["flops"]["step"]

        def pct(k: str, f: dict = f) -> str:
            return fmt_fraction(f[k]["median"]) if k in f else ""

        lines.append(
            [
                r["case"],
                ms(r["time_s"][MATMULS]),
                f"{g[MATMULS]['median']:.1f}",
                pct(MATMULS),
                f"{g['autodiff']['median']:.1f}",
                pct("autodiff"),
                f"{100 * share:.1f}",
                fmt_range(r["ratios"].get(f"autodiff/{MATMULS}"), ".2f"),
            ]
        )
    if not lines:
        return ""
    head = [
        "case",
        "matmuls alone ms",
        "matmuls GFLOP/s",
        "matmuls % of peak",
        "step GFLOP/s",
        "step % of peak",
        "matmul share of step FLOPs",
        "step / matmuls time (min-max)",
    ]
    return md_table(head, lines)


def extras_table(rows: list[dict[str, Any]]) -> str:
    """Extra implementations (e.g. ``autodiff_remat``): time, ratio, peak memory."""
    lines = []
    for r in rows:
        if not _is_case_row(r):
            continue
        for k in r["time_s"]:
            if k in _NOT_EXTRAS:
                continue
            mem = r.get("memory", {})
            lines.append(
                [
                    r["case"],
                    k,
                    ms(r["time_s"][k]),
                    fmt_range(r["ratios"].get(f"{k}/autodiff"), ".3f"),
                    mib(mem.get(k, {}).get("peak_bytes")),
                    mib(mem.get("autodiff", {}).get("peak_bytes")),
                ]
            )
    if not lines:
        return ""
    head = ["case", "implementation", "ms", "vs autodiff (min-max)", "peak MiB"]
    return md_table([*head, "autodiff peak MiB"], lines)


def seed_table(rows: list[dict[str, Any]]) -> str:
    """The seed case: ms per 100 epochs per implementation, ratios, targets."""
    out = []
    for r in rows:
        if r.get("case") != SEED_CASE:
            continue
        cells = [
            [
                k,
                fmt_range(t, ".3f", scale=1e3),
                f"{r['us_per_epoch'][k]['median']:.2f}",
            ]
            for k, t in r["time_s"].items()
        ]
        cells += [
            [k[6:], fmt_range(r[k]), ""]
            for k in sorted(x for x in r if x.startswith("ratio_"))
        ]
        head = ["implementation", "ms / 100 epochs (min-max)", "us / epoch"]
        out.append(md_table(head, cells))
        targets = ", ".join(
            f"{k}: {'met' if v else 'NOT met'}" for k, v in r["targets"].items()
        )
        out.append("")
        out.append(f"Targets: {targets}.")
    return "\n".join(out)


def peers_table(rows: list[dict[str, Any]]) -> str:
    """The peers case (:mod:`jaxnet.bench.peers`) as markdown, "" when absent.

    Tables: "Peers" (implementation, batch, ms per step, vs raw JAX pair by pair,
    ms over raw JAX at batch 1), first-call trace + compile of jaxnet vs raw JAX,
    "Fresh-process build + init" per library, and the targets (shown, not asserted).

    Example:
      >>> peers_table([])
      ''
    """
    out: list[str] = []
    for row in rows:
        if row.get("case") != PEERS_CASE or "batches" not in row:
            continue
        versions = ", ".join(f"{k} {v}" for k, v in row.get("versions", {}).items())
        out += [
            "### Peers: MLP 784-512-512-10, one SGD step",
            "",
            f"Versions: {versions}. Each implementation runs as a training loop (its "
            "new parameters feed its next step), interleaved; ratios and differences "
            "to raw JAX pair by pair (median, min-max). PyTorch runs in a block of its "
            "own with raw JAX (`raw_with_torch`, its reference): its threads slow the "
            "next JAX step.",
            "",
        ]
        cells = []
        for b, res in row["batches"].items():
            for n, t in res["step_s"].items():
                ms = fmt_range(t, ".3f", scale=1e3)
                is_raw = n.startswith("raw")
                vs = "1" if is_raw else fmt_range(res["vs_raw"][n], ".3f")
                over = (
                    fmt_range(res["over_raw_ms"][n], ".3f")
                    if b == "1" and not is_raw
                    else ""
                )
                cells.append([n, b, ms, vs, over])
        head = ["implementation", "batch", "ms per step (min-max)"]
        head += [
            "vs raw JAX (min-max)",
            "overhead at batch 1, ms over raw JAX (min-max)",
        ]
        out.append(md_table(head, cells))
        if row.get("compile"):
            out += [
                "",
                "First-call trace + compile, seconds (median):",
                "",
            ]
            head = ["batch", "jaxnet trace", "jaxnet compile", "raw trace"]
            head += ["raw compile", "jaxnet / raw (trace + compile)"]
            cells = []
            for b, c in row["compile"].items():
                j, r = c["jaxnet"], c["raw"]
                cells.append(
                    [b]
                    + [f"{v:.3f}" for v in (j["trace_s"], j["compile_s"])]
                    + [f"{v:.3f}" for v in (r["trace_s"], r["compile_s"])]
                    + [f"{j['total_s'] / r['total_s']:.3f}"]
                )
            out.append(md_table(head, cells))
        if row.get("init"):
            out += [
                "",
                "### Fresh-process build + init",
                "",
                "Build the MLP and initialise its parameters in a fresh `python -c`, "
                "blocked until ready, imports and the JAX backend start timed apart "
                "(median, min-max over runs). `jaxnet_jit_init`: "
                "`jax.jit(model.init, static_argnums=1)`.",
                "",
            ]
            head = ["library", "build + init s (min-max)", "imports s"]
            head += ["backend start s", "process wall s"]
            cells = [
                [lib, fmt_range(d["init_s"], ".3f")]
                + [f"{d[k]['median']:.3f}" for k in ("import_s", "backend_s", "wall_s")]
                for lib, d in row["init"].items()
            ]
            out.append(md_table(head, cells))
        if row.get("targets"):
            targets = ", ".join(
                f"{k}: {'not measured' if v is None else 'met' if v else 'NOT met'}"
                for k, v in row["targets"].items()
            )
            out += ["", f"Targets (shown, not asserted): {targets}."]
    return "\n".join(out)


def deep_table(rows: list[dict[str, Any]]) -> str:
    """The deep case (:mod:`jaxnet.bench.deep`) as markdown, "" when absent.

    Example:
      >>> deep_table([])
      ''
    """
    if not any(r.get("case") == DEEP_CASE and "compile" in r for r in rows):
        return ""
    return deep.deep_table(rows)


def markdown(
    rows: list[dict[str, Any]], env: dict[str, Any], peak: dict[str, Any] | None
) -> str:
    """The whole ``results.md``: environment line, peak, tables and notes."""
    parts = [
        "## Benchmark results",
        "",
        f"jaxnet {env.get('jaxnet')}, jax {env.get('jax')} / jaxlib {env.get('jaxlib')}, "
        f"{env.get('backend')} ({env.get('device')}), CPU {env.get('cpu')}, "
        f"{env.get('cpu_threads')} threads, float32.",
    ]
    if peak:
        parts.append(f"Machine {peak_line(peak)}.")
    parts += [
        "",
        "Medians of interleaved runs; ratios pair by pair (median, min-max). GFLOP/s "
        "and % of peak are the autodiff step's, from FLOPs counted by hand (XLA's "
        "cost_analysis in results.json); peak memory from XLA's compiled memory "
        "analysis (temp + arguments + outputs - aliased). Grad error / bound: the "
        "worst max |g - g_autodiff| / (10 (atol + rtol |g_autodiff|)) over the "
        "hand-written and raw-JAX gradients (float32 analytic tolerance); above 1 the "
        "case is refused, not timed.",
    ]
    if any(_is_case_row(r) for r in rows):
        parts += ["", case_table(rows)]
    over = over_peak(rows)
    if over:
        parts += ["", over_peak_warning(over)]
    refused = [f"- {r['case']}: {r['refused']}" for r in rows if r.get("refused")]
    if refused:
        parts += ["", "Refused (gradients disagree; not timed):", "", *refused]
    extras = extras_table(rows)
    if extras:
        parts += ["", extras]
    ceiling = matmul_table(rows)
    if ceiling:
        parts += [
            "",
            "The step's matmuls alone (same shapes and chain, nothing else), timed "
            "interleaved with the steps: what the matmul kernels give at this step's "
            "shapes. A step / matmuls time near 1 means the non-matmul work costs "
            "nothing extra; the gap to the 2048x2048 peak is then the kernels at "
            "these shapes.",
            "",
            ceiling,
        ]
    peers = peers_table(rows)
    if peers:
        parts += ["", peers]
    deep = deep_table(rows)
    if deep:
        parts += ["", deep]
    seed = seed_table(rows)
    if seed:
        parts += ["", "### Seed case: logistic regression, 100 epochs", "", seed]
    notes = [
        f"- {r['case']}: {r['notes']}"
        for r in rows
        if _is_case_row(r) and r.get("notes")
    ]
    if notes:
        parts += ["", "Notes:", "", *notes]
    return "\n".join(parts) + "\n"


def _plots(out_dir: str, rows: list[dict[str, Any]]) -> list[str]:
    """Ratio bars (with min-max error bars) and fraction-of-peak bars, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case_rows = [r for r in rows if _is_case_row(r)]
    written = []
    labels = sorted({k for r in case_rows for k in r["ratios"]})
    if case_rows and labels:
        fig, ax = plt.subplots(figsize=(min(16, max(6, 1.6 * len(case_rows))), 4))
        width = 0.8 / len(labels)
        for j, lab in enumerate(labels):
            xs, med, lo, hi = [], [], [], []
            for i, r in enumerate(case_rows):
                s = r["ratios"].get(lab)
                if s is None:
                    continue
                xs.append(i + j * width)
                med.append(s["median"])
                lo.append(s["median"] - s["min"])
                hi.append(s["max"] - s["median"])
            ax.bar(xs, med, width, yerr=[lo, hi], capsize=2, label=lab)
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(case_rows))])
        ax.set_xticklabels([r["case"] for r in case_rows], rotation=30, ha="right")
        ax.set_ylabel("time ratio (median, min-max)")
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = os.path.join(out_dir, "ratios.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    frac_rows = [r for r in case_rows if r.get("fraction_of_peak")]
    if frac_rows:
        impls = ["forward", "autodiff", "hand", "raw"]
        fig, ax = plt.subplots(figsize=(min(16, max(6, 1.6 * len(frac_rows))), 4))
        width = 0.8 / len(impls)
        for j, k in enumerate(impls):
            pts = [  # a fraction above the peak is a measurement error: not drawn
                (i, r["fraction_of_peak"][k])
                for i, r in enumerate(frac_rows)
                if k in r["fraction_of_peak"]
                and fraction_status(r["fraction_of_peak"][k]["median"]) == "ok"
            ]
            if not pts:
                continue
            ax.bar(
                [i + j * width for i, _ in pts],
                [100 * f["median"] for _, f in pts],
                width,
                yerr=[
                    [100 * (f["median"] - f["min"]) for _, f in pts],
                    [100 * (f["max"] - f["median"]) for _, f in pts],
                ],
                capsize=2,
                label=k,
            )
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(frac_rows))])
        ax.set_xticklabels([r["case"] for r in frac_rows], rotation=30, ha="right")
        ax.axhline(100.0, color="k", lw=0.5)
        ax.set_ylabel("% of matmul peak (best dot, 512-2048)")
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = os.path.join(out_dir, "fraction_of_peak.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    if any(r.get("case") == DEEP_CASE and "compile" in r for r in rows):
        written += deep.plot_compile(rows, out_dir)
    return written


def _jsonable(x: Any) -> Any:
    """Floats that JSON can hold (nan and inf become None), containers recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def write(
    out_dir: str,
    rows: list[dict[str, Any]],
    env: dict[str, Any],
    peak: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``results.json``, ``results.md`` and (with matplotlib) PNG plots.

    Args:
      out_dir: created if missing.
      rows: result rows (every one already carries the environment).
      env: the environment, for the markdown header.
      peak: the matmul peak (:func:`jaxnet.bench._peak.matmul_peak`), if measured.

    Returns:
      ``{"json", "markdown", "plots"}``: the paths written; ``plots`` is ``None`` when
      matplotlib is not importable (a line on stdout says so).
    """
    os.makedirs(out_dir, exist_ok=True)
    jpath = os.path.join(out_dir, "results.json")
    with open(jpath, "w") as fh:
        json.dump(_jsonable(rows), fh, indent=1, default=str)
    mpath = os.path.join(out_dir, "results.md")
    with open(mpath, "w") as fh:
        fh.write(markdown(rows, env, peak))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(
            "plots skipped: matplotlib is not installed (pip install 'jaxnet[bench]')."
        )
        plots = None
    else:
        plots = _plots(out_dir, rows)
    return {"json": jpath, "markdown": mpath, "plots": plots}
