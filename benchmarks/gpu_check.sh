#!/usr/bin/env bash
# The GPU check, from a fresh clone on a machine with one NVIDIA GPU, in at most 8 minutes:
#   1. the environment: an existing $VENV (default .venv) that has the project; else, where the folder
#      $WHEELS (default .wheels, from benchmarks/gpu_wheels.sh) was carried along, the machine's own python3
#      ($GPU_PYTHON) and its CUDA torch, with the wheels installed into $SITE: no network needed;
#      else a pip venv as the Makefile makes it (torch==2.14.1 / torchvision==0.29.1 from PyPI are CUDA builds);
#   2. the golden and metric tests with the models on CUDA (SALIENCY_BENCH_TEST_DEVICE=cuda, tests/conftest.py),
#      and tests/test_models.py (every way the package puts a model to work on CUDA turns TF32 off);
#   3. benchmarks/efficiency.py --device cuda at 224 px, N=6000;
#   4. benchmarks/compare_study.py on CUDA (with its bf16 line);
#   5. benchmarks/graph_speed.py: the model's forward pass eager against a CUDA graph, 224/112/64 px;
#   6. the paper protocol (224 px, N=6000, 6 RISE sets, Abs-CAM at layer1..layer4) on 8 demo images.
# Everything goes under $OUT (default ./gpu-check-out): summary.txt (the machine, each step's status and
# seconds), one log per step, compare_study.json, the paper run's summary and timing tables (and its forward
# settings where they were tuned); the paper run itself works in $PAPER_WORK (default
# /tmp/saliency-bench-paper-demo: its mask files take gigabytes).
# With --bundle all but summary.txt is packed into gpu-check.tar.gz, for transfers that take few files.
# A step that fails is recorded and the next one still runs; exit status 1 if any failed.
#
#   bash benchmarks/gpu_check.sh               # the real check (needs CUDA)
#   bash benchmarks/gpu_check.sh --cpu-smoke   # every step on the CPU at toy sizes (7 min on 2 cores here):
#                                              # checks the script, not the GPU
#   bash benchmarks/gpu_wheels.sh && bash benchmarks/gpu_check.sh   # prepare here, run where nothing can be fetched
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-./gpu-check-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SMOKE=0
BUNDLE=0
for argument in "$@"; do
    case $argument in
        --cpu-smoke) SMOKE=1 ;;
        --bundle) BUNDLE=1 ;;
        *) echo "gpu_check.sh: unknown argument '$argument' (known: --cpu-smoke, --bundle)" >&2; exit 2 ;;
    esac
done
WORK=${PAPER_WORK:-/tmp/saliency-bench-paper-demo}
VENV=${VENV:-.venv}
WHEELS=${WHEELS:-.wheels}
SITE=${SITE:-/tmp/saliency-bench-site}
DEFAULT_SECONDS=$(( SMOKE ? 1500 : 470 ))  # on the GPU 8 minutes, less a margin for the summary
DEADLINE=$(( $(date +%s) + ${GPU_CHECK_SECONDS:-$DEFAULT_SECONDS} ))
FAILED=0
: > "$OUT/summary.txt"

step() {  # step NAME COMMAND...: run with the time left, log to $OUT/NAME.log, record status and seconds
    local name=$1; shift
    local left=$(( DEADLINE - $(date +%s) ))
    if (( left < 10 )); then
        echo "$name: skipped (out of time)" | tee -a "$OUT/summary.txt"; FAILED=1; return
    fi
    local start=$(date +%s)
    timeout "$left" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    local status=ok
    (( rc == 0 )) || { status="FAILED (exit $rc$( (( rc == 124 )) && echo ', out of time'))"; FAILED=1; }
    echo "$name: $status, $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
}

if (( SMOKE )); then
    DEVICE=cpu; SIZE="32 32"; N=16; IMAGES=1; LAYERS="layer4"
    TESTS=(tests/test_golden_metrics.py tests/test_folding.py -k "golden or resnet18")
else
    DEVICE=cuda; SIZE="224 224"; N=6000; IMAGES=2; LAYERS="layer3 layer4"
    TESTS=(tests/test_golden_methods.py tests/test_golden_metrics.py tests/test_metrics.py tests/test_folding.py
           tests/test_models.py)
