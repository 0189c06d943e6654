#!/usr/bin/env bash
# Every track on a CUDA machine: first the GPU tests (pytest -m gpu: the encoders and the CNN
# on the GPU, the fine-tuning of the pretrained encoders in mixed precision), then the
# pretrained track frozen against fine-tuned on samples of the examples
# (scripts/bench_finetune.py: the plan's choice, scores, seconds, the estimate against the time
# measured), then the image example (digits_images) and a text example (movie_reviews), each run
# with all three tracks; prints the device each track's attempts used (result.json's `device`:
# cuda only when the attempt put tensors on the GPU), whether the pretrained attempts fine-tuned,
# their times and scores, and each run's graded score. Needs a machine with a CUDA GPU and the
# project set up (bash scripts/setup.sh); on a machine without one it says so and stops.
#   bash scripts/gpu_check.sh [BUDGET] [ROWS]    (default 5m per task; 1000 rows in the fine-tuning bench)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
BUDGET="${1:-5m}"
ROWS="${2:-1000}"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA GPU visible to torch on this machine; nothing to check" >&2
    exit 2
fi
"$PY" -c "import torch; print('gpu:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
work="${IML_GPU_CHECK_DIR:-$(mktemp -d)}"
status=0  # a failed step is reported and the others still run: a lent GPU's minutes are few
IML_TEST_GPU=1 "$PY" -m pytest -q -m gpu tests/integration/test_finetune.py tests/integration/test_image_recipes.py \
    || { echo "gpu_check: GPU tests failed (above)" >&2; status=1; }
"$PY" -m scripts.bench_finetune --rows "$ROWS" --test-rows "$(( ROWS / 4 ))" --folds 3 --time-budget "$BUDGET" \
    --repeats 1 --out "$work/finetune"
for task in digits_images movie_reviews; do
    "$PY" -m scripts.cli example "$task" "$work/$task" >/dev/null
    start=$(date +%s)
    "$PY" -m scripts.cli run "$work/$task" --time-budget "$BUDGET" --out "$work/run-$task" \
        --tracks traditional,pretrained,neural --quiet
    echo "$task: run took $(( $(date +%s) - start )) s"
    "$PY" -m scripts.cli grade "$work/$task" "$work/run-$task/submission.csv"
done
"$PY" - "$work" <<'PYEOF'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
print(f"{'task':15} {'track':12} {'attempt':8} {'device':28} {'tuned':>5} {'seconds':>8} {'score':>10}")
for run in sorted(work.glob("run-*")):
    for result in sorted(run.glob("tracks/*/attempt_*/result.json")):
        r = json.loads(result.read_text())
        tuned = "yes" if (r.get("resolved_params") or {}).get("finetune") else "-"
        print(f"{run.name[4:]:15} {result.parts[-3]:12} {result.parts[-2]:8} {r.get('device', '?'):28} {tuned:>5} "
              f"{r.get('duration_s', 0):8.1f} {r.get('score', float('nan')):10.5f}")
PYEOF
echo "runs in $work"
exit "$status"
