#!/usr/bin/env bash
# Every GPU figure of the project in one run (see docs/performance.md). Usage, from the repo root:
#   bash benchmarks/gpu_check.sh OUT_DIR
# The real listing (18,900 training paths, 12,600 eval ids) comes from maskcls/reference/.
set -u
OUT=${1:?out dir}
export PYTHONPATH=. HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
D=/tmp/maskcls-full; R=/tmp/maskcls-runs
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, torchvision, timm; print('torch', torch.__version__, 'tv', torchvision.__version__, 'timm', timm.__version__, 'cpus', __import__('os').cpu_count())" | tee -a "$OUT/gpu.txt"
step() { echo "== $1 $(date +%T)"; }
step "full-scale demo data from the real listing"
python3 -m maskcls demo-data "$D" --from-listing real --workers 16 | tee "$OUT/demo.json"
step "bench train 224 efficientnet_b0 bf16 batch 256"
python3 -m maskcls bench train --data "$D" --model efficientnet_b0 --size 224,224 --batch 256 --workers 8 --steps 40 --warmup 10 --json | tee "$OUT/train224.json"
step "bench train 512x384 efficientnet_b0 bf16 batch 64"
python3 -m maskcls bench train --data "$D" --model efficientnet_b0 --size 512,384 --batch 64 --workers 8 --steps 60 --warmup 10 --json | tee "$OUT/train512.json"
step "ensemble: 5 members, flip TTA, 12,600 eval images at 224"
python3 benchmarks/make_members.py "$R" 5 efficientnet_b0 224 | tee "$OUT/members.txt"
for pass in cold warm; do
  /usr/bin/time -f "$pass wall %e s" python3 -m maskcls predict --data "$D" --runs-root "$R" --members m0 m1 m2 m3 m4 \
    --method soft --tta flip --out "$OUT/submission-$pass.csv" --cache-dir /tmp/maskcls-evalcache 2>&1 | grep -v Warning | tee -a "$OUT/predict.txt"
done
head -3 "$OUT/submission-warm.csv"; wc -l "$OUT/submission-warm.csv"
rm -f "$OUT"/submission-*.probs.csv
step "bench train 224 with torch.compile"
timeout 200 python3 -m maskcls bench train --data "$D" --model efficientnet_b0 --size 224,224 --batch 256 --workers 8 --steps 40 --warmup 10 --compile --json | tee "$OUT/train224-compile.json"
step done
