"""The digits CNN example reaches its 97% target (skipped without scikit-learn)."""

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("sklearn")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "digits_cnn.py"


def test_digits_cnn_reaches_97_percent(tmp_path):
    curves = tmp_path / "curves.png"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--plot", str(curves)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "conv_0" in out and "total:" in out  # the summary table
    epochs = re.findall(r"^epoch +(\d+) +loss ([\d.]+) .* test acc ([\d.]+)", out, re.M)
    assert len(epochs) == 15
    assert float(epochs[-1][1]) < float(epochs[0][1])  # the loss fell
    final = float(re.search(r"test accuracy ([\d.]+) on 360", out).group(1))
    assert final >= 0.97
    if importlib.util.find_spec("matplotlib") is None:
        assert f"note: no curves written to {curves}" in out
    else:
        assert f"wrote the training curves to {curves}" in out
        assert curves.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
