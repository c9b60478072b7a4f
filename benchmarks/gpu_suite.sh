#!/usr/bin/env bash
# Every GPU figure BENCHMARKS.md asks for, in one device call of about 9 minutes:
#   run(command="bash benchmarks/gpu_suite.sh", timeout_s=600)
# Each stage has its own time limit so a slow one cannot take the rest down, and no stage
# runs past the suite's deadline (SUITE_S seconds from the start, default 540): a stage gets
# the smaller of its limit and the time left. Rows go to $OUT (or ./gpu_out) as JSON lines
# (train_step writes each row as it finishes), logs beside them. Needs jax, flax, optax,
# torch only. The train stage times PyTorch eager for both models and torch.compile for
# FCN-8s (about a minute of compile per dtype); U-Net's torch.compile is left to a
# separate call (python benchmarks/train_step.py --models unet --torch).
# QUICK=1 bash benchmarks/gpu_suite.sh  checks the script on a CPU at tiny sizes.
# STAGES="fwd_fcn8s train" runs only those stages (default: train compile_cold compile_warm
# fwd_table1, issue 15's figures; fwd_fcn8s, measured before, only when named).
set -u
out=${OUT:-gpu_out}; mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
py=${PYTHON:-python3}
stages=" ${STAGES:-train compile_cold compile_warm fwd_table1} "
deadline=${SUITE_S:-540}
stage() {  # stage NAME SECONDS ARGS...
  local name=$1 limit=$2; shift 2
  [[ $stages == *" $name "* ]] || return 0
  local left=$((deadline - SECONDS))
  (( left < limit )) && limit=$left
  if (( limit < 20 )); then
    echo "=== $name skipped: ${left}s left of the suite's ${deadline}s" | tee "$out/$name.log"
    return 0
  fi
  echo "=== $name (limit ${limit}s)"
  timeout "$limit" "$py" "$@" ${QUICK:+--quick} --out "$out/$name.jsonl" 2>&1 | tee "$out/$name.log" | tail -25
}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$out/gpu.txt"
"$py" -c "import jax, flax, torch; print(jax.__version__, flax.__version__, torch.__version__, jax.devices())" | tee -a "$out/gpu.txt"
git rev-parse HEAD 2>/dev/null | tee -a "$out/gpu.txt"
stage train 300 benchmarks/train_step.py --models fcn8s,unet --torch --compile-models fcn8s --repeats 10 --warmup 2
# the FCN-8s bf16 step's compile with the CLIs' persistent cache: empty, then filled
rm -rf /tmp/fcnjax_compile_cache
stage compile_cold 90 benchmarks/train_step.py --models fcn8s --dtypes bfloat16 --repeats 3 --compile-cache /tmp/fcnjax_compile_cache
stage compile_warm 60 benchmarks/train_step.py --models fcn8s --dtypes bfloat16 --repeats 3 --compile-cache /tmp/fcnjax_compile_cache
stage fwd_table1 150 benchmarks/forward_time.py --models fcn_googlenet,unet --torch --no-compile --repeats 20
stage fwd_fcn8s 200 benchmarks/forward_time.py --models fcn8s --torch --repeats 30
