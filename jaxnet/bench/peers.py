"""Peers: the MLP 784-512-512-10 in jaxnet, raw JAX, Flax NNX, Equinox and PyTorch.

The model of :mod:`jaxnet.bench.cases.mlp` (``Dense(512) Relu Dense(512) Relu
Dense(10)``, softmax cross-entropy with integer labels, mean over the batch, SGD lr
0.01, float32), written five ways:

* ``jaxnet``: ``jax.jit`` of the ``autodiff`` step of :mod:`jaxnet.bench.cases.mlp`;
* ``raw``: ``jax.jit`` of its raw-JAX step (``x @ w + b``, ``jax.nn``), the reference;
* ``flax_nnx``: ``nnx.Linear`` layers, ``nnx.value_and_grad``,
  ``nnx.Optimizer(model, optax.sgd(lr), wrt=nnx.Param)``, the step under ``nnx.jit``;
* ``equinox``: ``eqx.nn.Linear`` layers (``jax.vmap`` over the batch),
  ``eqx.filter_value_and_grad``, ``optax.sgd``, the step under ``eqx.filter_jit``;
* ``torch``: PyTorch eager, ``torch.nn.Linear`` and ``torch.optim.SGD``, with
  ``torch.set_num_threads`` = the CPU threads this process may use.

A peer whose package is not importable is skipped with one printed line (``equinox:
not importable (skipped)``). Every peer starts from jaxnet's initial weights (copied;
``torch.nn.Linear`` and ``eqx.nn.Linear`` hold ``(out, in)`` weights, jaxnet and
``nnx.Linear`` ``(in, out)``) and one step from them must give jaxnet's loss and updated
weights to 10x the float32 "analytic" tolerance, or the peers are refused
(:class:`jaxnet.bench._runner.RefusedToTime`), not timed.

**Steady state.** Each implementation is a training loop: a call takes the current
parameters, runs one step and keeps the new ones (functional for jaxnet and raw JAX,
in place for the others), so no implementation can overlap a call with the next one
more than a real loop would. Timed interleaved (PyTorch in a block of its own with
raw JAX: its thread pool slows the next JAX step) at batch 1, 128 and 1024
(:func:`jaxnet.bench._timing.paired`), medians and min-max, ratios pair by pair against
raw JAX, and at batch 1 the per-step overhead in ms over raw JAX (pairwise
differences: fixed per-step cost, dispatch and framework bookkeeping).

**First-call compile.** The jaxnet and raw-JAX steps are traced and compiled
(:func:`jaxnet.bench._timing.compile_times`) a few times each, alternating, through fresh
wrappers (no cache hit), median.

**Fresh-process build + init** (:func:`init_times`): a child ``python -c`` per
library and run imports the library (timed apart), starts the JAX backend
(``jax.devices()``, timed apart), then builds the MLP and initialises its parameters,
blocked until ready (``init_s``, the number the target is about). ``jaxnet_jit_init``
is jaxnet with ``jax.jit(model.init, static_argnums=1)``: one compilation instead of
one per eager op. ``jaxnet_pcache`` is eager jaxnet with JAX's persistent compilation
cache on (``JAX_COMPILATION_CACHE_DIR``, minimum compile time and entry size 0, a
fresh directory filled by one unrecorded child first): what every process after the
first gets when a user turns the cache on (a library must not set it on import).

Targets (shown, never asserted): jaxnet at most 1.02x raw JAX; at batch 1 at most
+0.02 ms over raw JAX (the issue measured Flax ``nnx.jit`` +1.0 ms, Equinox
+0.36 ms); build + init in a fresh process at most 0.3 s (Flax NNX 3.3 s, Equinox
2.5 s there); first-call compile within 10% of raw JAX. PyTorch eager was 1.2x slower
than JAX on this MLP there.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._runner import RefusedToTime, _threads, allclose_ratio, environment
from ._timing import compile_times, paired, ratios, summary
from .cases.mlp import CLASSES, IN_DIM, LR, MLP_HIDDEN, mlp

NAME = "peers"
DIMS = (IN_DIM, *MLP_HIDDEN, CLASSES)
BATCHES = (1, 128, 1024)
#: Every implementation, in report order; ``raw`` is the reference.
IMPLS = ("jaxnet", "raw", "flax_nnx", "equinox", "torch")
#: Libraries of the fresh-process init measurement.
INIT_LIBS = (
    "jaxnet",
    "jaxnet_jit_init",
    "jaxnet_pcache",
    "flax_nnx",
    "equinox",
    "torch",
)
#: Peers timed in a block of their own against raw JAX (see :func:`time_batch`).
SEPARATE = ("torch",)
TARGET_RATIO = 1.02
TARGET_OVERHEAD_MS = 0.02
TARGET_INIT_S = 0.3
TARGET_COMPILE_RATIO = 1.10

#: ``name -> (module, pip package)`` of the optional peers.
_OPTIONAL = {"flax_nnx": "flax", "equinox": "equinox", "torch": "torch"}

# A peer: ``(step, read)``: ``step()`` runs one training step on the peer's current
# parameters (keeping the new ones) and returns something to block on (the loss);
# ``read()`` returns ``(loss of the last step, params in jaxnet's layout as NumPy)``.
Peer = tuple[Callable[[], Any], Callable[[], tuple[float, dict[str, Any]]]]


def available() -> dict[str, str | None]:
    """Each optional peer's version, or ``None`` when it is not importable.

    Example:
      >>> sorted(available())
      ['equinox', 'flax_nnx', 'torch']
    """
    out: dict[str, str | None] = {}
    for name, module in _OPTIONAL.items():
        try:
            mod = __import__(module)
            if name == "flax_nnx":
                from flax import nnx  # noqa: F401
        except ImportError:
            out[name] = None
        else:
            out[name] = str(getattr(mod, "__version__", "unknown"))
    return out


def layer_keys(n_layers: int = len(DIMS) - 1) -> list[str]:
    """jaxnet's parameter keys of the Dense layers: ``dense_0``, ``dense_2``, ...

    Example:
      >>> layer_keys()
      ['dense_0', 'dense_2', 'dense_4']
    """
    return [f"dense_{2 * i}" for i in range(n_layers)]


def _to_numpy(params: Any) -> dict[str, Any]:
    """jaxnet's params as NumPy float32 arrays."""
    return jax.tree.map(lambda a: np.asarray(a, np.float32), jax.device_get(params))


