"""The documentation: every ``python`` block of a guide page runs, and the generated
benchmark page equals its generator's output.

Each page's blocks run in order as one script, in a fresh Python process in a
temporary directory (as a reader would paste them), with warnings as errors and rank
promotion raising; ``strict`` pages also run with strict dtype promotion. The rule is
written down in docs/development.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import jaxnet

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
_spec = importlib.util.spec_from_file_location(
    "gen_benchmarks", DOCS / "gen_benchmarks.py"
)
assert _spec and _spec.loader
gen_benchmarks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_benchmarks)

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
# page -> settings: strict dtype promotion (pages without Optax), simulated devices.
PAGES: dict[str, dict] = {
    "getting-started.md": {},
    "contract.md": {"strict": True},
    "training.md": {},
    "checkpoints.md": {},
    "scaling.md": {"devices": 4},
    "verification.md": {"strict": True},
    "benchmarks.md": {},
    **{
        f"layers/{p.name}": {"strict": True}
        for p in sorted((DOCS / "layers").glob("*.md"))
    },
}


def blocks(page: str) -> list[str]:
    return BLOCK.findall((DOCS / page).read_text())


def _run(page: str, tmp: Path) -> subprocess.CompletedProcess:
    settings = PAGES[page]
    script = tmp / (page.replace("/", "_") + ".py")
    script.write_text("\n".join(blocks(page)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env["JAX_NUMPY_RANK_PROMOTION"] = "raise"
    if settings.get("strict"):
        env["JAX_NUMPY_DTYPE_PROMOTION"] = "strict"
    if settings.get("devices"):
        env["XLA_FLAGS"] = (
            f"--xla_force_host_platform_device_count={settings['devices']}"
        )
    work = tmp / script.stem
    work.mkdir()
    return subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every page with blocks, three processes at a time."""
    tmp = tmp_path_factory.mktemp("docs")
    pages = [p for p in PAGES if blocks(p)]
    with ThreadPoolExecutor(3) as pool:
        results = pool.map(lambda p: _run(p, tmp), pages)
        return dict(zip(pages, results, strict=True)), tmp


def test_every_page_with_python_blocks_is_listed():
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    pages -= {str(p.relative_to(DOCS)) for p in (DOCS / "templates").rglob("*.md")}
    unlisted = sorted(p for p in pages if blocks(p) and p not in PAGES)
    assert not unlisted, f"add to PAGES in tests/test_docs.py: {unlisted}"
    assert all((DOCS / p).exists() for p in PAGES)


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)])
def test_page_runs(runs, page):
    results, _ = runs
    proc = results[page]
    assert proc.returncode == 0, f"{page}:\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.slow
def test_training_page_trains_and_checkpoints(runs):
    results, tmp = runs
    out = results["training.md"].stdout.strip().splitlines()
    first = next(ln for ln in out if ln.startswith("{'epoch': "))
    val_acc = float(re.search(r"'val_accuracy': ([\d.]+)", first).group(1))
    assert val_acc > 0.9  # measured 0.98 on the held-out 112
    assert out[-1] == "True True (8, 4, 32)"  # the watching block's last line
    assert "serial(Dense(out_dim=32), Relu(), Dense(out_dim=3))" in out  # the model
    watched = [ln.split(":")[0] for ln in out if re.match(r"epoch \d+: val acc", ln)]
    assert watched == ["epoch 5", "epoch 10"]  # the EveryFifth callback
    # Progress lines on stderr (not a terminal): the watched run's 10 epochs.
    err = results["training.md"].stderr.splitlines()
    progress = [ln.split("  ")[0] for ln in err if re.match(r"epoch \d+/10 ", ln)]
    assert progress == [f"epoch {e}/10" for e in range(1, 11)]
    work = tmp / "training.md"
    assert (work / "run.jnc").exists() and (work / "final.jnc").exists()
    kind = jaxnet.inspect_checkpoint(work / "run.jnc")["metadata"]["kind"]
    assert kind == "jaxnet.fit"
    assert len((work / "epochs.csv").read_text().splitlines()) == 11  # header + 10
    events = [json.loads(ln) for ln in (work / "steps.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in events if r["event"] == "step"]
    assert steps == list(range(2, 61, 2))  # 6 steps x 10 epochs


@pytest.mark.slow
def test_scaling_page_shards_over_four_devices(runs):
    results, _ = runs
    line = results["scaling.md"].stdout.strip().splitlines()[-1]
    assert line.startswith(
        "DataParallel(axis='data', size=4, mesh={'data': 4}, fsdp=True)"
    )
    assert line.endswith("P(None, None, 'data')")  # stacked (4, 32, 128) w: FSDP-split


@pytest.mark.slow
def test_getting_started_quickstart_learns(runs):
    results, _ = runs
    out = results["getting-started.md"].stdout
    match = re.search(r"loss ([\d.]+), accuracy ([\d.]+)", out)
    assert match and float(match.group(2)) >= 0.9, out
    assert "gradient check of loss_fn: ok" in out


def test_benchmarks_page_is_generated_from_the_results():
    page = (DOCS / "benchmarks.md").read_text()
    expected = gen_benchmarks.render(gen_benchmarks.TEMPLATE.read_text())
    assert page == expected, (
        "docs/benchmarks.md differs from its generator's output: edit "
        "docs/templates/benchmarks.md (not the page) and run "
        "python docs/gen_benchmarks.py"
    )


def test_benchmark_tables_come_from_the_json(tmp_path):
    """A changed number in results.json changes the page (nothing typed by hand)."""
    import shutil

    src = gen_benchmarks.RESULTS / "cpu-2core-2026-12-03-per-example"
    shutil.copytree(src, tmp_path / src.name)
    rows = json.loads((src / "results.json").read_text())
    rows[1]["time_s"]["per_example_map"]["median"] = 0.12345
    (tmp_path / src.name / "results.json").write_text(json.dumps(rows))
    template = f"<!-- table: per_example {src.name} -->"
    assert "| 256 | per_example_map | 123.45 |" in gen_benchmarks.render(
        template, tmp_path
    )
