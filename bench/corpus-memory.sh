#!/usr/bin/env bash
# Peak resident memory of `seqnets train` on a large text, against the text's size.
#
#   bench/corpus-memory.sh [MEGABYTES]     (default 200)
#
# Makes a UTF-8 text of MEGABYTES (SeqNets' own F# sources, repeated, with a few non-ASCII
# characters and emoji so that the decoder and the vocabulary see more than ASCII), trains a small
# model on it for a few steps with `seqnets train`, and reads the peak resident set size from
# /usr/bin/time -v. Prints the ratio peak RSS / text size (the target: at most 3), and the same for
# a tiny text (the process's own baseline: runtime, libtorch, the model).
set -euo pipefail
cd "$(dirname "$0")/.."
mb=${1:-200}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dotnet build SeqNets.Cli -c Release --nologo -v quiet >/dev/null
cli=(dotnet SeqNets.Cli/bin/Release/net10.0/seqnets.dll)
python3 - "$work/big.txt" "$mb" <<'PY'
import glob, sys
path, mb = sys.argv[1], int(sys.argv[2])
block = "".join(open(f, encoding="utf-8").read() for f in sorted(glob.glob("SeqNets.Core/*.fs")))
block += "\n// état, Übergänge, 状態 😀 — the state summarises the past.\n"
data = block.encode("utf-8")
with open(path, "wb") as out:
    written = 0
    while written < mb * 1024 * 1024:
        chunk = data[: mb * 1024 * 1024 - written]
        out.write(chunk)
        written += len(chunk)
PY
printf 'the state summarises the past. %.0s' {1..200} >"$work/tiny.txt"
measure() { # text → peak RSS in KiB
    /usr/bin/time -v "${cli[@]}" train "$1" --steps 3 --hidden 64 --batch 32 --seq-length 64 \
        --validate-every 0 --sample-length 0 --out "$work/run-$(basename "$1")" 2>"$work/time.txt" >/dev/null
    awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/time.txt"
}
size=$(stat -c %s "$work/big.txt")
base=$(measure "$work/tiny.txt")
peak=$(measure "$work/big.txt")
python3 - "$size" "$base" "$peak" <<'PY'
import sys
size, base, peak = int(sys.argv[1]), int(sys.argv[2]) * 1024, int(sys.argv[3]) * 1024
mib = lambda b: f"{b / 2**20:,.0f} MiB"
print(f"text: {mib(size)}; peak RSS: {mib(peak)} = {peak / size:.2f} × the text "
      f"(baseline on a tiny text: {mib(base)}; the text adds {mib(peak - base)} = {(peak - base) / size:.2f} × its size)")
PY
