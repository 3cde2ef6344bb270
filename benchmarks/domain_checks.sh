#!/bin/bash
# Quick domain-FID checks (the dataset's in-project classifier features, N = 1000 vs test[:1000], seed 0) of
# the shipped teacher and students of MNIST (classifier-mnist) or Fashion-MNIST (classifier-fashion); one
# results JSON per row under benchmarks/results/domain/.
#   bash benchmarks/domain_checks.sh [REFINE_PILOT_DIR]   # MNIST; the optional 300-step refine pilot
#   bash benchmarks/domain_checks.sh --dataset fashion      # Fashion-MNIST: *_fashion_*.json
set -euo pipefail
D=mnist
if [ "${1:-}" = "--dataset" ]; then D=${2:?usage: domain_checks.sh [--dataset mnist|fashion] [REFINE_PILOT_DIR]}; shift 2; fi
case $D in mnist|fashion) ;; *) echo "domain_checks.sh: unknown dataset '$D' (mnist fashion)" >&2; exit 2 ;; esac
E="softdimo eval --metrics domain_fid,classifier_score --num 1000 --data $D --no-progress"
R=benchmarks/results/domain
mkdir -p $R
if [ $D = mnist ]; then TAUS_DIMO="1 2 3 5" TAUS_SOFT="1 2 3"; else TAUS_DIMO="1 1.5 2 3" TAUS_SOFT="1 1.5 2 3"; fi
$E --model data:$D:train --json $R/floor_${D}_train_n1000.json
for w in 1 1.5 2; do $E --model checkpoints/teacher-$D --steps 16 --cfg $w --json $R/teacher_${D}_16steps_cfg$w.json; done
$E --model checkpoints/teacher-$D --steps 1 --cfg 1.5 --json $R/teacher_${D}_1step_cfg1.5.json
for t in $TAUS_DIMO; do $E --model checkpoints/dimo-$D --temperature $t --json $R/dimo_${D}_t$t.json; done
for t in $TAUS_SOFT; do $E --model checkpoints/soft-dimo-$D --temperature $t --json $R/soft_dimo_${D}_t$t.json; done
if [ $# -ge 1 ]; then
  for t in 1 3; do $E --model "$1" --temperature $t --json $R/soft_gan_pilot300_t$t.json; done
fi
