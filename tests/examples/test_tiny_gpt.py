"""The tiny GPT example trains, resumes bit-identically, samples, and runs sharded.

A tiny configuration (width 32, depth 2, sequence 32) keeps every run to a few
seconds of compilation and training. The runs are shared by the tests through a
module fixture: an uninterrupted run, and the same run stopped at step 10 and
resumed from its checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from _settings import jax_settings

import jaxnet

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "tiny_gpt.py"
STEPS = 24
TINY = (
    f"--width 32 --depth 2 --heads 2 --seq 32 --batch 8 --steps {STEPS} --warmup 4 "
    "--eval-every 8 --eval-windows 16 --drop 0.1 --lr 1e-2 --quiet"
).split()


def _example():
    spec = importlib.util.spec_from_file_location("tiny_gpt", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _settings():
    """The conftest's settings, but standard promotion: optax's adam needs it."""
    return jax_settings(promotion="standard")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny_gpt")
    ex = _example()
    with _settings():
        full = ex.main(
            [*TINY, "--checkpoint", str(tmp / "full.jnc"), "--sample-chars", "40"]
        )
        part = ex.main(
            [
                *TINY,
                "--checkpoint",
                str(tmp / "part.jnc"),
                "--stop-at",
                "10",
                "--sample-chars",
                "0",
            ]
        )
        resumed = ex.main(
            [*TINY, "--checkpoint", str(tmp / "part.jnc"), "--sample-chars", "40"]
        )
    return {"ex": ex, "tmp": tmp, "full": full, "part": part, "resumed": resumed}


@pytest.fixture
def _standard_promotion():
    with jax.numpy_dtype_promotion("standard"):
        yield


def _bytes(tree):
    return [np.asarray(leaf).tobytes() for leaf in jax.tree.leaves(tree)]


def test_validation_loss_drops(runs):
    full = runs["full"]
    vocab = len(full["vocab"])
    assert vocab > 80
    # an untrained model is close to uniform over the characters
    assert abs(full["initial_val_loss"] - math.log(vocab)) < 1.0
    vals = [row["val_loss"] for row in full["history"]]
    assert [row["step"] for row in full["history"]] == [8, 16, 24]
    assert vals[-1] < full["initial_val_loss"] - 1.0, vals
    assert vals[-1] < vals[0], vals
    assert all(
        row["train_loss"] > 0 and row["tokens_per_s"] > 0 for row in full["history"][1:]
    )


def test_resume_ends_with_the_same_bytes_as_an_uninterrupted_run(runs):
    full, part, resumed = runs["full"], runs["part"], runs["resumed"]
    assert part["step"] == 10 and part["resumed_from"] == 0
    assert resumed["resumed_from"] == 10 and resumed["step"] == STEPS
    assert [row["step"] for row in resumed["history"]] == [16, 24]
    assert _bytes(resumed["params"]) == _bytes(full["params"])
    assert _bytes(resumed["opt_state"]) == _bytes(full["opt_state"])
    # the stopped run really stopped early: its parameters differ
    assert _bytes(part["params"]) != _bytes(full["params"])
    assert resumed["history"][-1]["val_loss"] == full["history"][-1]["val_loss"]
    meta = jaxnet.inspect_checkpoint(runs["tmp"] / "part.jnc")["metadata"]
    assert meta["step"] == STEPS and meta["config"]["width"] == 32


def test_sample_has_the_requested_length_from_the_vocabulary(runs):
    full, resumed = runs["full"], runs["resumed"]
    assert len(full["sample"]) == 40
    assert set(full["sample"]) <= set(full["vocab"])
    assert resumed["sample"] == full["sample"]  # same parameters, same sampling key


@pytest.mark.usefixtures("_standard_promotion")  # the fixture's context: no recompile
def test_greedy_sampling_past_a_full_window(runs):
    ex, full = runs["ex"], runs["full"]
    vocab, prompt = (
        full["vocab"],
        "The 'while' statement is used for repeated execution",
    )
    assert len(prompt) > 32  # longer than the window: only its last 32 are used

    def greedy(key):
        return ex.sample(
            full["next_char"],
            full["params"],
            prompt,
            vocab,
            seq=32,
            num_chars=40,
            temperature=0.0,
            key=jax.random.key(key),
        )

    text = greedy(1)
    assert len(text) == 40 and set(text) <= set(vocab)
    assert greedy(2) == text  # temperature 0 is argmax: the key plays no part
    with pytest.raises(ValueError, match=r"'€'.* not in the \d+-character vocab"):
        ex.sample(
            full["next_char"],
            full["params"],
            "a€",
            vocab,
            seq=32,
            num_chars=1,
            temperature=1.0,
            key=jax.random.key(1),
        )


def test_resume_with_another_width_is_refused(runs):
    ck = str(runs["tmp"] / "part.jnc")
    before = pathlib.Path(ck).read_bytes()
    argv = [*TINY, "--checkpoint", ck, "--sample-chars", "0"]
    argv[argv.index("--width") + 1] = "48"
    with pytest.raises(
        jaxnet.CheckpointError, match=r"width=32 in the file but 48 now"
    ):
        runs["ex"].main(argv)
    assert pathlib.Path(ck).read_bytes() == before  # left untouched


def test_data_parallel_bfloat16_on_two_devices():
    """Two simulated CPU devices: a batch of 3 is refused; the sharded bf16 run trains."""
    code = f"""
import json
import jax, jaxnet, tiny_gpt  # examples/ on PYTHONPATH
argv = {TINY[:-1]!r}
try:
    tiny_gpt.main([*argv, "--batch", "3", "--quiet"])
    refused = ""
except jaxnet.ShapeError as e:
    refused = str(e)
r = tiny_gpt.main([*argv, "--steps", "6", "--eval-every", "3", "--compute-dtype",
                   "bfloat16", "--fsdp", "--sample-chars", "0", "--drop", "0"])
w = r["params"]["stack_2"]["mlp"]["dense_1"]["w"]
print(json.dumps({{"refused": refused, "devices": r["devices"],
    "init": r["initial_val_loss"], "vals": [h["val_loss"] for h in r["history"]],
    "dtype": str(w.dtype), "spec": str(w.sharding.spec)}}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SCRIPT.parent), env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (
        "global batch of 3 examples does not split over the 2 devices" in out["refused"]
    )
    assert out["devices"] == 2
    assert out["dtype"] == "float32"  # master weights stay float32 under bf16 compute
    assert "data" in out["spec"]  # --fsdp split the large MLP weight over the mesh
    assert len(out["vals"]) == 2 and out["vals"][-1] < out["init"] - 0.3, out
    assert "step      6  train" in proc.stdout  # the progress lines are printed
