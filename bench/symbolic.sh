#!/usr/bin/env bash
# Benchmarks of the symbolic derivations and of verification at scale, against PyTorch 1.13
# (bench/peer_jacobian.py), and the rows for docs/benchmarks.md:
#   bench/symbolic.sh [repeats=5]
# 1. derived vs hand-derived evaluation of c_t and b_t, every built-in cell (runs alternated, medians);
# 2. ∂h_T/∂θ of an LSTM I = 16, H = 32, T = 128, one sequence, float64: the closed form by one suffix
#    sweep over structured b_t, against torch.autograd.functional.jacobian (plain and vectorised), on the
#    same case (SeqNets writes it, the peer reads it and reports its distance to SeqNets' result);
#    runs alternated, `repeats` of each side;
# 3. peak memory of the autodiff reference (and of the sweep), each route in a process of its own, for
#    that LSTM and for H = 64, T = 256;
# 4. Verify.identityAt for every built-in cell at both sizes.
# The peer is Debian's PyTorch with OpenBLAS: apt-get install python3-torch libopenblas0-openmp.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-5}
threads=${THREADS:-$(nproc)}
out=${OUT:-bench/results/symbolic-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
mkdir -p "$(dirname "$out")"
dotnet build bench/SeqNets.Bench -c Release -v quiet -nologo >/dev/null
ours() { dotnet bench/SeqNets.Bench/bin/Release/net10.0/SeqNets.Bench.dll --threads "$threads" "$@"; }
peer() { LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/peer_jacobian.py --threads "$threads" "$@"; }
case_dir=$(mktemp -d)
trap 'rm -rf "$case_dir"' EXIT

echo "# derived vs hand-derived Jacobians" >&2
ours --mode jacobians --repeats 7 | tee -a "$out"

for size in "32 128" "64 256"; do
    read -r hidden steps <<<"$size"
    for r in $(seq "$repeats"); do
        echo "# lstm I=16 H=$hidden T=$steps: closed form vs PyTorch, run $r" >&2
        ours --mode sweep --cell lstm --input 16 --hidden "$hidden" --steps "$steps" --repeats 3 --dump "$case_dir" | tee -a "$out"
        peer --cell lstm --input 16 --hidden "$hidden" --steps "$steps" --repeats 3 --load "$case_dir" | tee -a "$out"
    done
done

echo "# peak memory, one route per process" >&2
for size in "32 128" "64 256"; do
    read -r hidden steps <<<"$size"
    ours --mode memory --route autodiff-at --cell lstm --input 16 --hidden "$hidden" --steps "$steps" | tee -a "$out"
    ours --mode memory --route sweep --cell lstm --input 16 --hidden "$hidden" --steps "$steps" | tee -a "$out"
done
# All steps at once: the result alone is T·S·P entries (0.4 GB here; 5.5 GB for H = 64, T = 256).
ours --mode memory --route autodiff-all --cell lstm --input 16 --hidden 32 --steps 128 | tee -a "$out"

echo "# verify at scale, every built-in cell" >&2
ours --mode verify-scale --input 16 --hidden 32 --steps 128 | tee -a "$out"
ours --mode verify-scale --input 16 --hidden 64 --steps 256 | tee -a "$out"

/usr/bin/python3 bench/summarize_symbolic.py "$out"
