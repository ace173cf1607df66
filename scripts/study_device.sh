#!/bin/bash
# scripts/study_device.sh S... : accuracy study v3 seeds on one GPU, every run of every seed as its own process
# (accuracy_v3_protocol.md, addendum 2). Per seed: the parent (scripts/study_seed.sh with HGPRUNE_DEVICE=cuda); the
# two scratch variants as soon as the parent's first checkpoint exists (they read only its stored schedule); the four
# pruned variants once the parent has finished; then the seed's report into reports/benchmarks/accuracy_v3/seedS.
# Float32 throughout (NVIDIA_TF32_OVERRIDE=0 keeps cuDNN and cuBLAS off TF32). Every run resumes: run it again after
# an interruption. Progress and per-run logs: runs/study_v3/logs/.
set -u
cd "$(dirname "$0")/.."
export NVIDIA_TF32_OVERRIDE=0 OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 HGPRUNE_DEVICE=cuda
W=runs/study_v3; L=$W/logs; mkdir -p "$L"

variant() {  # seed variant budget
  python -m benchmarks.accuracy --seeds "$1" --variants "$2" --budgets "$3" --work $W --set device=cuda \
    --report-dir "$L/report_s$1_$2_$3" > "$L/s$1_$2_$3.log" 2>&1 || echo "seed $1 $2 $3 FAILED (rc $?)"
}

one_seed() {
  local S=$1 P=runs/study/parent_s$1/checkpoint.pth.tar
  scripts/study_seed.sh "$S" > "$L/parent_s$S.log" 2>&1 &
  local parent=$!
  until [ -f "$P" ] || ! kill -0 $parent 2>/dev/null; do sleep 2; done
  for b in 0.5 0.25; do variant "$S" scratch $b & done
  if ! wait $parent; then echo "seed $S: parent FAILED"; wait; return 1; fi
  for v in default random; do for b in 0.5 0.25; do variant "$S" $v $b & done; done
  wait
  python -m benchmarks.accuracy --seeds "$S" --work $W --report-only \
    --report-dir "reports/benchmarks/accuracy_v3/seed$S" > "$L/report_s$S.log" 2>&1
  echo "seed $S done $(date -u +%T)"
}

for S in "$@"; do one_seed "$S" & done
wait
echo "all done $(date -u +%T)"
