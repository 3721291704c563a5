"""jaxnet's benchmark suite: autodiff against hand-written gradients, side by side.

Run ``python -m benchmarks`` from the repository root. Every timed pair is first
shown to agree (max relative gradient difference); implementations are interleaved
(A B A B ...) so machine drift cancels, and ratios are computed pair by pair.
"""
