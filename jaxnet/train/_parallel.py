"""Data parallelism on JAX's own sharding: a device mesh, placement, a sharded step,
and multi-host start-up.

The model and the train step are the same functions as on one device. What changes
is where the arrays live:

* the batch is split along the mesh axis ``"data"`` (each device holds
  ``global_batch / num_devices`` examples);
* parameters and optimizer state are replicated, or, with ``fsdp=True``, each large
  leaf is split along one of its axes (FSDP / ZeRO-3 style);
* ``jax.jit`` compiles the step for that layout and XLA's SPMD partitioner inserts
  the collectives (an all-reduce of the gradients; all-gathers and reduce-scatters
  for sharded parameters). Nothing in jaxnet communicates by hand.

Multi-host: every process runs the same program. :func:`initialize_distributed`
starts JAX's distributed runtime; then the mesh spans every process's devices, each
process feeds its own slice of the global batch (:meth:`DataParallel.process_slice`)
and the step is a single SPMD program across hosts.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._errors import DistributedError, ShapeError
from .._types import Params, PRNGKey

#: Leaves with fewer elements stay replicated under ``fsdp=True``: splitting a bias
#: saves nothing and costs a collective.
MIN_SHARD_SIZE = 2**12


def data_mesh(devices: Sequence[Any] | None = None, *, axis: str = "data") -> Mesh:
    """A one-axis mesh over ``devices`` (default: every device of every process).

    Examples:
      >>> import jaxnet
      >>> mesh = jaxnet.data_mesh()
      >>> mesh.axis_names, mesh.size >= 1
      (('data',), True)
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("jaxnet.data_mesh: got an empty device list.")
    return Mesh(np.array(devs, dtype=object), (axis,))


def _is_array(leaf: Any) -> bool:
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype")


def _is_key(leaf: Any) -> bool:
    return _is_array(leaf) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


