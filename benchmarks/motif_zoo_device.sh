#!/usr/bin/env bash
# The motif zoo on a machine with many cores and a GPU: brains in parallel processes, each fit
# trained on --device, the whole run stopped at a deadline, the brains that finished merged.
#
#   bash benchmarks/motif_zoo_device.sh OUT.json DEADLINE_S [motif_zoo.py options ...]
#   ZOO_PROCS=10 ZOO_BRAINS=20 bash benchmarks/motif_zoo_device.sh "$OUT/zoo.json" 220 \
#       --seed-base 5000 --neurons 240 --frames 1500 --epochs 60 --fits model --device cuda
#
# Process i runs brains i, i + ZOO_PROCS, ... (one motif_zoo.py call per brain, so every brain
# that finishes is kept). A brain still running at the deadline is killed and left out: the
# merged JSON lists the brains that finished, and "unfinished" the ones that did not.
set -u
cd "$(dirname "$0")/.."
out=$1
deadline=$2
shift 2
procs=${ZOO_PROCS:-10}
brains=${ZOO_BRAINS:-20}
python=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
parts=$(mktemp -d)
pids=()
for ((i = 0; i < procs && i < brains; i++)); do
  setsid bash -c '
    for ((b = $1; b < $2; b += $3)); do
      "$4" benchmarks/motif_zoo.py --start "$b" --brains 1 --out "$5/brain_$b.json" "${@:6}" \
        > "$5/log_$b.txt" 2>&1
    done' worker "$i" "$brains" "$procs" "$python" "$parts" "$@" &
  pids+=($!)
done
end=$((SECONDS + deadline))
while ((SECONDS < end)); do
  running=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
  ((running)) || break
  sleep 2
done
for pid in "${pids[@]}"; do kill -9 -- "-$pid" 2>/dev/null; done
wait 2>/dev/null
"$python" - "$out" "$parts" "$brains" "$SECONDS" "$@" <<'EOF'
import json, sys
from pathlib import Path

sys.path.insert(0, "benchmarks")
from _results import write_json  # noqa: E402
from motif_zoo import merge  # noqa: E402

out, parts, n_brains, wall = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
done = sorted(parts.glob("brain_*.json"), key=lambda p: int(p.stem.split("_")[1]))
pairs = [(p, json.loads(p.read_text())) for p in done]
pairs = [(p, r) for p, r in pairs if r.get("brains")]
results = [r for _, r in pairs]
if not results:
    print("no brain finished; logs:")
    for log in sorted(parts.glob("log_*.txt")):
        print(log.name, log.read_text()[-2000:])
    sys.exit(1)
merged = merge(results)
finished = {int(p.stem.split("_")[1]) for p, _ in pairs}
merged["unfinished"] = [b for b in range(n_brains) if b not in finished]
merged["parallel"] = {"wall_s": wall, "argv": sys.argv[5:], "brains_asked": n_brains}
write_json(out, merged)
print(f"{len(merged['brains'])} of {n_brains} brains finished in {wall:.0f} s -> {out}")
for log in sorted(parts.glob("log_*.txt")):
    text = log.read_text()
    if "Traceback" in text:
        print(log.name, text[-1500:])
EOF
