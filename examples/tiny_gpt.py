"""A character-level GPT on Python's own documentation, data-parallel, resumable.

The text is ``pydoc_data.topics`` (the help texts behind ``help("assert")`` and
friends: about 465k characters of English prose and code that ship with every Python
installation, so nothing is downloaded). The characters are the vocabulary; the last
10% of the text is held out for validation.

The model is plain jaxnet::

    serial(Embedding(vocab, width), LearnedPositionalEmbedding(seq),
           Stack(TransformerBlock(heads, width, causal=True), depth),
           LayerNorm(), Dense(vocab))

trained with AdamW (warm-up, then cosine decay) through
:func:`jaxnet.make_train_step`, jitted for a :class:`jaxnet.DataParallel` mesh over
every device present (the global batch is split along the mesh axis ``"data"``;
``--fsdp`` also splits the parameters). ``--compute-dtype bfloat16`` runs the
forward and backward in bfloat16 with float32 master parameters.

Every random choice (initial parameters, the training windows of each step, dropout,
sampling) is a :func:`jax.random.fold_in` of ``--seed`` and the step number, so a
run resumed from its checkpoint ends with exactly the parameters of an uninterrupted
run. With ``--checkpoint PATH`` the run writes ``PATH`` every ``--checkpoint-every``
steps and at the end, and, when ``PATH`` exists, resumes from it (refusing a
checkpoint written with a different configuration).

Every ``--eval-every`` steps it prints the mean training loss since the last report,
the loss on a fixed set of held-out windows, and the training throughput; at the end
it samples ``--sample-chars`` characters after ``--prompt``.

Run: ``python examples/tiny_gpt.py`` (the defaults train in a few minutes on two CPU
cores). On a GPU, scale it up, e.g.
``--width 384 --depth 6 --heads 6 --seq 256 --batch 64 --steps 5000
--compute-dtype bfloat16``. Multi-host: start the same command on every host with
``--coordinator HOST:PORT --num-processes N --process-id I``.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxnet
from jaxnet import losses

#: The configuration entries a checkpoint must agree on to be resumed: everything
#: that changes the parameters' shapes or the sequence of updates.
CONFIG_KEYS = (
    "width",
    "depth",
    "heads",
    "seq",
    "batch",
    "steps",
    "lr",
    "warmup",
    "weight_decay",
    "drop",
    "seed",
    "compute_dtype",
)

# Streams of randomness, each folded into the seed's key.
_INIT, _DATA, _DROPOUT, _SAMPLE = range(4)


# ----------------------------------------------------------------------------- data


def load_text() -> str:
    """The help topics of ``pydoc_data.topics``, joined in sorted topic order."""
    from pydoc_data.topics import topics

    return "".join(topics[name] for name in sorted(topics))


def make_vocab(text: str) -> str:
    """The distinct characters of ``text``, sorted: character ``i`` has id ``i``."""
    return "".join(sorted(set(text)))


def encode(text: str, vocab: str) -> np.ndarray:
    """Character ids (int32) of ``text``.

    Raises:
      ValueError: a character is not in ``vocab``.
    """
    index = {c: i for i, c in enumerate(vocab)}
    missing = sorted(set(text) - set(index))
    if missing:
        raise ValueError(
            f"tiny_gpt.encode: characters {''.join(missing)!r} are not in the "
            f"{len(vocab)}-character vocabulary of the training text; use only "
            f"characters from {vocab!r}."
        )
    return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))


def decode(ids: Any, vocab: str) -> str:
    """The text of character ids."""
    return "".join(vocab[int(i)] for i in np.asarray(ids).reshape(-1))


def split(ids: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, ...]:
    """``(train, val)``: the last ``val_fraction`` of the text is held out."""
    cut = int(round(len(ids) * (1.0 - val_fraction)))
    return ids[:cut], ids[cut:]


def windows(ids: np.ndarray, starts: np.ndarray, seq: int) -> tuple[np.ndarray, ...]:
    """Inputs ``ids[s : s + seq]`` and next-character targets, one row per start."""
    idx = np.asarray(starts, np.int64)[:, None] + np.arange(seq, dtype=np.int64)
    return ids[idx], ids[idx + 1]


def batch_starts(seed: int, step: int, n: int, seq: int, batch: int) -> np.ndarray:
    """The start of each training window of step ``step`` (uniform, from the seed)."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _DATA), step)
    return np.asarray(
        jax.random.randint(key, (batch,), 0, n - seq, dtype=jnp.int32), np.int64
    )


