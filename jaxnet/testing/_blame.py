"""``check_model``: check every sub-layer of a model where it actually runs, and name
the faulty one.

A wrong backward deep inside ``serial(Dense, MyLayer, Dense)`` makes a whole-model
check fail the *parameters upstream of it* (``dense_0/w``), never the layer that is
wrong. ``check_model`` runs the model once, records each layer's concrete input,
params and options as they reach it, and checks each layer there: its ``jax.grad``
against numerical derivatives and, when it has one, its hand-written ``backward``.
The faulty layer is the deepest failing one: a combinator fails when a child does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..nn._layer import _CALLS, _PATH, Layer, accepted_options
from ._check import check_grads
from ._report import GradReport


@dataclasses.dataclass(frozen=True)
class LayerCheck:
    """One layer's check inside a model."""

    path: str
    desc: str
    report: GradReport
    has_backward: bool


@dataclasses.dataclass(frozen=True)
class ModelReport:
    """The result of :func:`check_model`: one :class:`LayerCheck` per layer call.

    ``blame()`` names the faulty layers: failing layers none of whose sub-layers
    fail. ``ok`` is True when every layer's report is ok.
    """

    name: str
    layers: tuple[LayerCheck, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every layer passes."""
        return all(c.report.ok for c in self.layers)

    def failures(self) -> tuple[LayerCheck, ...]:
        """The layers whose report has a FAIL row."""
        return tuple(c for c in self.layers if c.report.failures())

    def blame(self) -> tuple[str, ...]:
        """Paths of the failing layers that contain no failing layer themselves."""
        bad = self.failures()
        pos = {id(c): i for i, c in enumerate(self.layers)}

        def inside(d: LayerCheck, c: LayerCheck) -> bool:
            # Calls are recorded parent first; a residual's branch shares its path.
            if d.path == c.path:
                return pos[id(d)] > pos[id(c)]
            return not c.path or d.path.startswith(c.path + "/")

        return tuple(
            c.path or "(model)"
            for c in bad
            if not any(inside(d, c) for d in bad if d is not c)
        )

    def report_of(self, path: str) -> GradReport:
        """The report of the (first) layer call at ``path``."""
        for c in self.layers:
            if (c.path or "(model)") == path:
                return c.report
        raise KeyError(
            f"check_model: no layer at {path!r}; have {[c.path for c in self.layers]}"
        )

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` naming the faulty layers unless all pass."""
        if not self.ok:
            raise AssertionError(str(self))

    def __str__(self) -> str:
        head = ("layer", "type", "rows", "verdict", "worst check")
        lines = []
        for c in self.layers:
            bad = c.report.failures() or c.report.noisy()
            worst = bad[0] if bad else None
            verdict = (
                "ok" if c.report.ok else ("FAIL" if c.report.failures() else "noisy")
            )
            lines.append(
                (
                    c.path or "(model)",
                    c.desc if len(c.desc) <= 40 else c.desc[:37] + "...",
                    str(len(c.report.rows)),
                    verdict,
                    f"{worst.path} {worst.check} at {worst.worst_index}"
                    if worst
                    else "",
                )
            )
        widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        blame = self.blame()
        verdict = (
            "ok"
            if self.ok
            else (
                f"FAILED: blame {', '.join(blame)}" if blame else "not verified (noisy)"
            )
        )
        out = [f"model check of {self.name}: {verdict}", fmt.format(*head).rstrip()]
        out += [fmt.format(*l).rstrip() for l in lines]
        return "\n".join(out + list(self.notes))


def _record(model: Layer, params: Any, x: Any, options: dict[str, Any]) -> list[Any]:
    calls: list[Any] = []
    t_calls, t_path = _CALLS.set(calls), _PATH.set(())
    try:
        model.apply(params, x, **options)
    finally:
        _CALLS.reset(t_calls)
        _PATH.reset(t_path)
    return calls


def check_model(
    model: Layer,
    params: Any,
    x: Any,
    *,
    method: str | None = "auto",
    seed: int = 0,
    backward: bool = True,
    **options: Any,
) -> ModelReport:
    """Check every layer of ``model`` at the activations that reach it; name the
    faulty one.

    The model runs once eagerly with ``options`` (``key=``, ``train=True``,
    ``state=``...) while every layer's ``apply`` records its params, input and
    options. Each recorded layer is then checked alone with :func:`check_grads` on
    ``<g, layer(params, x)>`` (``g`` a random cotangent) with respect to its params
    and (floating-point) input: ``jax.grad`` against numerical derivatives, and the
    hand-written ``backward`` against both when the layer has one. Layers inside a
    trace (a ``Stack``'s scanned block) are checked as part of their parent.

    Args:
      model: any jaxnet layer or model.
      params: its parameters.
      x: an input batch.
      method: the numerical method (:func:`check_grads`); ``None`` compares
        ``jax.grad`` with the hand-written backwards only.
      seed: seeds the cotangents and directions.
      backward: also check each layer's hand-written ``backward``.
      **options: passed to ``model.apply`` (and so to every layer).

    Returns:
      A :class:`ModelReport`: ``.ok``, ``.blame()``, ``.report_of(path)``, ``print``.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxnet
      >>> model = jaxnet.serial(jaxnet.Dense(4), jaxnet.Tanh(), jaxnet.Dense(2))
      >>> _, params = model.init(jax.random.key(0), (None, 3))
      >>> report = jaxnet.testing.check_model(model, params, jnp.ones((2, 3)))
      >>> report.ok, [c.path for c in report.layers]
      (True, ['', 'dense_0', 'tanh_1', 'dense_2'])
    """
    calls = _record(model, params, x, options)
    checks = []
    notes = []
    for i, (path, layer, p, xi, kw) in enumerate(calls):
        label = "/".join(path)
        report = _check_call(layer, p, xi, kw, method, seed + i, backward)
        checks.append(LayerCheck(label, layer.desc, report, layer.backward is not None))
    if not checks:
        notes.append("note: no layer ran with concrete values (was the model jitted?).")
    return ModelReport(model.desc, tuple(checks), tuple(notes))


def _check_call(
    layer: Layer,
    params: Any,
    x: Any,
    kw: dict[str, Any],
    method: str | None,
    seed: int,
    backward: bool,
) -> GradReport:
    stateful = layer.stateful
    # The parent passed its options to every sub-layer; alone, this one takes its own.
    kw = accepted_options(layer, kw)

    def out(p: Any, xp: Any) -> Any:
        y = layer.apply(p, xp, **kw)
        return y[0] if stateful else y

    y = out(params, x)
    rng = np.random.default_rng([seed, 99])
    g = jax.tree.map(
        lambda a: jnp.asarray(rng.standard_normal(jnp.shape(a)), jnp.asarray(a).dtype),
        y,
    )
    with_x = all(
        jnp.issubdtype(jnp.asarray(a).dtype, jnp.inexact) for a in jax.tree.leaves(x)
    )

    def dot(a: Any, b: Any) -> Any:
        return sum(
            jnp.sum(u.astype(v.dtype) * v)
            for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))
        )

    def f(point: dict) -> Any:
        return dot(g, out(point["params"], point.get("x", x)))

    analytic: Callable[[dict], dict] | None = None
    hand = layer.backward
    if backward and hand is not None:

        def by_hand(point: dict) -> dict:
            xp = point.get("x", x)
            yp = out(point["params"], xp)
            gg = jax.tree.map(lambda c, o: c.astype(o.dtype), g, yp)
            dp, dx = hand(point["params"], xp, yp, gg, **kw)
            return {"params": dp, "x": dx} if with_x else {"params": dp}

        analytic = by_hand

    point = {"params": params, "x": x} if with_x else {"params": params}
    if analytic is not None:
        try:  # a combinator's backward exists only if every sub-layer has one
            jax.eval_shape(analytic, point)
        except NotImplementedError:
            analytic = None
    if not jax.tree.leaves(point):
        return GradReport(layer.desc, ())
    return check_grads(
        jax.jit(f),
        point,
        analytic=jax.jit(analytic) if analytic is not None else None,
        method=method if method is not None or analytic is not None else "auto",
        seed=seed,
        name=layer.desc,
    )
