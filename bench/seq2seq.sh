#!/usr/bin/env bash
# The attention seq2seq model against PyTorch 1.13 (bench/peer_seq2seq.py, the same model, data,
# batch and optimizer), runs alternated, `repeats` of each: training steps per second, greedy
# decoding and beam search (k = 5) in source rows per second; prints the medians and ratios.
#   bench/seq2seq.sh [repeats=3]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
threads=${THREADS:-$(nproc)}
out=${OUT:-bench/results/seq2seq-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$out")"
dotnet build bench/SeqNets.Bench -c Release -v quiet -nologo >/dev/null
for r in $(seq "$repeats"); do
    echo "# seq2seq, run $r" >&2
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/peer_seq2seq.py --threads "$threads" | tee -a "$out"
    dotnet bench/SeqNets.Bench/bin/Release/net10.0/SeqNets.Bench.dll --seq2seq --threads "$threads" | tee -a "$out"
done
/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
m = statistics.median
print("| measure | PyTorch 1.13 (median, best) | SeqNets (median) | SeqNets / PyTorch median | SeqNets / PyTorch best |")
print("| --- | ---: | ---: | ---: | ---: |")
for f, name in [("train_steps_per_s", "training steps/s (B = 64)"), ("greedy_rows_per_s", "greedy decoding, rows/s"), ("beam_rows_per_s", "beam search k = 5, rows/s")]:
    p = [r[f] for r in rows if r["side"] == "pytorch"]; s = [r[f] for r in rows if r["side"] == "seqnets"]
    print(f"| {name} | {m(p):,.2f}, {max(p):,.2f} | {m(s):,.2f} | {m(s)/m(p):.2f}× | {m(s)/max(p):.2f}× |")
sg = [r["sgemm_gflops"] for r in rows if r["side"] == "pytorch"]
print(f"\nPeer sgemm rate: {min(sg):.0f}–{max(sg):.0f} GFLOP/s. {len(sg)} runs of each side, alternated.")
PY
