"""The digits MLP example trains, round-trips its parameters and resumes (needs sklearn)."""

from __future__ import annotations

import csv
import importlib.util
import json
import pathlib
import re

import jax
import pytest

import jaxnet

pytestmark = pytest.mark.slow

pytest.importorskip("sklearn")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.py"


def _example():
    spec = importlib.util.spec_from_file_location("digits_mlp", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_mlp_trains_saves_loads_and_resumes(tmp_path, capsys):
    ckpt = tmp_path / "run.jnc"
    curves = tmp_path / "curves.png"
    argv = ["--epochs", "6", "--resume-epochs", "2", "--checkpoint", str(ckpt)]
    argv += ["--plot", str(curves), "--logs", str(tmp_path / "logs")]
    with jax.numpy_dtype_promotion("standard"):  # optax's adam needs it
        code = _example().main([*argv, "--quiet", "--target", "0.94"])
    out = capsys.readouterr().out
    assert code == 0, out

    loaded = re.search(r"trained 6 epochs .* test accuracy ([\d.]+)", out)
    assert loaded and float(loaded.group(1)) >= 0.93, out
    resumed = re.search(r"resumed from epoch (\d+) .*; (\d+) epochs, (\d+) steps", out)
    assert resumed, out
    assert int(resumed.group(1)) == 6  # the second fit continued, it did not restart
    assert int(resumed.group(2)) == 8
    assert int(resumed.group(3)) == 8 * (1437 // 64)  # 22 steps per epoch
    final = float(re.search(r"test accuracy ([\d.]+) on 360 held-out", out).group(1))
    assert final >= 0.94

    meta = jaxnet.inspect_checkpoint(ckpt)["metadata"]
    assert meta["epoch"] == 8
    assert [row["epoch"] for row in meta["history"]] == list(range(1, 9))
    assert (tmp_path / "params.jnc").exists()
    # the built-in loggers: one CSV row per epoch, every step once in the JSON lines
    with open(tmp_path / "logs" / "epochs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert float(rows[-1]["val_accuracy"]) == meta["history"][-1]["val_accuracy"]
    lines = (tmp_path / "logs" / "steps.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps == list(range(1, 8 * 22 + 1))
    if importlib.util.find_spec("matplotlib") is None:
        assert f"note: no curves written to {curves}" in out
    else:
        assert f"wrote the training curves to {curves}" in out
        assert curves.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
