#!/bin/bash
# scripts/study_seed.sh S [accuracy.py args...] : parent seed S (trains or resumes it), then the study variants
# HGPRUNE_DEVICE=cuda trains the parent on the GPU (pass --set device=cuda to accuracy.py for the variants)
set -e
cd "$(dirname "$0")/.."; [ -f .venv/bin/activate ] && source .venv/bin/activate
S=$1; shift
P=runs/study/parent_s$S
epoch() { python -c "from hgprune.fsutil import safe_torch_load as l; print(l('$P/checkpoint.pth.tar').get('epoch',0))" 2>/dev/null || echo 0; }
if [ "$(epoch)" != 36 ]; then
  RESUME=(); [ -f $P/checkpoint.pth.tar ] && RESUME=(--resume $P/checkpoint.pth.tar)
  OMP_NUM_THREADS=1 hgprune train --dataset synthpose --synth-train 4000 --synth-val 1000 --synth-size 96 --synth-seed 0 \
    --arch hg1 --N 32 --M 64 --input_shape 64 --epochs 36 --schedule 24 32 --lr 2.5e-3 --train-batch 16 \
    --test-batch 100 --workers 0 --no-augment --seed $S --checkpoint $P --device "${HGPRUNE_DEVICE:-cpu}" "${RESUME[@]}"
fi
test "$(epoch)" = 36
[ $# -gt 0 ] && OMP_NUM_THREADS=1 python -m benchmarks.accuracy --seeds $S "$@"
echo "worker $S done $(date)"
