#!/usr/bin/env bash
# The GPU work behind RESULTS.md's CamVid and ISBI rows and BENCHMARKS.md's train-step
# profile and end-to-end rates, in one device call of under ~9.5 minutes:
#   run(command="bash scripts/gpu_session.sh", timeout_s=585,
#       carry=[".data/camvid_webp90", ".data/isbi2012", ".whl"])
# JOBS picks what runs (default "profile camvid isbi"): "e2e" times both training commands
# end to end beside their step-bound rate (~6 min); "camvid" alone with CAMVID_STEPS,
# CAMVID_S (its time limit, s) and CAMVID_ARGS (more --config flags, e.g.
# "--config.model.norm=group --config.loss.class_weights=median_frequency") is one run of
# the CamVid table (issue 16), scored on the 233 test images.
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
  camvid_dir=${CAMVID_DIR:-$data/camvid_tiny} workers=2 e2e_steps=4 e2e_every=2
  isbi_e2e="--config.model.features=4 --config.input.crop_size=(188,188) --config.prng_impl=rbg"
else
  steps=${CAMVID_STEPS:-1500} every=500 crop="(352,480)" batch=8 isbi="--seconds ${ISBI_SECONDS:-40}"
  profile="--variants base,conv_pad_inside,pool_reduce_window"
  camvid_dir=$data/camvid_webp90 workers=15 e2e_steps=300 e2e_every=50 isbi_e2e=""
fi

jobs=" ${JOBS:-profile camvid isbi} "
want() { [[ $jobs == *" $1 "* ]]; }
e2e_rate() {  # e2e_rate WORKDIR: median images/s of the train records after the first
  "$py" -c "import json, statistics, sys; r = [json.loads(l) for l in open(sys.argv[1])]
r = [x['images_per_second'] for x in r if x['mode'] == 'train'][1:]
print(f'{statistics.median(r):.1f}' if r else 'none')" "$1/metrics.jsonl"
}

# 0. (JOBS=e2e) End to end: the two training commands as users run them, 15 grain workers,
#    against their step-bound img/s (benchmarks/train_step.py at the same batch and size;
#    its FCN-8s has 21 classes and fixed upsampling, CamVid's 11 and learned: close, not
#    equal). U-Net's elastic augmentation on the host workers, then on the device.
if want e2e; then
  job e2e 100 "$py" benchmarks/train_step.py --models fcn8s --dtypes bfloat16 --batch $batch \
    --size "$(echo "$crop" | tr -d '()' | tr , x)" --repeats 10 --out "$out/e2e_step_fcn8s.jsonl" ${QUICK:+--quick}
  job e2e 100 "$py" benchmarks/train_step.py --models unet --dtypes float32 --batch 1 \
    --repeats 10 --out "$out/e2e_step_unet.jsonl" ${QUICK:+--quick}
  job e2e 150 "$py" -m fcnjax.train --config configs/camvid_fcn8s_modern.py \
    --config.input.source=folder --config.input.data_dir="$camvid_dir" \
    --config.input.label_values="(0,1,2,3,4,5,6,7,8,9,10)" --config.input.workers=$workers \
    --config.input.crop_size="$crop" --config.train.batch_size=$batch --workdir /tmp/e2e_camvid \
    ${QUICK:+--config.input.check_data=False} \
    --config.train.steps=$e2e_steps --config.train.log_every=$e2e_every \
    --config.train.eval_every=100000 --config.train.checkpoint_every=100000
  echo "camvid_fcn8s_modern end to end img/s: $(e2e_rate /tmp/e2e_camvid)" | tee -a "$out/e2e.log"
  for on in host device; do
    job e2e 150 "$py" -m fcnjax.train --config configs/unet_isbi.py --workdir /tmp/e2e_isbi_$on \
      --config.input.data_dir="$data/isbi2012" --config.input.workers=$workers \
      --config.input.augment_on=$on --config.train.steps=$e2e_steps $isbi_e2e \
      --config.train.log_every=$e2e_every --config.train.eval_every=100000 \
      --config.train.checkpoint_every=100000
    echo "unet_isbi augment_on=$on end to end img/s: $(e2e_rate /tmp/e2e_isbi_$on)" | tee -a "$out/e2e.log"
  done
fi

# 1. Where the FCN-8s train step's time goes, and two candidate fixes timed against it.
want profile && job profile 150 "$py" benchmarks/profile_step.py $profile --out "$out/profile.json" \
  --hlo /tmp/step_hlo.txt
want profile && gzip -c /tmp/step_hlo.txt > "$out/step_hlo.txt.gz" 2>/dev/null

if want camvid; then
  # 2. FCN-8s on CamVid from scratch (no ImageNet weights here): train on train, pick the
  #    best val checkpoint, score it on test.
  camvid=(--config configs/camvid_fcn8s_modern.py --config.input.source=folder
          --config.input.data_dir="$camvid_dir"
          --config.input.label_values="(0,1,2,3,4,5,6,7,8,9,10)" --config.input.workers=8
          --config.input.crop_size="$crop" --config.train.batch_size=$batch
          ${QUICK:+--config.input.check_data=False})
  job camvid ${CAMVID_S:-190} "$py" -m fcnjax.train "${camvid[@]}" ${CAMVID_ARGS:-} --workdir /tmp/camvid \
    --config.train.steps=$steps --config.train.eval_every=$every \
    --config.train.checkpoint_every=$steps --config.optim.warmup_steps=$((steps / 10))
  job camvid 45 "$py" -m fcnjax.evaluate "${camvid[@]}" ${CAMVID_ARGS:-} --checkpoint /tmp/camvid/best --split test
  tar czf "$out/camvid.tgz" -C /tmp --exclude=checkpoints --exclude=best camvid 2>/dev/null
fi

if want isbi; then
  # 3. The paper's U-Net on ISBI 2012 in fcnjax and in PyTorch, same recipe and time budget.
  job isbi 160 "$py" scripts/isbi_compare.py --data_dir "$data/isbi2012" \
    --out /tmp/isbi/results.json $isbi
  tar czf "$out/isbi.tgz" -C /tmp isbi 2>/dev/null
fi
ls -la "$out"