class DataParallel:
    """Where the arrays of a data-parallel train step live, and the step itself.

    Args:
      mesh: a :class:`jax.sharding.Mesh`; default :func:`data_mesh` over all devices.
      axis: the mesh axis the batch is split along.
      fsdp: also split each parameter (and its optimizer state) with at least
        ``min_shard_size`` elements along its largest axis divisible by the axis size.
      min_shard_size: see ``fsdp``.

    Typical use (the step is the one :func:`jaxnet.make_train_step` returns)::

        dp = jaxnet.DataParallel()                       # all devices, axis "data"
        step = dp.step(jaxnet.make_train_step(model, loss, optimizer))
        params, opt_state = dp.put_params(params), dp.put_params(opt_state)
        params, opt_state, metrics = step(params, opt_state, (x, y), key=key)

    Examples:
      >>> import jax, jax.numpy as jnp, optax, jaxnet
      >>> dp = jaxnet.DataParallel()
      >>> model, opt = jaxnet.Dense(1), optax.sgd(0.1)
      >>> _, params = model.init(jax.random.key(0), (None, 2))
      >>> step = dp.step(jaxnet.make_train_step(model, jaxnet.losses.mse, opt))
      >>> n = 2 * dp.size
      >>> params, s, m = step(params, opt.init(params), (jnp.ones((n, 2)), jnp.ones((n, 1))))
      >>> params["w"].sharding.is_fully_replicated
      True
    """

    def __init__(
        self,
        mesh: Mesh | None = None,
        axis: str = "data",
        *,
        fsdp: bool = False,
        min_shard_size: int = MIN_SHARD_SIZE,
    ) -> None:
        if mesh is None:
            mesh = data_mesh(axis=axis)
        if not isinstance(mesh, Mesh):
            raise TypeError(
                f"jaxnet.DataParallel: mesh must be a jax.sharding.Mesh (e.g. "
                f"jaxnet.data_mesh()), got {type(mesh).__name__}."
            )
        if axis not in mesh.axis_names:
            raise ValueError(
                f"jaxnet.DataParallel: the mesh has axes {tuple(mesh.axis_names)}, not "
                f"{axis!r}. Pass axis= one of them, or build the mesh with that axis "
                f"name (jaxnet.data_mesh(axis={axis!r}))."
            )
        self.mesh, self.axis, self.fsdp = mesh, axis, bool(fsdp)
        self.min_shard_size = int(min_shard_size)

    @property
    def size(self) -> int:
        """The number of devices along the data axis (shards of each batch)."""
        return int(self.mesh.shape[self.axis])

    def __repr__(self) -> str:
        return (
            f"DataParallel(axis={self.axis!r}, size={self.size}, mesh="
            f"{dict(self.mesh.shape)}, fsdp={self.fsdp})"
        )

    # ------------------------------------------------------------------ shardings

    def _named(self, spec: P) -> NamedSharding:
        return NamedSharding(self.mesh, spec)

    @property
    def replicated(self) -> NamedSharding:
        """Every device holds the whole array."""
        return self._named(P())

    def param_sharding(self, leaf: Any) -> NamedSharding:
        """The sharding of one parameter or optimizer-state leaf."""
        shape = tuple(getattr(leaf, "shape", ()))
        if not self.fsdp or _is_key(leaf) or int(np.prod(shape)) < self.min_shard_size:
            return self.replicated
        axes = [i for i, d in enumerate(shape) if d % self.size == 0]
        if not axes:
            return self.replicated
        i = max(axes, key=lambda a: (shape[a], -a))
        return self._named(P(*([None] * i), self.axis))

    def param_shardings(self, tree: Any) -> Any:
        """:meth:`param_sharding` of every leaf of ``tree``."""
        return jax.tree.map(self.param_sharding, tree)

    def batch_sharding(self, leaf: Any) -> NamedSharding:
        """Split along the leading (example) axis."""
        return self._named(P(self.axis)) if np.ndim(leaf) else self.replicated

    # ------------------------------------------------------------------ placement

    def _put(self, leaf: Any, sharding: NamedSharding) -> Any:
        # Only an exact match is kept: an equivalent SingleDeviceSharding (a fresh
        # init's arrays on a one-device mesh) would make jax.jit compile the step
        # again when the next call passes the step's own NamedSharding outputs.
        if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
            return leaf
        if jax.process_count() == 1 or (
            isinstance(leaf, jax.Array) and not leaf.is_fully_addressable
        ):
            return jax.device_put(leaf, sharding)
        # Multi-process: every process holds the same host value; each device takes
        # its slice of it.
        value = np.asarray(leaf)
        return jax.make_array_from_callback(value.shape, sharding, lambda i: value[i])

    def put_params(self, tree: Any) -> Any:
        """Place parameters or optimizer state (replicated, or split under ``fsdp``).

        Arrays already placed are returned as they are. With several processes every
        process must pass the same values (e.g. the same init key).
        """
        return jax.tree.map(lambda a: self._put(a, self.param_sharding(a)), tree)

    def process_slice(self, global_batch: int) -> slice:
        """The rows of a global batch this process feeds (all of them on one host).

        Examples:
          >>> import jaxnet
          >>> jaxnet.DataParallel().process_slice(8)
          slice(0, 8, None)
        """
        self._check_divisible(global_batch)
        n = global_batch // jax.process_count()
        return slice(jax.process_index() * n, (jax.process_index() + 1) * n)

    def _check_divisible(self, global_batch: int) -> None:
        if global_batch % self.size:
            lo = global_batch // self.size * self.size
            fix = f"{lo} or {lo + self.size}" if lo else f"{self.size}"
            raise ShapeError(
                f"jaxnet.DataParallel: the global batch of {global_batch} examples "
                f"does not split over the {self.size} devices of mesh axis "
                f"{self.axis!r}. Use a multiple of {self.size} (e.g. {fix}), e.g. by "
                "dropping the last partial batch."
            )

    def put_batch(self, batch: Any) -> Any:
        """Place a batch split along the data axis.

        With one process, ``batch`` is the global batch. With several, each process
        passes its own rows (:meth:`process_slice`) as host or local arrays, and
        gets back global arrays of ``process_count`` times as many rows.

        Raises:
          ShapeError: the global batch does not divide over the devices.
        """
        procs = jax.process_count()

        def put(leaf: Any) -> Any:
            if not np.ndim(leaf):
                return self._put(leaf, self.replicated)
            sharding = self.batch_sharding(leaf)
            if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
                self._check_divisible(leaf.shape[0])
                return self._put(leaf, sharding)
            self._check_divisible(np.shape(leaf)[0] * procs)
            if procs == 1:
                return self._put(leaf, sharding)
            return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))

        return jax.tree.map(put, batch)

    # ----------------------------------------------------------------------- steps

    def step(self, step: Callable[..., Any], *, donate: bool = True) -> ShardedStep:
        """Jit a train step for this layout (see :class:`ShardedStep`)."""
        return ShardedStep(step, self, donate=donate)


