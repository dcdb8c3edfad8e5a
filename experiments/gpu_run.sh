#!/usr/bin/env bash
# The GPU checks, run ON the lent GPU machine (the `device` tool) after experiments/gpu_prep.sh made .whl/ and
# .gpudata/ here. One call runs the stages named on its command line, each under its own time limit, in order:
#
#   env        nvidia-smi, python / torch / optuna versions
#   tests      python3 -m pytest tests/evaluate/test_gpu.py (bf16 autocast, channels_last, CUDA events, OOM)
#   trainer    bench_trainer_overhead.py --device cuda on CIFAR-10 (the trainer vs an airbench-style loop)
#   fidelity   proxy_fidelity.py --full (--n $FIDELITY_N, default 100), no new architecture after $FIDELITY_MIN minutes
#   ssm        bench_ssm_scan.py --device cuda
#   latency    bench_latency_repeatability.py --device cuda (two processes per model, batch 1)
#   packing    bench_trials_per_gpu.py, K = 1 and 4, $PACK_S seconds each, on CIFAR-10
#   phases     bench_eval_phases.py --device cuda: one mobile candidate's evaluation, phase by phase
#
# After every stage, $OUT/results.tgz is rewritten with every file the stages wrote under experiments/results/
# and their logs, so a call stopped at its limit still returns what finished. Example device command:
#   bash experiments/gpu_run.sh env tests trainer fidelity        (carry [".whl", ".gpudata"])
# Unpack here with: tar xzf <files_at>/results.tgz   (from the repository root)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_run_out}
SCRATCH=${TMPDIR:-/tmp}
LOGS=$SCRATCH/gpu_logs
mkdir -p "$OUT" "$LOGS"
[ -n "${GPU_RUN_NO_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SCRATCH/site" .whl/*.whl \
  || { echo "gpu_run: wheel install failed" >&2; exit 3; }
export PYTHONPATH=$SCRATCH/site:$PWD NAS_DATA_DIR=$PWD/.gpudata PYTHONUNBUFFERED=1
marker=$SCRATCH/gpu_run.start
[ -f "$marker" ] || { touch "$marker"; sleep 1; }
FIDELITY_MIN=${FIDELITY_MIN:-2}
PACK_S=${PACK_S:-60}
summary=$OUT/summary.txt

pack() {
  find experiments/results -type f -newer "$marker" > "$SCRATCH/gpu_files.txt"
  tar czf "$OUT/results.tgz" -T "$SCRATCH/gpu_files.txt" -C "$SCRATCH" gpu_logs 2>/dev/null
}

stage() {  # stage NAME SECONDS COMMAND...
  local name=$1 secs=$2; shift 2
  local t0=$SECONDS
  echo "=== $name (limit ${secs}s): $*"
  timeout --signal=INT --kill-after=15 "$secs" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$LOGS/$name.log"
  echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$summary"
  pack
}

for s in "$@"; do
  case $s in
    env) stage env 60 bash -c 'nvidia-smi; python3 -c "import sys, torch, optuna, numpy; print(sys.version); \
print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.get_device_name(0)); \
print(\"optuna\", optuna.__version__, \"numpy\", numpy.__version__)"; nproc; free -g' ;;
    tests) stage tests 150 python3 -m pytest -q -p no:cacheprovider tests/evaluate/test_gpu.py ;;
    trainer) stage trainer 180 python3 experiments/bench_trainer_overhead.py --device cuda --dataset cifar10 \
        --train-subset 10000 --batch-size 512 --epochs 4 --repeats 5 --tag cuda ;;
    fidelity) stage fidelity $((FIDELITY_MIN * 60 + 150)) python3 experiments/proxy_fidelity.py --full \
        --n "${FIDELITY_N:-100}" --max-minutes "$FIDELITY_MIN" ;;
    ssm) stage ssm 150 python3 experiments/bench_ssm_scan.py --device cuda ;;
    latency) stage latency 150 python3 experiments/bench_latency_repeatability.py --device cuda --tag cuda ;;
    packing) stage packing $((PACK_S * 2 + 120)) python3 experiments/bench_trials_per_gpu.py --dataset cifar10 \
        --train-subset 9000 --seconds "$PACK_S" ;;
    phases) stage phases 150 python3 experiments/bench_eval_phases.py --device cuda --space mobile --dataset cifar10 \
        --train-subset 9000 --batch-size 256 --n "${PHASES_N:-1}" --tag cuda ;;
    *) echo "gpu_run: unknown stage $s" >&2; exit 2 ;;
  esac
done
cat "$summary"
