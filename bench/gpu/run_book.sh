#!/usr/bin/env bash
# The `gpu` profile of the whole book on one GPU machine, in a single call; results packed under $OUT.
#
#   On the GPU machine (repo root, .device/ carried; see CONTRIBUTING.md):  bash bench/gpu/run_book.sh
#   Its CPU path at a tiny scale (what `make test` runs):                  SMOKE=1 OUT=/tmp/x bash bench/gpu/run_book.sh
#
# Steps: install the carried wheels (.device/env.sh, if present); decode the CIFAR-10 JPEG proxy once (or, with
# SMOKE=1, write a tiny CIFAR-like zip instead); time the core training loop (bench/gpu/throughput.py); run
# `genlens book --profile gpu` under $BUDGET seconds (a timeout stops its own chapters, no other process), $JOBS
# chapters at a time, past any failing chapter; pack
# book/results/gpu/ (results JSON, executed notebooks, logs) into $OUT/results-gpu.tar.gz. Exit status: the book's.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
OUT=${OUT:?set OUT to the folder that receives the results}
mkdir -p "$OUT"
DEADLINE=${DEADLINE:-575} # seconds from the start by which the results must be packed (the device call's limit is 600)
BUDGET=${BUDGET:-}        # seconds for the book itself; default: what is left before DEADLINE, less 15 s to pack
JOBS=${JOBS:-4}         # chapters at a time on the one GPU (small networks leave it mostly idle alone)
# longest first, so that the last wave is short (estimated GPU seconds of each chapter's gpu profile)
CHAPTERS=${CHAPTERS:-"rethinking landscape hfc protopnet hessian intrinsic adversarial corrections zoo"}
if [ -f .device/env.sh ]; then source .device/env.sh || { echo "run_book: installing the carried wheels failed"; exit 2; }; fi
PY=${PYTHON:-python3}
export GENLENS_CACHE=${GENLENS_CACHE:-/tmp/genlens-gpu-cache} PYTHONUNBUFFERED=1
# chapters share the GPU: each may hold at most its share of the memory (a first H200 run of two chapters side by
# side ran out of memory when one of them had cached 103 GB), and freed blocks go back to the pool
export GENLENS_CUDA_MEMORY_FRACTION=${GENLENS_CUDA_MEMORY_FRACTION:-$($PY -c "print(round(0.9 / $JOBS, 3))")}
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
root=${GENLENS_ROOT:-$repo}
start=$SECONDS
{
  echo "run_book: $(date -u +%FT%TZ) on $(hostname); results packed by ${DEADLINE} s, ${JOBS} chapters at a time"
  nvidia-smi -L 2>/dev/null || echo "run_book: no nvidia-smi (CPU)"
  $PY -c "import torch; print('run_book: torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} | tee "$OUT/run.log"
if [ -n "${SMOKE:-}" ]; then
  data=$($PY -c "from genlens.book.smoke import write_cifar_like; print(write_cifar_like('$GENLENS_CACHE/cifar-like.zip'))")
  smoke=(--smoke); results=gpu-smoke
else
  data=${GENLENS_CIFAR_PROXY:-$repo/.device/cifar10-jpeg-35k.zip}
  smoke=(); results=gpu
fi
[ -f "$data" ] || { echo "run_book: no data set at $data" | tee -a "$OUT/run.log"; exit 2; }
$PY -c "
import time; t = time.perf_counter()
from genlens.core import data
d = data.load('imagefolder:$data')
print(f'run_book: decoded {data.display_name(\"imagefolder:$data\")}: {d} in {time.perf_counter() - t:.1f} s')
" 2>&1 | tee -a "$OUT/run.log"
timeout 90 $PY bench/gpu/throughput.py "imagefolder:$data" ${SMOKE:+--smoke} 2>&1 | tee "$OUT/throughput.txt"
BUDGET=${BUDGET:-$((DEADLINE - (SECONDS - start) - 15))}
echo "run_book: book starts at $((SECONDS - start)) s with a budget of $BUDGET s" | tee -a "$OUT/run.log"
book_start=$SECONDS
timeout -k 15 "$BUDGET" $PY -m genlens.book.cli book --profile gpu --jobs "$JOBS" --data "cifar10=imagefolder:$data" \
  "${smoke[@]}" --chapters $CHAPTERS 2>&1 | tee -a "$OUT/run.log"
status=${PIPESTATUS[0]}
[ "$status" = 124 ] && echo "run_book: the book ran past its budget of $BUDGET s; finished chapters are kept" | tee -a "$OUT/run.log"
echo "run_book: book wall time $((SECONDS - book_start)) s (exit $status); whole script $((SECONDS - start)) s" | tee -a "$OUT/run.log"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv 2>/dev/null | tee -a "$OUT/run.log"
tar -czf "$OUT/results-gpu.tar.gz" -C "$root/book" "results/$results" results.md 2>&1 | tee -a "$OUT/run.log"
ls -la "$OUT"
exit "$status"