def _key_parts(key: Any) -> tuple[Any, Any]:
    """``(raw uint32 key data, impl or None)``: raw data crosses process boundaries."""
    if key is None:
        return None, None
    if _is_key(key):
        return jax.random.key_data(key), jax.random.key_impl(key)
    return key, None


class ShardedStep:
    """A train step compiled for a :class:`DataParallel` layout.

    ``step(params, opt_state, batch, *, key=None, state=None)`` with the signature and
    results of the wrapped step. Arguments are placed on the mesh first (a no-op for
    arrays already placed, e.g. the previous step's outputs); parameters and optimizer
    state keep their layout across steps; metrics and state come back replicated.
    Parameters and optimizer state are donated.
    """

    def __init__(
        self, step: Callable[..., Any], dp: DataParallel, *, donate: bool = True
    ) -> None:
        self.step, self.dp, self.donate = step, dp, donate
        self._cache: dict[Any, Callable[..., Any]] = {}
        functools.update_wrapper(self, step)

    def _jitted(
        self, params: Params, opt_state: Any, impl: Any, stateful: bool
    ) -> Callable[..., Any]:
        """One compiled program per layout (tree structure, shapes, key impl, state)."""
        dp, step = self.dp, self.step
        sig = (
            jax.tree.structure((params, opt_state)),
            tuple(np.shape(a) for a in jax.tree.leaves((params, opt_state))),
            impl,
            stateful,
        )
        if sig in self._cache:
            return self._cache[sig]

        def run(
            params: Params, opt_state: Any, batch: Any, key: Any, state: Any
        ) -> Any:
            if impl is not None:
                key = jax.random.wrap_key_data(key, impl=impl)
            kw: dict[str, Any] = {"key": key}
            if stateful:
                kw["state"] = state
            return step(params, opt_state, batch, **kw)

        outs = (dp.param_shardings(params), dp.param_shardings(opt_state))
        outs += (dp.replicated,) * (2 if stateful else 1)
        fn = jax.jit(
            run, out_shardings=outs, donate_argnums=(0, 1) if self.donate else ()
        )
        self._cache[sig] = fn
        return fn

    def __call__(
        self,
        params: Params,
        opt_state: Any,
        batch: Any,
        *,
        key: PRNGKey | None = None,
        state: Any = None,
    ) -> Any:
        dp = self.dp
        params, opt_state = dp.put_params(params), dp.put_params(opt_state)
        batch = dp.put_batch(batch)
        raw, impl = _key_parts(key)
        raw = None if raw is None else dp._put(raw, dp.replicated)
        if state is not None:
            state = jax.tree.map(lambda a: dp._put(a, dp.replicated), state)
        fn = self._jitted(params, opt_state, impl, state is not None)
        return fn(params, opt_state, batch, raw, state)


