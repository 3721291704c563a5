"""The house's layout: the public names users already import still resolve, and the
import graph of ``jaxnet/`` only points downward, with no circle.

The graph is read from the source with ``ast`` (every ``import`` statement,
function-level ones included), so a lazy import that dodges a circle still counts.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
from collections import defaultdict

import pytest

import jaxnet

PACKAGE = pathlib.Path(jaxnet.__file__).parent

# The public names before the subpackage layout (the 0.x ``__all__`` lists, frozen
# here on purpose: removing or renaming one of them breaks user code).
OLD_PUBLIC = {
    "jaxnet": """
        AvgPool BatchNorm Bidirectional CSVLogger Callback Cell CheckpointError Conv
        ConvTranspose DTypeError DataParallel Dense DistributedError Dropout
        EarlyStopping Elu Embedding FanInConcat FanInSum FanOut FitResult Flatten
        GRUCell Gelu GlobalAvgPool GroupNorm Identity JSONLinesLogger JittedStep
        LSTMCell Lambda Layer LayerNorm LeakyRelu LearnedPositionalEmbedding
        LogSoftmax MaxPool MissingKeyError MultiHeadAttention ParamsError Policy
        RMSNorm RNN Relu Reshape RotaryEmbedding Selu ShapeError ShardedStep Sigmoid
        Silu SinusoidalPositionalEmbedding Softmax Softplus Stack StateError SumPool
        Tanh TrainState TrainingError TransformerBlock accuracy analytic data_mesh
        evaluate fit from_equinox from_flax hand_grad initialize_distributed
        inspect_checkpoint jit_step load load_with_metadata losses make_eval_step
        make_train_step parallel per_example_grads plot_history remat residual save
        serial split_key summary testing train_scan
    """,
    "jaxnet.testing": """
        EXHAUSTIVE_MAX GradCheckRow GradReport JACOBIAN_MAX LAYER_CASES LOSS_CASES
        LayerCase LayerCheck LossCase ModelReport NOISY ROUNDING SAFETY STEPS
        TOLERANCES TaylorResult Tolerance away_from check_grads check_jvp
        check_l2_penalty check_layer check_loss check_model check_vjp layer_problem
        loss_problem normal taylor_test tolerance
    """,
    "jaxnet.losses": """
        absolute_error binary_cross_entropy half_squared_error huber l2_penalty mse
        sigmoid_binary_cross_entropy softmax_cross_entropy
        softmax_cross_entropy_with_integer_labels squared_error
    """,
    "jaxnet.analytic": """
        LOSS_VJPS absolute_error_vjp attention_core attention_core_vjp
        attention_weights avg_pool_divisor batch_norm_stats batch_norm_vjp
        binary_cross_entropy_vjp conv conv_transpose conv_transpose_padding
        conv_transpose_vjp conv_vjp dense dense_vjp dropout_mask dropout_vjp elu_vjp
        embedding_lookup embedding_vjp gelu_exact_vjp gelu_tanh_vjp
        global_avg_pool_vjp group_norm group_norm_vjp gru_cell gru_cell_vjp
        half_squared_error_vjp huber_vjp l2_penalty_vjp layer_norm layer_norm_vjp
        leaky_relu_vjp learned_positional_vjp log_softmax_vjp loss_vjp lstm_cell
        lstm_cell_vjp max_pool max_pool_vjp mse_vjp multi_head_attention
        multi_head_attention_vjp relu_vjp reshape_vjp rms_norm rms_norm_vjp rnn_bptt
        rotary rotary_tables rotary_vjp selu_vjp sigmoid_binary_cross_entropy_vjp
        sigmoid_vjp silu_vjp sinusoidal_table softmax_cross_entropy_vjp
        softmax_cross_entropy_with_integer_labels_vjp softmax_vjp softplus_vjp
        squared_error_vjp sum_pool sum_pool_vjp tanh_vjp value_and_grad vjp
    """,
    "jaxnet.bench": "Case Comparison RefusedToTime compare environment main run_case sgd",
}
OLD_NAMES = [(ns, n) for ns, names in OLD_PUBLIC.items() for n in names.split()]

# Groups of jaxnet's modules, lowest first: a module may import from its own group
# or from a lower one, never from a higher one. The root (jaxnet/__init__.py)
# gathers the public API; only the tools built on that API (the benchmark harness
# and the command line) sit above it.
LAYERS = [
    {"_errors", "_types"},
    {"nn", "checkpoint"},
    {"_losses", "_analytic", "losses", "analytic", "initializers"},
    {"train", "testing"},
    {"jaxnet"},
    {"bench", "_cli", "__main__"},
]
RANK = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}


def test_old_names_are_frozen_with_no_duplicates():
    assert len(OLD_NAMES) == len(set(OLD_NAMES)) == 88 + 30 + 10 + 67 + 8


@pytest.mark.parametrize(("namespace", "name"), OLD_NAMES, ids=".".join)
def test_every_old_public_name_still_resolves_and_is_documented(namespace, name):
    module = importlib.import_module(namespace)
    assert name in module.__all__, f"{namespace}.__all__ lost {name!r}"
    value = getattr(module, name)
    if inspect.isroutine(value) or inspect.isclass(value) or inspect.ismodule(value):
        doc = inspect.getdoc(value)
        assert doc and doc.strip(), f"{namespace}.{name} has no docstring"


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the jaxnet modules it imports (function-level imports included;
    ``from . import x`` points at module ``x`` where there is one)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return {name: graph[name] for name in modules}


def _group(module: str) -> str:
    """``jaxnet.nn._conv`` -> ``nn``; ``jaxnet._errors`` -> ``_errors``; the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "jaxnet"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_belongs_to_a_layer():
    unplaced = {_group(m) for m in _import_graph()} - set(RANK)
    assert not unplaced, f"place {sorted(unplaced)} in LAYERS"


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """The edges from a module to a module of a higher layer."""
    return [
        f"{a} -> {b}"
        for a, targets in sorted(graph.items())
        for b in sorted(targets)
        if RANK[_group(b)] > RANK[_group(a)]
    ]


def test_imports_only_point_downward():
    upward = _upward(_import_graph())
    assert not upward, "imports pointing up the layers:\n" + "\n".join(upward)


def test_no_import_circle_between_modules():
    assert _cycles(_import_graph()) == []


def test_the_checks_have_teeth():
    """A made-up upward edge and a made-up circle are both caught."""
    graph = {"jaxnet.nn._conv": {"jaxnet.train._fit"}, "jaxnet.train._fit": set()}
    assert _upward(graph) == ["jaxnet.nn._conv -> jaxnet.train._fit"]
    assert _upward({"jaxnet.train._fit": {"jaxnet.nn._conv", "jaxnet"}}) == [
        "jaxnet.train._fit -> jaxnet"
    ]
    circle = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(circle) == [["a", "b", "c"]]
    assert _cycles(graph) == []