fi
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import saliency_bench, snakemake" 2>/dev/null; then
    PY="$VENV/bin/python"
elif [[ -d "$WHEELS" ]]; then  # offline: what the machine lacks comes from the carried wheels
    PY=$(command -v "${GPU_PYTHON:-python3}")
    step install "$PY" -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target "$SITE" "$WHEELS"/*.whl
    export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
else
    PY="$VENV/bin/python"
    step install bash -c "python3 -m venv '$VENV' && '$VENV/bin/pip' install --quiet --upgrade pip \
        && '$VENV/bin/pip' install --quiet -r envs/requirements.txt && '$VENV/bin/pip' install --quiet -e '.[test]'"
fi
"$PY" -c "import saliency_bench, snakemake" \
    || { echo "no environment with the project: see install.log, or run benchmarks/gpu_wheels.sh first" | tee -a "$OUT/summary.txt"; exit 1; }
if (( ! SMOKE )); then
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'" \
        || { echo "no CUDA device: nothing to check (use --cpu-smoke to test the script)" | tee -a "$OUT/summary.txt"; exit 1; }
fi
"$PY" - >> "$OUT/summary.txt" 2>&1 <<'EOF'
import platform, torch
from saliency_bench.runtime.throughput import native_bf16
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine())
print("native bf16:", native_bf16(device), "cpu capability:", torch.backends.cpu.get_cpu_capability())
EOF

step tests env SALIENCY_BENCH_TEST_DEVICE=$DEVICE "$PY" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
# shellcheck disable=SC2086
step efficiency "$PY" benchmarks/efficiency.py --device $DEVICE --size $SIZE --n-masks $N --images $IMAGES
# shellcheck disable=SC2086
step compare_study "$PY" benchmarks/compare_study.py --device $DEVICE --size $SIZE --n-masks $(( SMOKE ? N : 2000 )) \
    --images $IMAGES --layers $LAYERS --json "$OUT/compare_study.json"
# The forward pass eager against a CUDA graph at the study's, the demo's and small sizes (torch.compile left
# out: compiling takes minutes); exits 1 if a graph's logits differ beyond float32 round-off
# shellcheck disable=SC2046
step graph_speed "$PY" benchmarks/graph_speed.py --device $DEVICE $( (( SMOKE )) && echo --cases 32:4 --seconds 0.3 || echo --seconds 1.5 )

# The paper protocol on 8 demo images: config/paper.yaml's preprocessing, RISE and Abs-CAM on the demo's data and model.
mkdir -p "$WORK"
"$PY" - "$WORK/paper_demo.yaml" "$DEVICE" "$SMOKE" <<'EOF'
import sys, yaml
out, device, smoke = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
demo, paper = (yaml.safe_load(open(f"config/{name}.yaml")) for name in ("config", "paper"))
config = {**demo, **{key: paper[key] for key in ("preprocess", "rise", "abscam", "metrics", "stats")}}
config["data"] = {**demo["data"], "limit": 8}
config["data"].pop("per_class_limit", None)
config["device"] = device
if smoke:
    config["preprocess"] = {**config["preprocess"], "size": [32, 32]}
    config["rise"] = {**config["rise"], "n_masks": 16}
yaml.safe_dump(config, open(out, "w"), sort_keys=False)
EOF
step paper_protocol "$PY" -m snakemake --snakefile "$PWD/Snakefile" --directory "$WORK" --configfile "$WORK/paper_demo.yaml" \
    --cores all
for table in summary timing; do  # the comparison, and each stage's time beside the plan's estimate
    if [[ -f "$WORK/results/tables/$table.md" ]]; then cp "$WORK/results/tables/$table.md" "$OUT/paper_demo_$table.md"; fi
done
if [[ -f "$WORK/results/model/forward_settings.json" ]]; then cp "$WORK/results/model/forward_settings.json" "$OUT/"; fi
if (( BUNDLE )); then
    (cd "$OUT" && find . -mindepth 1 -maxdepth 1 ! -name summary.txt ! -name gpu-check.tar.gz -printf '%P\n' \
        | tar czf gpu-check.tar.gz -T - --remove-files)
fi
echo "results under $OUT ($(ls "$OUT" | tr '\n' ' '))" | tee -a "$OUT/summary.txt"
exit $FAILED
