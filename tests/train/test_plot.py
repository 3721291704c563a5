"""plot_history: training curves from fit's history (the drawing tests need matplotlib)."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
import textwrap

import jax
import numpy as np
import optax
import pytest

import jaxnet
from jaxnet import losses
from jaxnet.train import _plot
from jaxnet.train._plot import _figure, plot_history

needs_mpl = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="matplotlib is an optional extra",
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run() -> jaxnet.FitResult:
    """A real 3-epoch fit of a tiny classifier, with validation and an accuracy."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0).astype(np.int32)
    model = jaxnet.serial(jaxnet.Dense(8), jaxnet.Relu(), jaxnet.Dense(3))
    return jaxnet.fit(
        model,
        losses.softmax_cross_entropy_with_integer_labels,
        optax.sgd(0.1),
        (x[:64], y[:64]),
        key=jax.random.key(0),
        epochs=3,
        batch_size=16,
        validation_data=(x[64:], y[64:]),
        metrics={"accuracy": jaxnet.accuracy},
        progress=False,
    )


def _curves(fig):
    """{axes title: {line label: (x, y)}} for every axes of a figure."""
    return {
        ax.get_title(): {
            line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
            for line in ax.get_lines()
        }
        for ax in fig.axes
    }


# ------------------------------------------------------------------ drawing


@needs_mpl
def test_png_from_a_fit_run(run, tmp_path):
    path = tmp_path / "curves.png"
    assert plot_history(run.history, path) == path
    data = path.read_bytes()
    assert data.startswith(PNG)
    assert 10_000 < len(data) < 2_000_000, len(data)
    # a FitResult works as well as its history, and str paths come back as given
    other = str(tmp_path / "again.png")
    assert plot_history(run, other, title="tiny") == other
    with open(other, "rb") as f:
        assert f.read(8) == PNG


@needs_mpl
def test_one_axes_per_metric_train_and_validation_curves(run):
    fig = _figure(run.history)
    curves = _curves(fig)
    # loss first, then the metrics in the history's order; no bookkeeping keys
    assert list(curves) == ["loss", "accuracy", "grad_norm"]
    assert len(fig.axes) == 3
    # grad_norm is a training-step diagnostic: no validation curve
    assert list(curves.pop("grad_norm")) == ["train"]
    for name, lines in curves.items():
        assert list(lines) == ["train", "validation"], name
        for label, key in (("train", name), ("validation", f"val_{name}")):
            xs, ys = lines[label]
            assert xs == [1, 2, 3]
            assert ys == pytest.approx([row[key] for row in run.history])
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch"
        assert ax.get_ylabel() == ax.get_title()
        assert ax.get_legend() is not None


@needs_mpl
def test_val_only_metric_nan_inf_and_missing_values(tmp_path):
    history = [
        {"epoch": 1, "loss": 1.0, "val_auc": 0.5, "seconds": 0.1},
        {"epoch": 2, "loss": math.nan, "val_auc": math.inf, "seconds": 0.1},
        {"epoch": 3, "loss": 0.5, "seconds": 0.1},  # no val_auc this epoch
    ]
    curves = _curves(_figure(history))
    assert list(curves) == ["loss", "auc"]
    assert list(curves["auc"]) == ["validation"]  # only present as val_: still drawn
    _, auc = curves["auc"]["validation"]
    assert auc[0] == 0.5 and math.isnan(auc[1]) and math.isnan(auc[2])
    path = plot_history(history, tmp_path / "gaps.png")
    assert path.read_bytes().startswith(PNG)
    # every value nan: an empty-looking plot, not a crash
    plot_history([{"epoch": 1, "loss": math.nan}], tmp_path / "nan.png")


@needs_mpl
def test_metrics_selection_layout_title_and_format(run, tmp_path):
    fig = _figure(run.history, ["accuracy"])
    assert [ax.get_title() for ax in fig.axes] == ["accuracy"]
    assert [ax.get_title() for ax in _figure(run.history, "loss").axes] == ["loss"]
    # bookkeeping keys are plotted only when asked for
    fig = _figure(run.history, ["loss", "seconds", "accuracy", "step"], title="run")
    assert [ax.get_title() for ax in fig.axes] == [
        "loss",
        "seconds",
        "accuracy",
        "step",
    ]
    assert fig.get_suptitle() == "run"
    pdf = plot_history(run.history, tmp_path / "curves.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")


@needs_mpl
def test_leaves_the_backend_and_pyplot_alone(run, tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    plot_history(run.history, tmp_path / "curves.png")
    assert matplotlib.get_backend() == backend
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules


@needs_mpl
def test_docstring_example_runs(tmp_path, monkeypatch):
    doc = plot_history.__doc__
    block = re.search(r"runs it\)::\n\n(.*?)\n\n    Bad input", doc, re.S).group(1)
    # until jaxnet/__init__.py exports it, the example's jaxnet.plot_history is ours
    monkeypatch.setattr(jaxnet, "plot_history", plot_history, raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    exec(textwrap.dedent(block), {})
    assert [p.name for p in tmp_path.rglob("*.png")] == ["curves.png"]


# ------------------------------------------------------- errors (no matplotlib)


@pytest.mark.parametrize(
    "history, metrics, message",
    [
        ([], None, r"at least one epoch, got an empty one"),
        ({"epoch": 1, "loss": 0.5}, None, r"a list of dicts.*got dict"),
        ([0.5, 0.4], None, r"each history row to be a dict, got float at row 0"),
        (
            [{"epoch": 1, "loss": 0.5}, {"loss": 0.4, "step": 8}],
            None,
            r"'epoch' key, row 1 has keys \['loss', 'step'\]",
        ),
        (
            [{"epoch": 1, "loss": 0.5, "accuracy": 0.9, "val_accuracy": 0.8}],
            ["loss", "acuracy"],
            r"names 'acuracy', which is not in the history; expected one of "
            r"\['loss', 'accuracy'\]\. Did you mean 'accuracy'\?",
        ),
        (
            [{"epoch": 1, "loss": 0.5}],
            ["f1"],
            r"names 'f1', which is not in the history; expected one of \['loss'\]\.$",
        ),
        ([{"epoch": 1, "loss": 0.5}], [], r"at least one of \['loss'\], got an empty"),
        ([{"epoch": 1, "seconds": 0.5}], None, r"only the keys \['seconds'\]"),
    ],
)
def test_bad_input_is_a_value_error_naming_plot_history(
    history, metrics, message, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # checked before the import
    with pytest.raises(ValueError, match=r"^plot_history: .*" + message):
        plot_history(history, tmp_path / "x.png", metrics=metrics)
    assert not (tmp_path / "x.png").exists()


@needs_mpl
def test_a_non_numeric_value_is_a_value_error(tmp_path):
    history = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": "oops"}]
    with pytest.raises(ValueError, match=r"a number for 'loss' at epoch 2, got 'oops'"):
        plot_history(history, tmp_path / "x.png")


def test_missing_matplotlib_says_how_to_install_it(run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    with pytest.raises(ImportError) as info:
        plot_history(run.history, tmp_path / "curves.png")
    assert str(info.value) == (
        "plot_history needs matplotlib: pip install 'jaxnet[examples]'"
    )
    assert not (tmp_path / "curves.png").exists()
    assert _plot.BOOKKEEPING[0] == "epoch"
