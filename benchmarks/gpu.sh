#!/usr/bin/env bash
# The benchmark suite on one NVIDIA GPU, from a clean virtual environment.
#
#   benchmarks/gpu.sh [--dry-run] [--quick] [--peers] [--results DIR] [-- BENCH ARGS...]
#
# 1. creates a venv (.venv-gpu, or $JAXNET_GPU_VENV), installs the CUDA 12 build of
#    jax from its wheels (pip install -U "jax[cuda12]") and jaxnet from this checkout
#    (not editable; with matplotlib for the plots, and with --peers Equinox and PyTorch);
# 2. prints the devices and refuses to go on unless jax's backend is the GPU;
# 3. runs `jaxnet bench --case all` (BENCH ARGS replace `--case all`), writing
#    results.json, results.md, the plots, log.txt and nvidia-smi.txt to
#    benchmarks/results/<gpu-name>-<date>/ (or DIR/<gpu-name>-<date>/).
# Meant to finish in under 10 minutes on one GPU (most of it the pip install).
#
# --dry-run skips the venv and the CUDA install, runs on the CPU (JAX_PLATFORMS=cpu)
# with $PYTHON (default .venv/bin/python, else python3) and adds --quick: the test
# suite runs it this way (tests/bench/test_api.py) to keep the script working.
set -euo pipefail
cd "$(dirname "$0")/.."

dry=0 quick=0 peers=0 results="benchmarks/results"
bench_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --quick) quick=1 ;;
    --peers) peers=1 ;;
    --results) results="$2"; shift ;;
    --) shift; bench_args=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$dry" = 1 ]; then
  py="${PYTHON:-}"
  if [ -z "$py" ]; then
    if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
  fi
  export JAX_PLATFORMS=cpu
  quick=1
  echo "gpu.sh: dry run on the CPU with $py (no venv, no CUDA install)"
else
  venv="${JAXNET_GPU_VENV:-.venv-gpu}"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -U pip
  "$venv/bin/pip" install -q -U "jax[cuda12]"
  extras="bench"
  if [ "$peers" = 1 ]; then extras="bench,peers"; fi
  "$venv/bin/pip" install -q ".[$extras]"
  py="$venv/bin/python"
fi

# The device, and a folder name from it: "NVIDIA H100 80GB HBM3" -> nvidia-h100-80gb-hbm3
device=$("$py" - "$dry" <<'EOF'
import re, sys
import jax
devs = jax.devices()
print(f"jax {jax.__version__}, backend {jax.default_backend()}: {devs}", file=sys.stderr)
if sys.argv[1] != "1" and jax.default_backend() != "gpu":
    sys.exit(f"gpu.sh: jax's backend is {jax.default_backend()}, not gpu: the CUDA "
             "wheels did not load (check nvidia-smi and the driver version).")
print(re.sub(r"[^a-z0-9]+", "-", devs[0].device_kind.lower()).strip("-") or "device")
EOF
)
out="$results/$device-$(date +%Y-%m-%d)"
mkdir -p "$out"
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true; fi

if [ ${#bench_args[@]} -eq 0 ]; then bench_args=(--case all); fi
if [ "$quick" = 1 ]; then bench_args+=(--quick); fi
echo "gpu.sh: $py -m jaxnet.bench ${bench_args[*]} --out $out"
start=$(date +%s)
"$py" -m jaxnet.bench "${bench_args[@]}" --out "$out" 2>&1 | tee "$out/log.txt"
status=${PIPESTATUS[0]}
echo "gpu.sh: exit $status after $(( $(date +%s) - start )) s; results in $out"
exit "$status"
