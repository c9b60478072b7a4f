#!/usr/bin/env bash
# The GPU work behind RESULTS.md's CamVid and ISBI rows and BENCHMARKS.md's train-step
# profile, in one device call of under ~9.5 minutes:
#   run(command="bash scripts/gpu_session.sh", timeout_s=585,
#       carry=[".data/camvid_webp90", ".data/isbi2012", ".whl"])
# .data/camvid_webp90: `python scripts/camvid_folder.py <camvid> .data/camvid_webp90 --webp 90`
# .data/isbi2012: the ISBI 2012 folder as distributed (train/, test/).
# .whl: wheels the GPU image lacks (grain, array-record, portpicker, ml-collections,
# tensorboardX), installed into /tmp/site. Each job has its own time limit; logs and packed
# outputs go to $OUT (8 files at most come back). QUICK=1 checks the script on a CPU.
set -u
out=${OUT:-gpu_out}; data=${DATA:-.data}; mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
py=${PYTHON:-python3}
if [ -d .whl ] && [ -z "${QUICK:-}" ]; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
job() {  # job NAME SECONDS COMMAND...: output to $out/NAME.log (appended), its tail printed
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s)" | tee -a "$out/$name.log"
  timeout "$limit" "$@" 2>&1 | grep --line-buffered -v cuda_timer | tr '\r' '\n' \
    | grep --line-buffered -v "it/s\]$\|ETA" >> "$out/$name.log"
  tail -n 14 "$out/$name.log"
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | tee "$out/gpu.txt"
"$py" -c "import jax, torch; print(jax.__version__, torch.__version__, jax.devices())" | tee -a "$out/gpu.txt"

if [ -n "${QUICK:-}" ]; then
  steps=2 every=2 crop="(64,64)" batch=2 isbi="--quick" profile="--quick --variants base,conv_pad_inside"
  camvid_dir=${CAMVID_DIR:-$data/camvid_tiny}
else
  steps=${CAMVID_STEPS:-1500} every=500 crop="(352,480)" batch=8 isbi="--seconds ${ISBI_SECONDS:-40}"
  profile="--variants base,conv_pad_inside,pool_reduce_window"
  camvid_dir=$data/camvid_webp90
fi

# 1. Where the FCN-8s train step's time goes, and two candidate fixes timed against it.
job profile 150 "$py" benchmarks/profile_step.py $profile --out "$out/profile.json" \
  --hlo /tmp/step_hlo.txt
gzip -c /tmp/step_hlo.txt > "$out/step_hlo.txt.gz" 2>/dev/null

# 2. FCN-8s on CamVid from scratch (no ImageNet weights here): train on train, pick the
#    best val checkpoint, score it on test.
camvid=(--config configs/camvid_fcn8s_modern.py --config.input.source=folder
        --config.input.data_dir="$camvid_dir"
        --config.input.label_values="(0,1,2,3,4,5,6,7,8,9,10)" --config.input.workers=8
        --config.input.crop_size="$crop" --config.train.batch_size=$batch)
job camvid 190 "$py" -m fcnjax.train "${camvid[@]}" --workdir /tmp/camvid \
  --config.train.steps=$steps --config.train.eval_every=$every \
  --config.train.checkpoint_every=$steps --config.optim.warmup_steps=$((steps / 10))
job camvid 45 "$py" -m fcnjax.evaluate "${camvid[@]}" --checkpoint /tmp/camvid/best --split test
tar czf "$out/camvid.tgz" -C /tmp --exclude=checkpoints --exclude=best camvid 2>/dev/null

# 3. The paper's U-Net on ISBI 2012 in fcnjax and in PyTorch, same recipe and time budget.
job isbi 160 "$py" scripts/isbi_compare.py --data_dir "$data/isbi2012" \
  --out /tmp/isbi/results.json $isbi
tar czf "$out/isbi.tgz" -C /tmp isbi 2>/dev/null
ls -la "$out"