def eval_starts(n: int, seq: int, count: int) -> np.ndarray:
    """``count`` evenly spaced window starts over a split of ``n`` characters."""
    return np.linspace(0, n - seq - 1, count).round().astype(np.int64)


# ---------------------------------------------------------------------------- model


def make_model(
    vocab_size: int,
    width: int,
    depth: int,
    heads: int,
    seq: int,
    *,
    drop: float = 0.0,
    remat: bool = False,
) -> jaxnet.Layer:
    """The GPT: ids ``(batch, seq)`` -> logits ``(batch, seq, vocab_size)``."""
    return jaxnet.serial(
        jaxnet.Embedding(vocab_size, width),
        jaxnet.LearnedPositionalEmbedding(seq),
        jaxnet.Stack(
            jaxnet.TransformerBlock(heads, width, causal=True, drop_rate=drop),
            depth,
            remat=remat,
        ),
        jaxnet.LayerNorm(),
        jaxnet.Dense(vocab_size),
    )


def make_optimizer(cfg: dict[str, Any]) -> optax.GradientTransformation:
    """AdamW with global-norm clipping, linear warm-up and cosine decay to lr/10."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0,
        cfg["lr"],
        warmup_steps=max(1, min(cfg["warmup"], cfg["steps"] - 1)),
        decay_steps=max(2, cfg["steps"]),
        end_value=cfg["lr"] / 10,
    )
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(schedule, b2=0.99, weight_decay=cfg["weight_decay"]),
    )


def char_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-position cross-entropy (the train step averages it)."""
    return losses.softmax_cross_entropy_with_integer_labels(logits, labels)


def make_sampler(
    model: jaxnet.Layer, seq: int, policy: jaxnet.Policy | None
) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """A jitted ``next_char(params, buf, n, key, temperature) -> (buf, char)``.

    ``buf`` is a fixed ``(seq,)`` window holding ``n`` valid ids (``1 <= n <= seq``);
    the new character is drawn from the logits at position ``n - 1`` (``argmax`` when
    ``temperature <= 0``) and written at ``n``, or, when the window is full, the
    window slides left by one first. Fixed shapes: it compiles once.
    """

    @jax.jit
    def next_char(
        params: Any, buf: jax.Array, n: jax.Array, key: jax.Array, temperature: Any
    ) -> tuple[jax.Array, jax.Array]:
        if policy is not None:
            params = policy.cast_to_compute(params)
        logits = model.apply(params, buf[None], train=False)[0]
        last = jax.lax.dynamic_index_in_dim(logits, n - 1, keepdims=False)
        last = last.astype(jnp.float32)
        t = jnp.asarray(temperature, jnp.float32)
        drawn = jax.random.categorical(key, last / jnp.maximum(t, 1e-6))
        char = jnp.where(t > 0, drawn, jnp.argmax(last)).astype(buf.dtype)
        buf = jnp.where(n >= seq, jnp.roll(buf, -1), buf)
        return buf.at[jnp.minimum(n, seq - 1)].set(char), char

    return next_char


