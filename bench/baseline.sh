#!/usr/bin/env bash
# Training throughput of the character model against an earlier SeqNets and PyTorch in one run,
# runs alternated (peer, earlier SeqNets, this SeqNets), `repeats` of each per row; prints the medians
# and ratios as markdown. The earlier SeqNets is a checkout of another commit:
#   git worktree add ../seqnets-before <commit>
#   bench/baseline.sh ../seqnets-before [repeats=3] [data=../shared/data/tinyshakespeare.txt]
# This SeqNets runs its fused and derived paths (--paths fused,derived) in the same process.
# The peer is Debian's PyTorch with OpenBLAS: apt-get install python3-torch libopenblas0-openmp.
set -euo pipefail
cd "$(dirname "$0")/.."
before=$1
repeats=${2:-3}
data=${3:-../shared/data/tinyshakespeare.txt}
threads=${THREADS:-$(nproc)}
out=${OUT:-bench/results/baseline-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$out")"
dotnet build bench/SeqNets.Bench -c Release -v quiet -nologo >/dev/null
dotnet build "$before/bench/SeqNets.Bench" -c Release -v quiet -nologo >/dev/null
peer() { LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/peer_charlm.py --text "$data" --threads "$threads" "$@"; }
ours() { dotnet bench/SeqNets.Bench/bin/Release/net10.0/SeqNets.Bench.dll --text "$data" --threads "$threads" "$@"; }
earlier() { dotnet "$before/bench/SeqNets.Bench/bin/Release/net10.0/SeqNets.Bench.dll" --text "$data" --threads "$threads" "$@"; }
for row in "lstm 256 1" "gru 256 1" "lstm 512 2"; do
    read -r cell hidden layers <<<"$row"
    for r in $(seq "$repeats"); do
        echo "# $cell ${layers}x$hidden, run $r" >&2
        peer --cell "$cell" --hidden "$hidden" --layers "$layers" --loss-steps 0 | sed 's/^{/{"who": "peer", /' | tee -a "$out"
        earlier --cell "$cell" --hidden "$hidden" --layers "$layers" --loss-steps 0 --sample-chars 0 | sed 's/^{/{"who": "before", /' | tee -a "$out"
        ours --cell "$cell" --hidden "$hidden" --layers "$layers" --loss-steps 0 --sample-chars 0 --paths fused,derived | sed 's/^{/{"who": "now", /' | tee -a "$out"
    done
done
/usr/bin/python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("| row | PyTorch 1.13 (median, best) | SeqNets before, fused | SeqNets now, fused | now derived | now fused / before | now fused / PyTorch median, best | derived / PyTorch best |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows: r["cell"] = str(r["cell"]).lower().split()[0].split("-")[0]
keys = sorted({(r["cell"], r["layers"], r["hidden"]) for r in rows})
for cell, layers, hidden in keys:
    pick = lambda who, f: [r[f] for r in rows if r["who"] == who and (r["cell"], r["layers"], r["hidden"]) == (cell, layers, hidden) and r.get(f) is not None]
    peer = pick("peer", "train_chars_per_s"); before = pick("before", "train_chars_per_s")
    now = pick("now", "train_chars_per_s"); derived = pick("now", "derived_train_chars_per_s")
    m = statistics.median
    print(f"| {cell} {layers}×{hidden} | {m(peer):,.0f}, {max(peer):,.0f} | {m(before):,.0f} | {m(now):,.0f} | {m(derived):,.0f} | "
          f"{m(now)/m(before):.2f}× | {m(now)/m(peer):.2f}×, {m(now)/max(peer):.2f}× | {m(derived)/max(peer):.2f}× |")
sg = [r["sgemm_gflops"] for r in rows if r["who"] == "peer" and "sgemm_gflops" in r]
if sg: print(f"\nPeer sgemm rate: {min(sg):.0f}–{max(sg):.0f} GFLOP/s (not reference BLAS). Chars/s of training; {len(sg)} peer runs.")
EOF