def _from_layers(ws: list[Any], bs: list[Any]) -> dict[str, Any]:
    """(in, out) weights and biases into jaxnet's parameter tree, as NumPy."""
    out: dict[str, Any] = {f"relu_{2 * i + 1}": {} for i in range(len(ws) - 1)}
    for k, w, b in zip(layer_keys(len(ws)), ws, bs):
        out[k] = {"w": np.asarray(w, np.float32), "b": np.asarray(b, np.float32)}
    return out


def _rekeyed(raw_step: Callable[..., Any]) -> Callable[..., Any]:
    """The raw-JAX step returning jaxnet's tree, so its output feeds its next call.

    The raw step takes jaxnet's tree and returns ``{"w1", "b1", ...}``; re-keying is
    free under ``jit`` (no data moves).
    """

    def step(p: Any, x: Any, y: Any) -> Any:
        raw, loss = raw_step(p, x, y)
        n = len(raw) // 2
        new: dict[str, Any] = {f"relu_{2 * i + 1}": {} for i in range(n - 1)}
        for i, k in enumerate(layer_keys(n), 1):
            new[k] = {"w": raw[f"w{i}"], "b": raw[f"b{i}"]}
        return new, loss

    return step


def _functional(step: Callable[..., Any], params: Any, x: Any, y: Any) -> Peer:
    """A jitted ``step(p, x, y) -> (new_p, loss)`` driven as a training loop."""
    jitted = jax.jit(step)
    state = {"p": params, "loss": None}

    def run() -> Any:
        state["p"], state["loss"] = jitted(state["p"], x, y)
        return state["loss"]

    def read() -> tuple[float, dict[str, Any]]:
        return float(state["loss"]), _to_numpy(state["p"])

    return run, read