def sample(
    next_char: Callable[..., Any],
    params: Any,
    prompt: str,
    vocab: str,
    *,
    seq: int,
    num_chars: int,
    temperature: float,
    key: jax.Array,
    sharding: Any = None,
) -> str:
    """``num_chars`` characters generated after ``prompt`` (not included).

    ``sharding`` places the window (e.g. replicated on the parameters' mesh), so that
    the first call compiles the same program as the others.

    Raises:
      ValueError: an empty prompt, or one with characters outside ``vocab``.
    """
    if not prompt:
        raise ValueError(
            "tiny_gpt.sample: the prompt is empty; give at least one character."
        )
    ids = encode(prompt, vocab)[-seq:]
    buf = np.zeros(seq, np.int32)
    buf[: len(ids)] = ids
    buf, n = jax.device_put(buf, sharding), len(ids)
    out = []
    for i in range(num_chars):
        buf, char = next_char(
            params,
            buf,
            jnp.asarray(n, jnp.int32),
            jax.random.fold_in(key, i),
            jnp.asarray(temperature, jnp.float32),
        )
        out.append(char)
        n = min(n + 1, seq)
    return decode(np.asarray(jnp.stack(out)) if out else [], vocab)


# ---------------------------------------------------------------------- checkpoints


def _host(tree: Any) -> Any:
    """The tree as host values, gathered from every process when needed."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def save_checkpoint(
    path: str, params: Any, opt_state: Any, step: int, cfg: dict, vocab: str
) -> None:
    """Write params, optimizer state, step and config (process 0 only)."""
    tree = _host({"params": params, "opt_state": opt_state})  # collective: everyone
    if jax.process_index() == 0:
        meta = {
            "config": {k: cfg[k] for k in CONFIG_KEYS},
            "step": step,
            "vocab": vocab,
        }
        jaxnet.save(path, tree, metadata=meta)


def check_config(path: str, meta: dict, cfg: dict, vocab: str) -> None:
    """Raise unless the checkpoint's config and vocabulary are this run's.

    Raises:
      jaxnet.CheckpointError: naming every differing entry, with both values.
    """
    saved = meta.get("config", {})
    diffs = [
        f"{k}={saved.get(k)!r} in the file but {cfg[k]!r} now"
        for k in CONFIG_KEYS
        if saved.get(k) != cfg[k]
    ]
    if meta.get("vocab") != vocab:
        diffs.append("a different character vocabulary (another Python version?)")
    if diffs:
        raise jaxnet.CheckpointError(
            f"tiny_gpt: cannot resume from {path}: it was written by a run with a "
            f"different configuration: {'; '.join(diffs)}. Resume with the flags that "
            "wrote it, or give a new --checkpoint path (or delete the file) to start "
            "over."
        )


# --------------------------------------------------------------------------- train


class Programs(NamedTuple):
    """What one configuration compiles, built once per process (see :func:`build`)."""

    model: jaxnet.Layer
    opt: optax.GradientTransformation
    dp: jaxnet.DataParallel
    step: jaxnet.ShardedStep
    eval: Callable[..., jax.Array]
    next_char: Callable[..., Any]


@functools.lru_cache(maxsize=8)
def build(
    vocab_size: int,
    cfg_items: tuple[tuple[str, Any], ...],
    remat: bool,
    devices: tuple[Any, ...],
    fsdp: bool,
) -> Programs:
    """The model, optimizer, mesh and jitted functions of a configuration.

    Cached, so that calling :func:`main` again in the same process (to resume, in
    the tests) reuses the compiled programs instead of compiling them again.
    """
    cfg = dict(cfg_items)
    model = make_model(
        vocab_size,
        cfg["width"],
        cfg["depth"],
        cfg["heads"],
        cfg["seq"],
        drop=cfg["drop"],
        remat=remat,
    )
    policy = jaxnet.Policy.of(
        None if cfg["compute_dtype"] == "float32" else cfg["compute_dtype"]
    )
    opt = make_optimizer(cfg)
    dp = jaxnet.DataParallel(jaxnet.data_mesh(devices), fsdp=fsdp)
    step = dp.step(jaxnet.make_train_step(model, char_loss, opt, policy=policy))
    eval_step = jaxnet.make_eval_step(model, char_loss, policy=policy)

    @jax.jit
    def evaluate(params: Any, batch: Any) -> jax.Array:
        return jnp.mean(eval_step(params, batch)["loss"])

    return Programs(
        model, opt, dp, step, evaluate, make_sampler(model, cfg["seq"], policy)
    )


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or resume), evaluate, checkpoint, sample; return the numbers."""
    cfg = {k: getattr(args, k) for k in CONFIG_KEYS}
    lead = jax.process_index() == 0
    log = print if lead and not args.quiet else (lambda *a, **k: None)

    text = load_text()
    vocab = make_vocab(text)
    train_ids, val_ids = split(encode(text, vocab))

    devices = jax.devices()
    if args.devices:
        if args.devices > len(devices):
            raise ValueError(
                f"tiny_gpt: --devices {args.devices} but only {len(devices)} devices "
                "are present; pass at most that many (or omit the flag for all)."
            )
        devices = devices[: args.devices]
    meta = None
    if args.checkpoint and os.path.exists(args.checkpoint):  # refuse early
        meta = jaxnet.inspect_checkpoint(args.checkpoint)["metadata"]
        check_config(args.checkpoint, meta, cfg, vocab)

    prog = build(
        len(vocab),
        tuple(sorted(cfg.items())),
        args.remat,
        tuple(devices),
        args.fsdp,
    )
    dp = prog.dp
    rows = dp.process_slice(args.batch)  # raises when the batch does not split
    n_eval = -(-args.eval_windows // dp.size) * dp.size
    eval_rows = dp.process_slice(n_eval)

    root = jax.random.key(args.seed)
    _, params = prog.model.init(jax.random.fold_in(root, _INIT), (None, args.seq))
    opt_state = prog.opt.init(params)
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))
    log(
        f"text: {len(text)} characters, vocabulary {len(vocab)}; train "
        f"{len(train_ids)}, validation {len(val_ids)}\nmodel: {n_params} parameters "
        f"(width {args.width}, depth {args.depth}, heads {args.heads}, seq {args.seq})"
        f"; {dp!r}; compute {args.compute_dtype}"
    )

    start = 0
    if meta is not None:
        tree = jaxnet.load(
            args.checkpoint, like={"params": params, "opt_state": opt_state}
        )
        params, opt_state, start = tree["params"], tree["opt_state"], int(meta["step"])
        log(f"resumed from step {start} of {args.checkpoint}")
    params, opt_state = dp.put_params(params), dp.put_params(opt_state)

    step_fn, eval_fn = prog.step, prog.eval
    ex, ey = windows(val_ids, eval_starts(len(val_ids), args.seq, n_eval), args.seq)
    eval_batch = dp.put_batch((ex[eval_rows], ey[eval_rows]))

    def evaluate(p: Any) -> float:
        return float(eval_fn(p, eval_batch))

    stop = args.steps if args.stop_at is None else min(args.stop_at, args.steps)
    history: list[dict[str, Any]] = []
    val0 = evaluate(params)
    log(f"step {start:6d}  train      -  val {val0:.4f}")
    first_train = None
    pending: list[jax.Array] = []
    tokens = args.batch * args.seq
    clock, timed_steps, compile_s = time.perf_counter(), 0, 0.0
    t_start = time.perf_counter()
    drop_key = jax.random.fold_in(root, _DROPOUT)
    for step in range(start + 1, stop + 1):
        x, y = windows(
            train_ids,
            batch_starts(args.seed, step, len(train_ids), args.seq, args.batch)[rows],
            args.seq,
        )
        params, opt_state, m = step_fn(
            params, opt_state, (x, y), key=jax.random.fold_in(drop_key, step)
        )
        pending.append(m["loss"])
        if step == start + 1:  # the first step compiles: keep it out of tokens/s
            first_train = float(m["loss"])
            compile_s = time.perf_counter() - clock
            clock = time.perf_counter()
        else:
            timed_steps += 1
        last = step == stop
        if step % args.eval_every == 0 or last:
            train_loss = float(np.mean([float(v) for v in pending]))
            elapsed = time.perf_counter() - clock
            tok_s = tokens * timed_steps / elapsed if timed_steps else float("nan")
            val = evaluate(params)
            row = {"step": step, "train_loss": train_loss, "val_loss": val}
            history.append(row | {"tokens_per_s": tok_s})
            log(
                f"step {step:6d}  train {train_loss:.4f}  val {val:.4f}  "
                f"{tok_s:9.0f} tokens/s"
            )
            pending, timed_steps, clock = [], 0, time.perf_counter()
        if args.checkpoint and (last or step % args.checkpoint_every == 0):
            save_checkpoint(args.checkpoint, params, opt_state, step, cfg, vocab)
    seconds = time.perf_counter() - t_start
    end = max(start, stop)
    if end > start:
        log(
            f"trained steps {start + 1}..{end} in {seconds:.1f} s (first step, with "
            f"compilation, {compile_s:.1f} s)"
        )

    text_out = ""
    if args.sample_chars > 0:
        text_out = sample(
            prog.next_char,
            params,
            args.prompt,
            vocab,
            seq=args.seq,
            num_chars=args.sample_chars,
            temperature=args.temperature,
            key=jax.random.fold_in(root, _SAMPLE),
            sharding=dp.replicated,
        )
        log(f"sample (temperature {args.temperature}):\n{args.prompt}{text_out}")
    return {
        "history": history,
        "initial_val_loss": val0,
        "first_train_loss": first_train,
        "final_val_loss": history[-1]["val_loss"] if history else val0,
        "params": params,
        "opt_state": opt_state,
        "step": end,
        "resumed_from": start,
        "sample": text_out,
        "vocab": vocab,
        "seconds": seconds,
        "compile_seconds": compile_s,
        "devices": dp.size,
        "num_params": n_params,
        "next_char": prog.next_char,
    }


def parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a = p.add_argument
    a("--width", type=int, default=96, help="model width (d_model)")
    a("--depth", type=int, default=3, help="transformer blocks")
    a("--heads", type=int, default=3, help="attention heads (divide --width)")
    a("--seq", type=int, default=64, help="context length in characters")
    a("--batch", type=int, default=32, help="global batch (windows per step)")
    a("--steps", type=int, default=400, help="total optimizer steps")
    a("--lr", type=float, default=3e-3, help="peak learning rate")
    a("--warmup", type=int, default=20, help="linear warm-up steps")
    a("--weight-decay", type=float, default=1e-4)
    a("--drop", type=float, default=0.0, help="dropout rate in the blocks")
    a("--seed", type=int, default=0, help="the source of every random choice")
    a("--compute-dtype", choices=("float32", "bfloat16"), default="float32")
    a("--remat", action="store_true", help="rematerialise the blocks (less memory)")
    a("--fsdp", action="store_true", help="also shard parameters over the devices")
    a("--devices", type=int, default=0, help="use the first N devices (0: all)")
    a("--eval-every", type=int, default=50)
    a("--eval-windows", type=int, default=64, help="held-out windows per evaluation")
    a("--checkpoint", default=None, help="checkpoint file: written, and resumed")
    a("--checkpoint-every", type=int, default=100)
    a("--stop-at", type=int, default=None, help="stop after this step (resume later)")
    a("--prompt", default="The ")
    a("--sample-chars", type=int, default=300)
    a("--temperature", type=float, default=0.8, help="0: greedy")
    a("--coordinator", default=None, help="multi-host: HOST:PORT of process 0")
    a("--num-processes", type=int, default=None)
    a("--process-id", type=int, default=None)
    a("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse the flags, start the distributed runtime if asked, train."""
    args = parser().parse_args(argv)
    for name in ("steps", "eval_every", "checkpoint_every", "eval_windows"):
        if getattr(args, name) < 1:
            raise ValueError(f"tiny_gpt: --{name.replace('_', '-')} must be >= 1.")
    if (
        args.coordinator
        or args.num_processes is not None
        or args.process_id is not None
    ):
        jaxnet.initialize_distributed(
            args.coordinator, args.num_processes, args.process_id
        )
    return train(args)


if __name__ == "__main__":
    main()
