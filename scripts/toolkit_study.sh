#!/usr/bin/env bash
# RESULTS.md's toolkit comparison: one recipe, seed and number of steps; one change a row.
#
#   bash scripts/toolkit_study.sh OUT DATASET ROW...
#   python scripts/toolkit_table.py OUT            # the markdown rows of RESULTS.md
#
# DATASET: "isbi" (configs/sample.py on the shipped ISBI 2012 sample) or "camvid"
# (configs/camvid_unet_cpu.py on .data/camvid_120x160, made by scripts/camvid_folder.py).
# ROW: "paper" (the recipe as it is), "dice" (+ soft Dice), "lovasz" (+ Lovasz-softmax),
# "adamw" (AdamW, lr 1e-3, weight decay 1e-4: its customary defaults, not tuned),
# "batchnorm" (model.norm="batch"), or several joined by "+" ("dice+adamw"). Each row
# trains into OUT/DATASET/ROW and is scored from its last checkpoint by fcnjax.evaluate
# (OUT/DATASET/ROW/eval_*.json).
set -euo pipefail
out=$1 dataset=$2
shift 2
case $dataset in
  isbi) base=(--config configs/sample.py) ;;
  camvid) base=(--config configs/camvid_unet_cpu.py
                --config.input.data_dir=.data/camvid_120x160) ;;
  *) echo "toolkit_study.sh: DATASET must be isbi or camvid, not $dataset" >&2; exit 2 ;;
esac

change() {  # the flags of one change
  case $1 in
    paper) ;;
    dice) echo "--config.loss.terms=(('xent',1.0),('dice',1.0))" ;;
    lovasz) echo "--config.loss.terms=(('xent',1.0),('lovasz',1.0))" ;;
    adamw) echo "--config.optim.name=adamw --config.optim.learning_rate=1e-3"
           echo "--config.optim.weight_decay=1e-4" ;;
    batchnorm) echo "--config.model.norm=batch" ;;
    *) echo "toolkit_study.sh: unknown change $1" >&2; exit 2 ;;
  esac
}

for row in "$@"; do
  flags=()
  terms=()
  for part in ${row//+/ }; do
    for flag in $(change "$part"); do
      case $flag in
        --config.loss.terms=*) terms+=("${flag#--config.loss.terms=}") ;;
        *) flags+=("$flag") ;;
      esac
    done
  done
  if ((${#terms[@]} > 1)); then  # several loss changes: one sum of every term
    echo "toolkit_study.sh: $row combines ${#terms[@]} loss changes; give one" >&2; exit 2
  fi
  ((${#terms[@]})) && flags+=("--config.loss.terms=${terms[0]}")
  workdir=$out/$dataset/$row
  rm -rf "$workdir"
  echo "== $dataset $row: ${flags[*]}"
  python -m fcnjax.train "${base[@]}" "${flags[@]}" --workdir "$workdir" 2>&1 | tr '\r' '\n' | grep -E "^step|error" || true
  python -m fcnjax.evaluate "${base[@]}" "${flags[@]}" --checkpoint "$workdir/checkpoints" 2>&1 | tail -3
done
