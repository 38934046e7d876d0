#!/usr/bin/env bash
# Benchmarks SeqNets against PyTorch on the same character model, runs alternated, and prints the
# medians and ratios as a markdown table (docs/benchmarks.md holds the latest results).
#   bench/run.sh [repeats=3] [data=../shared/data/tinyshakespeare.txt]
# The peer is Debian's PyTorch with OpenBLAS: apt-get install python3-torch libopenblas0-openmp.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
data=${2:-../shared/data/tinyshakespeare.txt}
threads=${THREADS:-$(nproc)}
out=${OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$out")"
dotnet build bench/SeqNets.Bench -c Release -v quiet -nologo >/dev/null
peer() { LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/peer_charlm.py --text "$data" --threads "$threads" "$@"; }
ours() { dotnet bench/SeqNets.Bench/bin/Release/net10.0/SeqNets.Bench.dll --text "$data" --threads "$threads" "$@"; }
# rows: cell hidden layers loss-steps
rows=("lstm 256 1 1500" "gru 256 1 0" "lstm 512 2 0")
for row in "${rows[@]}"; do
    read -r cell hidden layers loss <<<"$row"
    for r in $(seq "$repeats"); do
        echo "# $cell ${layers}x$hidden, run $r" >&2
        peer --cell "$cell" --hidden "$hidden" --layers "$layers" --loss-steps "$loss" | tee -a "$out"
        ours --cell "$cell" --hidden "$hidden" --layers "$layers" --loss-steps "$loss" | tee -a "$out"
    done
done
/usr/bin/python3 bench/summarize.py "$out"
