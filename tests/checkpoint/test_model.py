"""Checkpoints describe their model (issue 16 item 6), and a fit run whose loss
went nan (stop_on_nan=False) checkpoints and resumes."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax
import pytest
from helpers import rewrite_checkpoint

import jaxnet

XENT = jaxnet.losses.softmax_cross_entropy_with_integer_labels


def _model():
    return jaxnet.serial(
        jaxnet.Dense(8), jaxnet.Relu(), jaxnet.Dropout(0.5), jaxnet.Dense(3)
    )


DESC = "serial(Dense(out_dim=8), Relu(), Dropout(drop_rate=0.5), Dense(out_dim=3))"


def _data(n=32):
    x = jax.random.normal(jax.random.key(0), (n, 4))
    return x, (x[:, 0] > 0).astype(jnp.int32)


def test_save_with_model_stores_its_description(tmp_path):
    model = _model()
    _, params = model.init(jax.random.key(0), (None, 4))
    ck = jaxnet.save(tmp_path / "p.jnc", params, model=model, metadata={"lr": 0.1})
    info = jaxnet.inspect_checkpoint(ck)
    assert info["model"] == DESC == model.desc
    assert info["metadata"] == {"lr": 0.1}  # the user's metadata stays theirs
    loaded = jaxnet.load(ck, like=params)  # loading is unchanged
    assert jax.tree.structure(loaded) == jax.tree.structure(params)
    plain = jaxnet.save(tmp_path / "q.jnc", params)
    assert jaxnet.inspect_checkpoint(plain)["model"] is None
    with pytest.raises(jaxnet.CheckpointError, match="model= must be a jaxnet Layer"):
        jaxnet.save(tmp_path / "r.jnc", params, model="serial(Dense(8))")


def test_fit_checkpoints_describe_the_model(tmp_path):
    ck = tmp_path / "run.jnc"
    jaxnet.fit(
        _model(),
        XENT,
        optax.sgd(0.1),
        _data(),
        key=jax.random.key(1),
        epochs=1,
        batch_size=16,
        progress=False,
        checkpoint=ck,
    )
    assert jaxnet.inspect_checkpoint(ck)["model"] == DESC


def test_a_crafted_model_entry_is_refused(tmp_path):
    ck = jaxnet.save(tmp_path / "p.jnc", {"w": jnp.ones(2)}, model=jaxnet.Dense(2))

    def edit(h):
        h["model"] = {"eval": "__import__('os')"}

    rewrite_checkpoint(ck, edit)
    with pytest.raises(jaxnet.CheckpointError, match="'model' .* is not a string"):
        jaxnet.inspect_checkpoint(ck)


def test_a_nan_loss_without_stop_on_nan_checkpoints_and_resumes(tmp_path):
    """JSON has no nan: the history keeps it as "nan" on disk and gets a float nan
    back on resume (the save failed with CheckpointError before)."""
    x, y = _data()
    x = x.at[0, 0].set(jnp.nan)  # every epoch's first batch is nan (no shuffle)
    ck = tmp_path / "run.jnc"
    kw = dict(
        key=jax.random.key(1),
        batch_size=16,
        progress=False,
        checkpoint=ck,
        stop_on_nan=False,
        shuffle=False,
    )
    first = jaxnet.fit(_model(), XENT, optax.sgd(0.1), (x, y), epochs=1, **kw)
    assert math.isnan(first.history[0]["loss"])
    assert jaxnet.inspect_checkpoint(ck)["metadata"]["history"][0]["loss"] == "nan"
    again = jaxnet.fit(_model(), XENT, optax.sgd(0.1), (x, y), epochs=2, **kw)
    assert again.resumed_from == 1 and math.isnan(again.history[0]["loss"])
    assert len(again.history) == 2
