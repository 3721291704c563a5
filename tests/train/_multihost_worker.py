"""One process of the multi-host test in tests/train/test_parallel.py.

Usage: ``python _multihost_worker.py OUT NUM_PROCESSES PROCESS_ID PORT LOCAL_DEVICES``.
With ``NUM_PROCESSES = 1`` it is the single-process reference run (no distributed
runtime). Otherwise it joins JAX's distributed runtime on localhost, builds the mesh
over every process's devices, feeds only its own rows of each global batch, trains,
gathers the parameters and saves them with ``jaxnet.save`` to ``OUT.PROCESS_ID``.
"""

from __future__ import annotations

import os
import sys

GLOBAL_BATCH, STEPS = 16, 3


def main(out: str, nproc: int, pid: int, port: int) -> None:
    import jax
    import numpy as np
    import optax
    from jax.experimental import multihost_utils

    import jaxnet

    if nproc > 1:
        jaxnet.initialize_distributed(f"localhost:{port}", nproc, pid, timeout=60)

    model = jaxnet.serial(
        jaxnet.Dense(32), jaxnet.Relu(), jaxnet.Dropout(0.1), jaxnet.Dense(4)
    )
    _, params = model.init(jax.random.key(0), (None, 8))
    opt = optax.adam(1e-2)
    dp = jaxnet.DataParallel(fsdp=True, min_shard_size=64)
    step = dp.step(
        jaxnet.make_train_step(
            model, jaxnet.losses.softmax_cross_entropy_with_integer_labels, opt
        )
    )
    params, opt_state = dp.put_params(params), dp.put_params(opt.init(params))

    rng = np.random.default_rng(0)
    rows = dp.process_slice(GLOBAL_BATCH)
    losses = []
    for i in range(STEPS):
        # Every process draws the same global batch and keeps its own rows of it.
        x = rng.standard_normal((GLOBAL_BATCH, 8)).astype(np.float32)
        y = rng.integers(0, 4, GLOBAL_BATCH).astype(np.int32)
        params, opt_state, m = step(
            params,
            opt_state,
            (x[rows], y[rows]),
            key=jax.random.fold_in(jax.random.key(1), i),
        )
        losses.append(float(m["loss"]))  # replicated: readable on every process

    w = params["dense_0"]["w"]
    gathered = multihost_utils.process_allgather(params, tiled=True)
    jaxnet.save(
        f"{out}.{pid}",
        gathered,
        metadata={
            "process_count": jax.process_count(),
            "device_count": jax.device_count(),
            "local_device_count": jax.local_device_count(),
            "rows": [rows.start, rows.stop],
            "w_spec": [None if s is None else str(s) for s in w.sharding.spec],
            "w_devices": len(w.sharding.device_set),
            "w_local_shards": [list(sh.data.shape) for sh in w.addressable_shards],
            "losses": losses,
        },
    )
    if nproc > 1:
        jax.distributed.shutdown()


if __name__ == "__main__":  # never run when pytest imports the file
    out, nproc, pid, port, local = sys.argv[1], *map(int, sys.argv[2:6])
    # Before JAX starts: this process's simulated CPU devices.
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={local}"
    main(out, nproc, pid, port)
