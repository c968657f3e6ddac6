#!/usr/bin/env bash
# The GPU path checked in one go, on one GPU, in under 10 minutes (issue 14):
#
#   bash benchmarks/gpu_check.sh                 # on a machine with a CUDA GPU and its own torch
#   bash benchmarks/gpu_check.sh --dry-run       # anywhere: every part on the CPU, at a tiny size
#   bash benchmarks/gpu_check.sh --wheels DIR    # install from wheels in DIR (a machine offline)
#
# 1. Installs what it needs: requirements.txt without torch and numpy, whose installed versions
#    are pinned as constraints (the machine's CUDA build of torch stays: pip never replaces it).
#    Offline and without --wheels, it goes on with what is installed (the library needs torch and
#    numpy only; the tests need pytest) and the JSON line says so. The package itself is used from
#    this checkout (PYTHONPATH), not installed.
# 2. Sets CUBLAS_WORKSPACE_CONFIG before CUDA starts (cuBLAS's reductions then repeat); the tests
#    and the repeat check turn on the other determinism switches (ndarts_edu.repro).
# 3. Runs benchmarks/gpu_check.py: the tests on CUDA, the paper supernet's step times (first and
#    second order), the repeat check, one epoch of notebook 03's GPU branch on generated CIFAR-10.
#    It prints one JSON line of figures on stdout; exit 0 when all passed.
# Other options go to gpu_check.py (--steps N, --images N, --skip PART..., --out FILE).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

wheels=""
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) wheels="$2"; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

versions=$("$PYTHON" -c 'import numpy, torch; print(torch.__version__, numpy.__version__)') || {
    echo "gpu_check: $PYTHON has no torch (install the CUDA build of torch first)" >&2
    exit 2
}
read -r torch_version numpy_version <<< "$versions"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
grep -v -E '^(torch|numpy)==|^-e ' requirements.txt > "$scratch/requirements.txt"
printf 'torch==%s\nnumpy==%s\n' "$torch_version" "$numpy_version" > "$scratch/constraints.txt"
source=(--retries 0 --timeout 10)
[ -n "$wheels" ] && source=(--no-index --find-links "$wheels")
if "$PYTHON" -m pip install -q "${source[@]}" -r "$scratch/requirements.txt" \
        -c "$scratch/constraints.txt" > "$scratch/pip.log" 2>&1; then
    installed="requirements.txt (torch $torch_version and numpy $numpy_version kept)"
else
    why=$(tail -n 1 "$scratch/pip.log" | cut -c1-160)
    installed="none: pip could not install requirements.txt ($why); ran with what is installed"
    echo "gpu_check: $installed" >&2
fi

"$PYTHON" benchmarks/gpu_check.py --installed "$installed" ${args[@]+"${args[@]}"}
