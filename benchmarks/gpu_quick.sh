#!/usr/bin/env bash
# A shorter GPU check (about 3 minutes): 700 training people, the full 12,600-image eval set.
# Usage: bash benchmarks/gpu_quick.sh OUT_DIR
set -u
OUT=${1:?out dir}
export PYTHONPATH=. HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
D=/tmp/maskcls-quick; R=/tmp/maskcls-runs
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
echo "== demo $(date +%T)"
python3 -m maskcls demo-data "$D" --people 700 --eval-people 1800 --workers 16
echo "== train 224 $(date +%T)"
python3 -m maskcls bench train --data "$D" --model efficientnet_b0 --size 224,224 --batch 256 --workers 8 --steps 12 --warmup 4 --json | tee "$OUT/train224.json"
echo "== train 512x384 $(date +%T)"
python3 -m maskcls bench train --data "$D" --model efficientnet_b0 --size 512,384 --batch 64 --workers 8 --steps 50 --warmup 10 --json | tee "$OUT/train512.json"
echo "== predict $(date +%T)"
python3 benchmarks/make_members.py "$R" 5 efficientnet_b0 224 > /dev/null
for pass in cold warm; do
  python3 -m maskcls predict --data "$D" --runs-root "$R" --members m0 m1 m2 m3 m4 --method soft --tta flip \
    --out "/tmp/sub-$pass.csv" --cache-dir /tmp/maskcls-evalcache 2>&1 | grep -v -i warn | tee -a "$OUT/predict.txt"
done
echo "== done $(date +%T)"
