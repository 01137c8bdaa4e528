#!/usr/bin/env bash
# The CUDA check, for a machine with an NVIDIA GPU: the CPU-vs-CUDA agreement tests of the
# Petri dish and the PTB trainer, the dish's speed on both devices side by side, the
# trainer's step throughput on the GPU, and one real training of the `cpu` preset on the GPU.
# Every step runs even if an earlier one fails; the exit status is the number that failed.
#
#   EVO_NAS_DATA=../shared/data bash benchmarks/cuda_check.sh   (PYTHON=... to pick one)
set -u
py=${PYTHON:-python3}
failed=0
step() {
    echo "=== $* ($(date +%T))"
    "$@" || { echo "=== FAILED: $*"; failed=$((failed + 1)); }
}
step "$py" -c 'import torch; assert torch.cuda.is_available(), "no CUDA"; print(torch.__version__, torch.cuda.get_device_name())'
step "$py" -m pytest -q -p no:cacheprovider tests/test_spd.py tests/test_ptb_trainer.py -k cuda
step "$py" benchmarks/bench_spd.py --predict 1000 --fit 50 --threads 2 --devices cpu,cuda
step "$py" benchmarks/bench_spd.py --predict 4096 --fit 0 --devices cuda --options '{"predict_batch": 4096}'
step "$py" benchmarks/bench_trainer.py --device cuda --nhid 128 850 --steps 10
step "$py" -m evo_nas.cli train --genotype DARTS_V2 --preset cpu --device cuda --no-test \
    --out "${TMPDIR:-/tmp}/evo_nas_cuda_check"
echo "=== done: $failed step(s) failed"
exit "$failed"
