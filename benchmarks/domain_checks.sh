#!/bin/bash
# Quick domain-FID checks (in-project classifier-mnist features, N = 1000 vs MNIST test[:1000]) of the
# shipped MNIST teacher and students; one results JSON per row under benchmarks/results/domain/.
#   bash benchmarks/domain_checks.sh [REFINE_PILOT_DIR]   # the optional 300-step refine pilot
set -euo pipefail
E="softdimo eval --metrics domain_fid,classifier_score --num 1000 --data mnist --no-progress"
R=benchmarks/results/domain
mkdir -p $R
$E --model data:mnist:train --json $R/floor_mnist_train_n1000.json
for w in 1 1.5 2; do $E --model checkpoints/teacher-mnist --steps 16 --cfg $w --json $R/teacher_mnist_16steps_cfg$w.json; done
$E --model checkpoints/teacher-mnist --steps 1 --cfg 1.5 --json $R/teacher_mnist_1step_cfg1.5.json
for t in 1 2 3 5; do $E --model checkpoints/dimo-mnist --temperature $t --json $R/dimo_mnist_t$t.json; done
for t in 1 2 3; do $E --model checkpoints/soft-dimo-mnist --temperature $t --json $R/soft_dimo_mnist_t$t.json; done
if [ $# -ge 1 ]; then
  for t in 1 3; do $E --model "$1" --temperature $t --json $R/soft_gan_pilot300_t$t.json; done
fi
