"""The committed benchmark results (``results/``), the GPU script (``gpu.sh``) and a
thin ``python -m benchmarks`` entry; the harness itself is :mod:`jaxnet.bench`.
"""
