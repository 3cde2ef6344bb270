#!/bin/bash
# Training runs behind benchmarks/results/soft_gan_mnist.json (docs/method.md §5.5 ablations over training
# seeds): the five variants of benchmarks/soft_gan.py (VARIANTS: four ablations and a control) for every
# seed, each a refine run from the preset's Di[M]O student with the same number of steps, keeping every
# checkpoint (the benchmark compares the runs' EMA students at one step and draws domain-FID-vs-step
# curves from all of them).
#   bash benchmarks/soft_gan_runs.sh [--config PRESET] [--only "VARIANTS"] RUNS_DIR STEPS EVERY "SEEDS" [EXTRA OVERRIDES…]
#   bash benchmarks/soft_gan_runs.sh RUNS 300 100 "0 1 2"
#   python benchmarks/soft_gan.py --runs RUNS --seeds 0,1,2 --row-step 300
# Variant NAME with seed S runs in RUNS_DIR/refine/NAME-sS (softdimo's <train.out_dir>/<command>/<train.run_name>):
#   soft       the preset (soft embeddings + GAN + Di[M]O)
#   gumbel     gan.embedding=gumbel
#   gan_only   dimo_weight=0
#   mask_none  gan.mask_ratio_range=[0,0]
#   no_gan     gan.w_gan=0 (the control: the Di[M]O term alone for the same steps)
# EXTRA overrides go to every run. --config: the preset (default configs/mnist/soft_gan.yaml; Fashion-MNIST:
# configs/fashion/soft_gan.yaml, then `soft_gan.py --dataset fashion`). --only: train just these variants
# (space-separated), e.g. to share the runs between two one-thread processes on disjoint variants or seeds.
# A run with final/student.json is skipped and one whose folder exists is resumed, so the command can be repeated.
set -euo pipefail
usage='usage: soft_gan_runs.sh [--config PRESET] [--only "VARIANTS"] RUNS_DIR STEPS EVERY "SEEDS" [EXTRA OVERRIDES…]'
CONFIG=configs/mnist/soft_gan.yaml
VARIANTS="soft gumbel gan_only mask_none no_gan"
while [ "${1:-}" = "--config" ] || [ "${1:-}" = "--only" ]; do
  case $1 in
    --config) CONFIG=${2:?$usage} ;;
    --only) VARIANTS=${2:?$usage} ;;
  esac
  shift 2
done
for v in $VARIANTS; do
  case $v in soft|gumbel|gan_only|mask_none|no_gan) ;; *) echo "soft_gan_runs.sh: unknown variant '$v' (soft gumbel gan_only mask_none no_gan)" >&2; exit 2 ;; esac
done
[ $# -ge 4 ] || { echo "$usage" >&2; exit 2; }
OUT=$1 STEPS=$2 EVERY=$3 SEEDS=$4
shift 4
EXTRA=("$@")
run() {  # NAME SEED overrides…
  local name=$1-s$2 seed=$2
  case " $VARIANTS " in *" $1 "*) ;; *) return ;; esac
  shift 2
  local dir="$OUT/refine/$name"
  if [ -f "$dir/final/student.json" ]; then echo "[soft_gan_runs] $name done"; return; fi
  local resume=()
  [ -d "$dir" ] && resume=(--resume)
  echo "[soft_gan_runs] $name: $* ${EXTRA[*]}"
  softdimo refine --config "$CONFIG" --no-progress train.seed="$seed" train.out_dir="$OUT" train.run_name="$name" \
    train.max_steps="$STEPS" train.checkpoint_every="$EVERY" train.checkpoints_total_limit=0 "$@" "${EXTRA[@]}" \
    "${resume[@]}"
}
for seed in $SEEDS; do
  run soft "$seed"
  run gumbel "$seed" gan.embedding=gumbel
  run gan_only "$seed" dimo_weight=0
  run mask_none "$seed" "gan.mask_ratio_range=[0,0]"
  run no_gan "$seed" gan.w_gan=0
done
echo "[soft_gan_runs] all done"