# ------------------------------------------------------------------ multi-host


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _parse_address(fn: str, address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DistributedError(
            f"{fn}: coordinator_address must be 'host:port' (e.g. '10.0.0.1:1234'), "
            f"got {address!r}."
        )
    return host.strip("[]"), int(port)


def _wait_for(fn: str, host: str, port: int, timeout: float, who: str) -> None:
    """Block until a TCP connection to the coordinator succeeds, or raise."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as exc:
            last = exc
            time.sleep(0.2)
    raise DistributedError(
        f"{fn}: {who} could not reach the coordinator at {host}:{port} within "
        f"{timeout:g} s (last error: {last}). Check that process 0 was started with "
        "the same coordinator address, that the host name resolves from this machine "
        "and that the port is open (firewall); raise timeout= if process 0 starts "
        "late."
    )


def _check_bindable(fn: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as exc:
            raise DistributedError(
                f"{fn}: process 0 runs the coordinator on port {port}, which is not "
                f"free ({exc}). Pick another port, or stop the process holding it."
            ) from None


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    timeout: float = 300.0,
) -> None:
    """Start JAX's distributed runtime (:func:`jax.distributed.initialize`), checked.

    Arguments not given are read from ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``; when none is set at all, JAX's
    cluster auto-detection runs (SLURM, Open MPI, Kubernetes, Cloud TPU). Before
    handing over, every process except 0 waits (at most ``timeout`` seconds) until
    the coordinator's port answers and raises a clear error otherwise: JAX itself
    aborts the process when it cannot register, with no Python exception.

    Args:
      coordinator_address: ``"host:port"`` of process 0.
      num_processes: total number of processes.
      process_id: this process's index in ``[0, num_processes)``.
      local_device_ids: the local devices this process uses (e.g. one GPU each).
      timeout: seconds to wait for the coordinator and for every process to join.

    Raises:
      DistributedError: bad arguments, the coordinator unreachable, the port taken,
        or JAX's own start-up failing (its message is kept).
    """
    fn = "jaxnet.initialize_distributed"
    if jax.distributed.is_initialized():
        raise DistributedError(
            f"{fn}: the distributed runtime is already initialised in this process "
            f"(process {jax.process_index()} of {jax.process_count()}); call it once."
        )
    address = coordinator_address or _env("JAX_COORDINATOR_ADDRESS")
    nproc = num_processes if num_processes is not None else _env("JAX_NUM_PROCESSES")
    pid = process_id if process_id is not None else _env("JAX_PROCESS_ID")
    manual = (address, nproc, pid)
    if any(v is not None for v in manual) and any(v is None for v in manual):
        raise DistributedError(
            f"{fn}: give all of coordinator_address, num_processes and process_id (or "
            "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID), or none of "
            "them for cluster auto-detection; got coordinator_address="
            f"{address!r}, num_processes={nproc!r}, process_id={pid!r}."
        )
    if timeout <= 0:
        raise DistributedError(f"{fn}: timeout must be > 0 seconds, got {timeout!r}.")
    kw: dict[str, Any] = {"initialization_timeout": max(1, int(np.ceil(timeout)))}
    if local_device_ids is not None:
        kw["local_device_ids"] = list(local_device_ids)
    if address is not None:
        try:
            nproc, pid = int(nproc), int(pid)  # type: ignore[arg-type]
        except ValueError:
            raise DistributedError(
                f"{fn}: num_processes and process_id must be integers, got "
                f"{nproc!r} and {pid!r}."
            ) from None
        if nproc < 1 or not 0 <= pid < nproc:
            raise DistributedError(
                f"{fn}: need num_processes >= 1 and 0 <= process_id < num_processes, "
                f"got num_processes={nproc}, process_id={pid}."
            )
        host, port = _parse_address(fn, address)
        if pid == 0:
            _check_bindable(fn, port)
        else:
            _wait_for(fn, host, port, timeout, f"process {pid} of {nproc}")
        kw |= {
            "coordinator_address": address,
            "num_processes": nproc,
            "process_id": pid,
        }
    try:
        jax.distributed.initialize(**kw)
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(
            f"{fn}: jax.distributed.initialize failed: {exc}. Without a supported "
            "cluster manager, pass coordinator_address, num_processes and process_id."
        ) from exc
