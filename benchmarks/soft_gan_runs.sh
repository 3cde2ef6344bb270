#!/bin/bash
# Training runs behind benchmarks/results/soft_gan_mnist.json (docs/method.md §5 ablations): every row
# starts from checkpoints/dimo-mnist and runs the same number of refine steps, keeping every
# checkpoint so that `python benchmarks/generators.py --preset soft_gan_mnist` can draw FID-vs-step
# curves from their EMA weights.
#   bash benchmarks/soft_gan_runs.sh OUT_DIR [STEPS] [EVERY]
set -euo pipefail
OUT=${1:?usage: soft_gan_runs.sh OUT_DIR [STEPS] [EVERY]}
STEPS=${2:-300}
EVERY=${3:-150}
common=(--config configs/mnist/soft_gan.yaml --no-progress train.out_dir="$OUT" train.max_steps=$STEPS
        train.checkpoint_every=$EVERY train.checkpoints_total_limit=0 train.sample_every=$STEPS)
run() {  # NAME overrides…
  local name=$1; shift
  if [ -f "$OUT/refine/$name/final/student.json" ]; then echo "[soft_gan_runs] $name done"; return; fi
  local resume=()
  [ -d "$OUT/refine/$name" ] && resume=(--resume)
  echo "[soft_gan_runs] $name: $*"
  softdimo refine "${common[@]}" train.run_name="$name" "${resume[@]}" "$@"
}
run soft
run gumbel gan.embedding=gumbel
run gan_only dimo_weight=0
run mask_none "gan.mask_ratio_range=[0,0]"
echo "[soft_gan_runs] all done"
