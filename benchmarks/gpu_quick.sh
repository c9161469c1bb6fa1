#!/usr/bin/env bash
# Every GPU acceptance figure in one short run (about 5-6 minutes on an H100/H200): 700 training people,
# the full 12,600-image eval set. Most important first, each step under its own timeout.
# Usage, from the repo root: bash benchmarks/gpu_quick.sh OUT_DIR
set -u
OUT=${1:?out dir}
export PYTHONPATH=. HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
D=/tmp/maskcls-quick; R=/tmp/maskcls-runs
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import os, torch; print('torch', torch.__version__, 'cpus', os.cpu_count())" | tee -a "$OUT/gpu.txt"
step() { echo "== $1 $(date +%T)"; }
step demo
python3 -m maskcls demo-data "$D" --people 700 --eval-people 1800 --workers 16 > /dev/null
step "predict: 5 members, flip TTA, 12,600 eval images at 224 (cold = decode cache built first)"
python3 benchmarks/make_members.py "$R" 5 efficientnet_b0 224 > /dev/null
for pass in cold warm; do
  timeout 120 python3 -m maskcls predict --data "$D" --runs-root "$R" --members m0 m1 m2 m3 m4 --method soft \
    --tta flip --out "/tmp/sub-$pass.csv" --cache-dir /tmp/maskcls-evalcache 2>&1 | grep -v -i warn | tee -a "$OUT/predict.txt"
done
step "bench infer (model time only, cache warm)"
timeout 120 python3 -m maskcls bench infer --data "$D" --model efficientnet_b0 --size 224,224 --batch 128 --workers 8 \
  --members 5 --tta flip --cache-dir /tmp/maskcls-evalcache --json | tee "$OUT/infer224.json"
step "train 224 with torch.compile (baseline in the same run)"
timeout 150 python3 -m maskcls bench train --data "$D" --model efficientnet_b0 --size 224,224 --batch 256 --workers 8 \
  --steps 12 --warmup 4 --compile --json | tee "$OUT/train224-compile.json"
step "train 512x384 with torch.compile"
timeout 150 python3 -m maskcls bench train --data "$D" --model efficientnet_b0 --size 512,384 --batch 64 --workers 8 \
  --steps 50 --warmup 10 --compile --json | tee "$OUT/train512-compile.json"
step "train 224 eager"
timeout 60 python3 -m maskcls bench train --data "$D" --model efficientnet_b0 --size 224,224 --batch 256 --workers 8 \
  --steps 12 --warmup 4 --json | tee "$OUT/train224.json"
step done
