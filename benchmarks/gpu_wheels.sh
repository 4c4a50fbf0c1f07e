#!/usr/bin/env bash
# Wheels for benchmarks/gpu_check.sh on a GPU machine that cannot reach PyPI. Run it here, where pip
# works; carry the folder to that machine beside the clone. There the machine's own CUDA torch and
# torchvision are used, and these wheels add what the project needs beyond what it has installed.
#
#   bash benchmarks/gpu_wheels.sh [--python PATH] [--have FILE] [--out DIR]
#
#   --python  an interpreter of the GPU machine's Python version (default python3.12): pip resolves and
#             builds with it, so packages that PyPI has only as source (noise, connection_pool) become wheels
#   --have    the packages that machine has already: one name per line, `pip list` or `pip freeze` output
#             (default benchmarks/gpu_image_packages.txt, the image lent to this project)
#   --out     where the wheels go (default $WHEELS or .wheels, which git ignores)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_PY=python3.12
HAVE=benchmarks/gpu_image_packages.txt
DEST=${WHEELS:-.wheels}
while (( $# )); do
    case $1 in
        --python) BUILD_PY=$2; shift 2 ;;
        --have) HAVE=$2; shift 2 ;;
        --out) DEST=$2; shift 2 ;;
        *) echo "gpu_wheels.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
    esac
done
[[ -f "$HAVE" ]] || { echo "gpu_wheels.sh: no package list '$HAVE': pass --have with the GPU machine's pip list" >&2; exit 2; }
PYV=$("$BUILD_PY" -c "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')" 2>/dev/null) \
    || { echo "gpu_wheels.sh: cannot run '$BUILD_PY': pass --python with an interpreter of the GPU machine's version" >&2; exit 2; }

normalise() { tr 'A-Z_.' 'a-z--' | sed -E 's/-+/-/g'; }  # PEP 503 project names
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# The machine's own torch and torchvision stay.
grep -v -E '^[[:space:]]*(#|$)' envs/requirements.txt | grep -v -E '^(torch|torchvision)([^a-z_-]|$)' > "$WORK/requirements.txt"
"$BUILD_PY" -m pip wheel --quiet -w "$WORK/all" -r "$WORK/requirements.txt"

# Keep only what the GPU machine lacks: its own packages stay its own.
sed -E 's/[[:space:]=<>!~;].*//' "$HAVE" | grep -v -E '^(#|-|Package$|$)' | normalise | sort -u > "$WORK/have.txt"
rm -rf "$DEST"
mkdir -p "$DEST"
for wheel in "$WORK"/all/*.whl; do
    name=$(basename "$wheel" | cut -d- -f1 | normalise)
    grep -qx "$name" "$WORK/have.txt" || cp "$wheel" "$DEST/"
done
ls "$DEST"
SIZE_MB=$(du -sm "$DEST" | cut -f1)
echo "$(ls "$DEST" | wc -l) wheels, $SIZE_MB MB in $DEST for Python $PYV (left out: what $HAVE lists)"
(( SIZE_MB <= 60 )) || { echo "gpu_wheels.sh: $SIZE_MB MB is more than a 64 MiB transfer allows: check --have" >&2; exit 1; }