def flax_nnx_peer(params: Any, x: Any, y: Any) -> Peer:
    """Flax NNX: ``nnx.Linear`` layers, ``nnx.Optimizer`` with ``optax.sgd``, ``nnx.jit``."""
    import optax
    from flax import nnx

    keys = layer_keys()
    dims = list(zip(DIMS[:-1], DIMS[1:]))

    class MLP(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            for i, (k, n) in enumerate(dims):
                setattr(self, f"l{i}", nnx.Linear(k, n, rngs=rngs))

        def __call__(self, h: Any) -> Any:
            for i in range(len(dims)):
                h = getattr(self, f"l{i}")(h)
                if i < len(dims) - 1:
                    h = jax.nn.relu(h)
            return h

    model = MLP(nnx.Rngs(0))
    for i, k in enumerate(keys):  # jaxnet's weights; nnx.Linear kernels are (in, out)
        layer = getattr(model, f"l{i}")
        layer.kernel[...] = jnp.asarray(params[k]["w"])
        layer.bias[...] = jnp.asarray(params[k]["b"])
    opt = nnx.Optimizer(model, optax.sgd(LR), wrt=nnx.Param)

    @nnx.jit
    def step(model: Any, opt: Any, x: Any, y: Any) -> Any:
        def loss_fn(m: Any) -> Any:
            return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    state: dict[str, Any] = {"loss": None}

    def run() -> Any:
        state["loss"] = step(model, opt, x, y)
        return state["loss"]

    def read() -> tuple[float, dict[str, Any]]:
        layers = [getattr(model, f"l{i}") for i in range(len(dims))]
        return float(state["loss"]), _from_layers(
            [np.asarray(lay.kernel[...]) for lay in layers],
            [np.asarray(lay.bias[...]) for lay in layers],
        )

    return run, read


def equinox_peer(params: Any, x: Any, y: Any) -> Peer:
    """Equinox: ``eqx.nn.Linear`` layers, ``optax.sgd``, ``eqx.filter_jit``."""
    import equinox as eqx
    import optax

    keys = layer_keys()
    dims = list(zip(DIMS[:-1], DIMS[1:]))

    class MLP(eqx.Module):
        layers: list[Any]

        def __init__(self, key: Any) -> None:
            ks = jax.random.split(key, len(dims))
            self.layers = [eqx.nn.Linear(k, n, key=kk) for (k, n), kk in zip(dims, ks)]

        def __call__(self, h: Any) -> Any:  # one example; vmapped over the batch
            for i, layer in enumerate(self.layers):
                h = layer(h)
                if i < len(self.layers) - 1:
                    h = jax.nn.relu(h)
            return h

    model = MLP(jax.random.key(0))
    model = eqx.tree_at(  # jaxnet's weights; eqx.nn.Linear weights are (out, in)
        lambda m: [lay.weight for lay in m.layers] + [lay.bias for lay in m.layers],
        model,
        [jnp.asarray(params[k]["w"]).T for k in keys]
        + [jnp.asarray(params[k]["b"]) for k in keys],
    )
    optim = optax.sgd(LR)
    opt_state = optim.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model: Any, opt_state: Any, x: Any, y: Any) -> Any:
        def loss_fn(m: Any) -> Any:
            logits = jax.vmap(m)(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, opt_state = optim.update(grads, opt_state, model)
        return eqx.apply_updates(model, updates), opt_state, loss

    state: dict[str, Any] = {"m": model, "o": opt_state, "loss": None}

    def run() -> Any:
        state["m"], state["o"], state["loss"] = step(state["m"], state["o"], x, y)
        return state["loss"]

    def read() -> tuple[float, dict[str, Any]]:
        layers = state["m"].layers
        return float(state["loss"]), _from_layers(
            [np.asarray(lay.weight).T for lay in layers],
            [np.asarray(lay.bias) for lay in layers],
        )

    return run, read


def torch_peer(params: Any, x: Any, y: Any) -> Peer:
    """PyTorch eager: ``torch.nn.Linear``, ``torch.optim.SGD``, this process's threads."""
    import torch

    torch.set_num_threads(_threads() or 1)
    keys = layer_keys()
    mods: list[Any] = []
    for i, (fan_in, fan_out) in enumerate(zip(DIMS[:-1], DIMS[1:])):
        mods.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(DIMS) - 2:
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():  # jaxnet's weights; torch.nn.Linear weights are (out, in)
        for lin, k in zip(linears, keys):
            lin.weight.copy_(torch.from_numpy(np.asarray(params[k]["w"]).T.copy()))
            lin.bias.copy_(torch.from_numpy(np.asarray(params[k]["b"]).copy()))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    tx = torch.from_numpy(np.asarray(x, np.float32).copy())
    ty = torch.from_numpy(np.asarray(y).astype(np.int64))
    state: dict[str, Any] = {"loss": None}

    def run() -> Any:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        state["loss"] = loss.detach()
        return None  # eager on the CPU: done when the call returns

    def read() -> tuple[float, dict[str, Any]]:
        return float(state["loss"]), _from_layers(
            [lin.weight.detach().numpy().T.copy() for lin in linears],
            [lin.bias.detach().numpy().copy() for lin in linears],
        )

    return run, read


_BUILDERS: dict[str, Callable[[Any, Any, Any], Peer]] = {
    "flax_nnx": flax_nnx_peer,
    "equinox": equinox_peer,
    "torch": torch_peer,
}


def build(
    batch: int,
    names: tuple[str, ...] | None = None,
    *,
    say: Callable[[str], None] = print,
) -> tuple[dict[str, Peer], tuple[Any, Any, Any]]:
    """Every importable implementation at ``batch``, from the same initial weights.

    Args:
      batch: rows of ``x``.
      names: implementations to build (default: :data:`IMPLS`); ``jaxnet`` and
        ``raw`` are always built.
      say: where the "not importable (skipped)" lines go.

    Returns:
      ``({name: (step, read)}, (params, x, y))``: the peers and jaxnet's initial
      parameters and data (those of :mod:`jaxnet.bench.cases.mlp`).
    """
    case = mlp(batch)(False)
    params, x, y = case.args
    wanted = names or IMPLS
    peers: dict[str, Peer] = {
        "jaxnet": _functional(case.steps["autodiff"], params, x, y),
        "raw": _functional(_rekeyed(case.steps["raw"]), params, x, y),
    }
    versions = available()
    for name in wanted:
        if name in peers:
            continue
        if versions.get(name) is None:
            say(f"{name}: not importable (skipped)")
            continue
        peers[name] = _BUILDERS[name](params, x, y)
    return peers, (params, x, y)


def verify(peers: dict[str, Peer], args: tuple[Any, Any, Any]) -> dict[str, float]:
    """One step of every peer from the initial weights against one jaxnet step.

    Each peer's step is run once (the peers must be fresh) and its loss and updated
    weights compared with jaxnet's (``raw`` included).

    Returns:
      ``{name: allclose ratio}``: the worst ``|a - b| / (10 (atol + rtol |b|))`` over
      the loss and every weight and bias (``jaxnet`` 0); <= 1 agrees.

    Raises:
      RefusedToTime: when a peer disagrees, naming it, its ratio and the fix.
    """
    out: dict[str, tuple[float, dict[str, Any]]] = {}
    for name, (step, read) in peers.items():
        jax.block_until_ready(step())
        out[name] = read()
    ref_loss, ref_params = out["jaxnet"]
    agree: dict[str, float] = {}
    for name, (loss, p) in out.items():
        agree[name] = (
            0.0
            if name == "jaxnet"
            else max(
                allclose_ratio(np.float32(loss), np.float32(ref_loss)),
                allclose_ratio(p, ref_params),
            )
        )
    bad = {n: r for n, r in agree.items() if not r <= 1.0}
    if bad:
        detail = ", ".join(f"{n}: {r:.3g}x the bound" for n, r in bad.items())
        raise RefusedToTime(
            f"jaxnet.bench.peers.verify: one step from jaxnet's initial weights should "
            f"give jaxnet's loss and new weights to 10x the float32 analytic tolerance; "
            f"{detail}. Check the weight layout copied into the peer ((in, out) vs "
            "(out, in)), its loss and its learning rate; refusing to time."
        )
    return agree


def time_batch(
    batch: int,
    names: tuple[str, ...] | None = None,
    *,
    repeats: int = 15,
    min_time: float = 0.05,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Verify, then time every importable implementation at ``batch``, interleaved.

    The JAX implementations are interleaved together; PyTorch (:data:`SEPARATE`)
    runs in a block of its own, interleaved with raw JAX only, and is compared with
    the raw-JAX times of that block (``raw_with_torch``): its thread pool stays busy
    after a call returns and slowed whatever JAX step came next by 10-50% on a
    2-core machine when all five were interleaved.

    Returns:
      ``{"agreement", "step_s", "vs_raw", "over_raw_ms"}``: per implementation, the
      agreement ratio, seconds per step (median, min, max), the pairwise ratio to raw
      JAX and the pairwise difference to raw JAX in ms (median, min, max).

    Raises:
      RefusedToTime: from :func:`verify`.
    """
    peers, args = build(batch, names, say=say)
    agree = verify(peers, args)
    steps = {n: step for n, (step, _) in peers.items()}
    jax_group = {n: f for n, f in steps.items() if n not in SEPARATE}
    times = paired(jax_group, (), repeats=repeats, min_time=min_time)
    raw_for = {n: times["raw"] for n in times}
    for n in SEPARATE:  # its own block, paired with raw JAX only
        if n in steps:
            block = paired(
                {"raw": steps["raw"], n: steps[n]},
                (),
                repeats=repeats,
                min_time=min_time,
            )
            times[n], raw_for[n] = block[n], block["raw"]
            times[f"raw_with_{n}"] = raw_for[f"raw_with_{n}"] = block["raw"]
    return {
        "agreement": agree,
        "step_s": {n: summary(t) for n, t in times.items()},
        "vs_raw": {n: ratios(t, raw_for[n]) for n, t in times.items()},
        "over_raw_ms": {
            n: summary([(a - b) * 1e3 for a, b in zip(t, raw_for[n])])
            for n, t in times.items()
        },
    }


def compile_pair(batch: int, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Trace and compile time of the jaxnet and raw-JAX steps, alternating, median.

    Each repeat wraps the step in a fresh function, so nothing is served from a cache.

    Returns:
      ``{"jaxnet": {"trace_s", "compile_s", "total_s"}, "raw": {...}}`` (medians).
    """
    case = mlp(batch)(False)
    steps = {"jaxnet": case.steps["autodiff"], "raw": case.steps["raw"]}
    got: dict[str, dict[str, list[float]]] = {
        n: {"trace_s": [], "compile_s": [], "total_s": []} for n in steps
    }
    for r in range(repeats):
        order = list(steps) if r % 2 == 0 else list(steps)[::-1]
        for n in order:
            fn = steps[n]
            _, t_trace, t_compile = compile_times(lambda *a, f=fn: f(*a), *case.args)
            got[n]["trace_s"].append(t_trace)
            got[n]["compile_s"].append(t_compile)
            got[n]["total_s"].append(t_trace + t_compile)
    return {n: {k: statistics.median(v) for k, v in d.items()} for n, d in got.items()}


# ------------------------------------------------------------ fresh-process init

_MODEL_JAXNET = """
model = jaxnet.serial(jaxnet.Dense(512), jaxnet.Relu(), jaxnet.Dense(512),
                      jaxnet.Relu(), jaxnet.Dense(10))
"""

#: ``lib -> (imports, build + init, what to block on)`` of the child process.
_CHILD: dict[str, tuple[str, str, str]] = {
    "jaxnet": (
        "import jax\nimport jaxnet",
        _MODEL_JAXNET + "_, params = model.init(jax.random.key(0), (None, 784))",
        "jax.block_until_ready(params)",
    ),
    # jaxnet with JAX's persistent compilation cache (a user setting, never the
    # library's; see init_times): every process after the first reads its programs.
    "jaxnet_pcache": (
        "import jax\nimport jaxnet",
        _MODEL_JAXNET + "_, params = model.init(jax.random.key(0), (None, 784))",
        "jax.block_until_ready(params)",
    ),
    "jaxnet_jit_init": (
        "import jax\nimport jaxnet",
        _MODEL_JAXNET + "_, params = jax.jit(model.init, static_argnums=1)("
        "jax.random.key(0), (None, 784))",
        "jax.block_until_ready(params)",
    ),
    "flax_nnx": (
        "import jax\nfrom flax import nnx",
        """
class MLP(nnx.Module):
    def __init__(self, rngs):
        self.l0 = nnx.Linear(784, 512, rngs=rngs)
        self.l1 = nnx.Linear(512, 512, rngs=rngs)
        self.l2 = nnx.Linear(512, 10, rngs=rngs)
model = MLP(nnx.Rngs(0))
params = nnx.state(model, nnx.Param)
""",
        "jax.block_until_ready(params)",
    ),
    "equinox": (
        "import jax\nimport equinox as eqx",
        """
k0, k1, k2 = jax.random.split(jax.random.key(0), 3)
params = [eqx.nn.Linear(784, 512, key=k0), eqx.nn.Linear(512, 512, key=k1),
          eqx.nn.Linear(512, 10, key=k2)]
""",
        "jax.block_until_ready(eqx.filter(params, eqx.is_array))",
    ),
    "torch": (
        "import torch",
        f"""
torch.set_num_threads({_threads() or 1})
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(),
                            torch.nn.Linear(512, 512), torch.nn.ReLU(),
                            torch.nn.Linear(512, 10))
""",
        "pass  # eager on the CPU",
    ),
}


def child_code(lib: str) -> str:
    """The ``python -c`` program timing one fresh-process build + init of ``lib``.

    It prints one JSON line: ``import_s`` (the imports), ``backend_s`` (starting the
    JAX backend, ``jax.devices()``; 0 for torch) and ``init_s`` (build the MLP and
    initialise its parameters, blocked until ready).

    Raises:
      KeyError: for a library not in :data:`INIT_LIBS`.
    """
    imports, body, block = _CHILD[lib]
    backend = "jax.devices()" if "jax" in imports else "pass"
    return (
        "import json, time\n"
        "t0 = time.perf_counter()\n"
        f"{imports}\n"
        "t1 = time.perf_counter()\n"
        f"{backend}\n"
        "t2 = time.perf_counter()\n"
        f"{textwrap.dedent(body).strip()}\n"
        f"{block}\n"
        "t3 = time.perf_counter()\n"
        'print(json.dumps({"import_s": t1 - t0, "backend_s": t2 - t1, '
        '"init_s": t3 - t2}))\n'
    )


def init_times(
    libs: tuple[str, ...] = INIT_LIBS,
    runs: int = 3,
    *,
    say: Callable[[str], None] = print,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Fresh-process build + init time per library (``runs`` children each, median).

    Libraries run interleaved (A B C A B C ...). One whose module is not importable
    is skipped with a printed line.

    Returns:
      ``{lib: {"import_s", "backend_s", "init_s", "wall_s"}}`` each a summary
      (median, min, max) over the runs; ``wall_s`` is the child's whole life as the
      parent saw it (interpreter start included).

    Raises:
      RuntimeError: when a child fails, with its stderr.
    """
    versions = available()
    todo: list[str] = []
    for lib in libs:
        if versions.get(lib, "") is None:
            say(f"{lib}: not importable (skipped)")
        else:
            todo.append(lib)
    got: dict[str, dict[str, list[float]]] = {lib: {} for lib in todo}
    with tempfile.TemporaryDirectory(prefix="jaxnet_pcache_") as cache:
        envs = {lib: _child_env(lib, cache) for lib in todo}
        if "jaxnet_pcache" in todo and runs > 0:  # the first process fills the cache
            _run_child("jaxnet_pcache", envs["jaxnet_pcache"], timeout)
        for _ in range(runs):
            for lib in todo:
                rec = _run_child(lib, envs[lib], timeout)
                for k, v in rec.items():
                    got[lib].setdefault(k, []).append(float(v))
    return {lib: {k: summary(v) for k, v in d.items()} for lib, d in got.items()}


def _child_env(lib: str, cache_dir: str) -> dict[str, str]:
    """The child's environment: the parent's, plus the persistent compilation cache
    (every program, however fast it compiled) for ``jaxnet_pcache`` only."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))
    }
    if lib == "jaxnet_pcache":
        env["JAX_COMPILATION_CACHE_DIR"] = cache_dir
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def _run_child(lib: str, env: dict[str, str], timeout: float) -> dict[str, float]:
    """One fresh child of :func:`child_code`: its JSON record plus ``wall_s``."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", child_code(lib)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"jaxnet.bench.peers.init_times: the {lib} child exited with "
            f"{proc.returncode}; its stderr ends: {proc.stderr[-1500:]}"
        )
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    rec["wall_s"] = wall
    return rec


# ------------------------------------------------------------------ the whole case


def _targets(row: dict[str, Any]) -> dict[str, bool | None]:
    """Each target of the issue: met (True), not met (False), not measured (None)."""
    t: dict[str, bool | None] = {}
    for b, res in row["batches"].items():
        r = res["vs_raw"].get("jaxnet")
        t[f"jaxnet_at_most_{TARGET_RATIO}x_raw_b{b}"] = (
            None if r is None else r["median"] <= TARGET_RATIO
        )
    b1 = row["batches"].get("1")
    t["jaxnet_b1_overhead_at_most_0.02ms"] = (
        None
        if b1 is None
        else b1["over_raw_ms"]["jaxnet"]["median"] <= TARGET_OVERHEAD_MS
    )
    init = row.get("init", {}).get("jaxnet")
    t["jaxnet_fresh_init_at_most_0.3s"] = (
        None if init is None else init["init_s"]["median"] <= TARGET_INIT_S
    )
    for b, c in row.get("compile", {}).items():
        t[f"jaxnet_compile_within_10pct_of_raw_b{b}"] = (
            c["jaxnet"]["total_s"] <= TARGET_COMPILE_RATIO * c["raw"]["total_s"]
        )
    return t


def peers_case(
    *,
    batches: tuple[int, ...] = BATCHES,
    repeats: int = 15,
    min_time: float = 0.05,
    init_runs: int = 3,
    compile_repeats: int = 3,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole peers case: agreement, steady state, compile, fresh-process init.

    Returns:
      A JSON-ready row (``case`` = ``"peers"``): the environment, ``versions`` (a
      skipped peer ``"not importable (skipped)"``), ``batches`` (per batch, the
      output of :func:`time_batch`), ``compile`` (per batch, :func:`compile_pair`),
      ``init`` (:func:`init_times`), ``targets`` and ``wall_s``.

    Raises:
      RefusedToTime: when a peer disagrees with jaxnet.
    """
    t0 = time.perf_counter()
    versions = available()
    row: dict[str, Any] = {
        **environment(),
        "case": NAME,
        "family": NAME,
        "description": "MLP 784-512-512-10 ReLU, SGD step: jaxnet vs raw JAX vs peers",
        "dtype": "float32",
        "versions": {
            "jaxnet": environment()["jaxnet"],
            "raw": environment()["jax"],
            **{n: v or "not importable (skipped)" for n, v in versions.items()},
        },
        "repeats": repeats,
        "min_time_s": min_time,
    }
    for n, v in versions.items():
        if v is None:
            say(f"{n}: not importable (skipped)")
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731 - said once above
    row["batches"] = {
        str(b): time_batch(b, repeats=repeats, min_time=min_time, say=quiet)
        for b in batches
    }
    row["compile"] = {str(b): compile_pair(b, compile_repeats) for b in batches}
    row["init"] = init_times(runs=init_runs, say=quiet)
    row["targets"] = _targets(row)
    row["wall_s"] = time.perf_counter() - t0
    return row
