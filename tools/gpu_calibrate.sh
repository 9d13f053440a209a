#!/usr/bin/env bash
# Budgeted GPU calibration for a short device lease (issue 13, item 5).
#
#   bash tools/gpu_calibrate.sh [--budget-s 480] [--model NAME|config.json|CKPT_DIR] [--gpu h200]
#
# Run from the repository root. Installs the wheels in .whl/ (pydantic & co, when the machine
# lacks them; no network needed), then runs `rlvr-sim calibrate --device cuda` inside the budget
# (this script's own start-up counts against it) and writes everything under ${OUT:-./gpu_out}:
#   <gpu>.cuda.yaml  .fit.json  .validation.json  .bench.parquet  .progress.jsonl  + run.log
# Partial results survive a kill (the table and the progress log are rewritten after each point).
set -u
T0=$(date +%s)
BUDGET=480
GPU_ARG=""
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --budget-s) BUDGET="$2"; shift 2 ;;
    --budget-s=*) BUDGET="${1#*=}"; shift ;;
    --gpu) GPU_ARG="$2"; ARGS+=("$1" "$2"); shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
OUT_DIR="${OUT:-./gpu_out}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/run.log"
PY="${PYTHON:-python3}"
{
  echo "gpu_calibrate.sh start $(date -u +%FT%TZ) budget ${BUDGET}s out ${OUT_DIR}"
  if ls .whl/*.whl >/dev/null 2>&1; then
    if "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; then
      echo "installed $(ls .whl/*.whl | wc -l) wheels from .whl/ into /tmp/site"
    else  # no pip: a wheel is a zip of site-packages content
      "$PY" -c "import glob, zipfile; [zipfile.ZipFile(w).extractall('/tmp/site') for w in glob.glob('.whl/*.whl')]" \
        && echo "unzipped .whl/*.whl into /tmp/site (pip failed)" \
        || echo "WARNING: wheel install failed; relying on installed packages"
    fi
    export PYTHONPATH="/tmp/site:$PWD"
  else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
} 2>&1 | tee "$LOG"
if ls .whl/*.whl >/dev/null 2>&1; then export PYTHONPATH="/tmp/site:$PWD"; else export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"; fi
# versions to the log (stderr), the catalog GPU name to stdout
GPU_NAME=$("$PY" -c "
import sys, torch, transformers, pydantic
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'pydantic', pydantic.__version__, file=sys.stderr)
if torch.cuda.is_available():
    from calibration.cli_calibrate import gpu_for_device
    print(gpu_for_device('cuda'))
else:
    print('cpu-2core')
" 2>>"$LOG" || echo gpu)
tail -1 "$LOG"
[ -n "$GPU_ARG" ] && GPU_NAME="$GPU_ARG"
LEFT=$(( BUDGET - ($(date +%s) - T0) ))
# hard stop a little after the budget, whatever happens inside
timeout --signal=TERM --kill-after=10 $(( LEFT + 15 )) \
  "$PY" -m rlvr_sim.cli calibrate --device "${DEVICE:-cuda}" --budget-s "$LEFT" \
    --out "$OUT_DIR/${GPU_NAME}.${DEVICE:-cuda}.yaml" "${ARGS[@]}" 2>&1 | tee -a "$LOG"
RC=${PIPESTATUS[0]}
echo "gpu_calibrate.sh done rc=$RC in $(( $(date +%s) - T0 )) s" | tee -a "$LOG"
ls -la "$OUT_DIR" | tee -a "$LOG"
exit $RC
