#!/usr/bin/env bash
# Benchmarks SeqNets against PyTorch on the same character model, runs alternated, and prints the
# medians and ratios as a markdown table (docs/benchmarks.md holds the latest results).
#   bench/run.sh [repeats=7] [data=../shared/data/tinyshakespeare.txt]
# Throughput runs are short (50 timed steps per path) and alternated, `repeats` of each system per
# configuration; the machines are noisy and their speed shifts for seconds at a time, so many
# short alternated runs give steadier medians than a few long ones. The validation loss after
# 1,500 steps is deterministic and measured once per system (LSTM 1×256).
# The peer is Debian's PyTorch with OpenBLAS: apt-get install python3-torch libopenblas0-openmp.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-7}
data=${2:-../shared/data/tinyshakespeare.txt}
threads=${THREADS:-$(nproc)}
out=${OUT:-bench/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$out")"
dotnet build bench/SeqNets.Bench -c Release -v quiet -nologo >/dev/null
peer() { LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/peer_charlm.py --text "$data" --threads "$threads" "$@"; }
ours() { dotnet bench/SeqNets.Bench/bin/Release/net10.0/SeqNets.Bench.dll --text "$data" --threads "$threads" "$@"; }
# Each SeqNets run times its three paths alternated in one process (fused, step, derived).
rows=("lstm 256 1" "gru 256 1" "lstm 512 2")
for row in "${rows[@]}"; do
    read -r cell hidden layers <<<"$row"
    for r in $(seq "$repeats"); do
        echo "# $cell ${layers}x$hidden, run $r" >&2
        peer --cell "$cell" --hidden "$hidden" --layers "$layers" --loss-steps 0 | tee -a "$out"
        ours --cell "$cell" --hidden "$hidden" --layers "$layers" --loss-steps 0 | tee -a "$out"
    done
done
# The cells no peer has fused: the engine against the step path only.
own=("gru-lecture 256 1" "mrnn-256 256 1")
for row in "${own[@]}"; do
    read -r cell hidden layers <<<"$row"
    for r in $(seq "$repeats"); do
        echo "# $cell ${layers}x$hidden, run $r" >&2
        ours --cell "$cell" --hidden "$hidden" --layers "$layers" --loss-steps 0 --sample-chars 0 | tee -a "$out"
    done
done
# Where a step's time goes, and the peak memory of training (one process per path).
for row in "${rows[@]}" "${own[@]}"; do
    read -r cell hidden layers <<<"$row"
    echo "# $cell ${layers}x$hidden, profile and memory" >&2
    ours --cell "$cell" --hidden "$hidden" --layers "$layers" --profile | tee -a "$out"
    for path in fused step derived; do
        if [[ $path == fused && ( $cell == gru-lecture || $cell == mrnn-* ) ]]; then continue; fi
        ours --cell "$cell" --hidden "$hidden" --layers "$layers" --memory --paths "$path" --timed-steps 10 --warmup 3 | tee -a "$out"
    done
done
echo "# lstm 1x256, validation loss after 1,500 steps" >&2
peer --cell lstm --hidden 256 --layers 1 --loss-steps 1500 | tee -a "$out"
ours --cell lstm --hidden 256 --layers 1 --loss-steps 1500 | tee -a "$out"
ours --cell lstm --hidden 256 --layers 1 --loss-steps 1500 --loss-path derived --paths derived --sample-chars 0 | tee -a "$out"
/usr/bin/python3 bench/summarize.py "$out"
