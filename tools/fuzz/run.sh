#!/usr/bin/env bash
# Fuzzes SeqNets' file readers under AFL++ through SharpFuzz, one target after another.
#
#   tools/fuzz/run.sh [SECONDS] [TARGET…]      (default: 600 seconds each, every target)
#
# Targets (tools/fuzz/SeqNets.Fuzz/Targets.fs): checkpoint (Checkpoint.load on raw bytes),
# checkpoint-payload (the bytes as the payload of a correctly checksummed checkpoint), statedict
# (Interop.readStateDict on raw bytes), statedict-pickle (the bytes as data.pkl of a valid zip) and
# text (Corpus.ofUtf8 under Reject and Replace, checked against .NET's UTF-8 decoders).
#
# Needs afl-fuzz (Debian: apt-get install afl++) and installs the SharpFuzz.CommandLine tool
# (2.3.0) into $SEQNETS_FUZZ_TOOLS (default ~/.cache/seqnets/fuzz-tools). Output in
# $SEQNETS_FUZZ_OUT (default artifacts/fuzz): bin/ and bin-afl/ (plain and instrumented builds), seeds/<target>/,
# findings/<target>/ (AFL's queue, crashes, hangs, fuzzer_stats); a second run resumes the first.
# Ends with one line per target: executions, paths, crashes, hangs; and replays every crash and
# hang through the target, which prints what broke. A finding becomes a regression test by copying
# the input to tests/fixtures/fuzz/<target>/ (Fuzz.Tests.fs replays that folder).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(checkpoint checkpoint-payload statedict statedict-pickle text)
out=${SEQNETS_FUZZ_OUT:-artifacts/fuzz}
tools=${SEQNETS_FUZZ_TOOLS:-$HOME/.cache/seqnets/fuzz-tools}

if ! command -v afl-fuzz >/dev/null; then
    echo "run.sh: afl-fuzz not found; on Debian: apt-get install afl++" >&2
    exit 2
fi
if [ ! -x "$tools/sharpfuzz" ]; then
    dotnet tool install --tool-path "$tools" SharpFuzz.CommandLine --version 2.3.0
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/bin" "$out/bin-afl"
dotnet publish tools/fuzz/SeqNets.Fuzz -c Release -o "$out/bin" --nologo -v quiet
# A copy with the code under test instrumented for AFL: SeqNets itself and the state-dict reader's
# pickle libraries (sharpfuzz rewrites an assembly in place). Instrumented code runs only under
# afl-fuzz; seeds and replays use the plain build.
cp -r "$out/bin" "$out/bin-afl"
for dll in SeqNets.Core.dll TorchSharp.PyBridge.dll Razorvine.Pickle.dll; do
    "$tools/sharpfuzz" "$out/bin-afl/$dll"
done
fuzz=(dotnet "$out/bin/SeqNets.Fuzz.dll")
afl=(dotnet "$out/bin-afl/SeqNets.Fuzz.dll")

rm -rf "$out/seeds"
"${fuzz[@]}" seeds "$out/seeds"
for pt in tests/fixtures/torch/*.pt; do
    case $pt in *legacy*) ;; *) cp "$pt" "$out/seeds/statedict/" ;; esac
done
for t in "${targets[@]}"; do
    if [ -d "tests/fixtures/fuzz/$t" ]; then cp tests/fixtures/fuzz/"$t"/* "$out/seeds/$t/" 2>/dev/null || true; fi
done

mkdir -p "$out/findings"
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_AUTORESUME=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_FORKSRV_INIT_TMOUT=120000
# AFL runs an input that timed out and reached new code once more, with AFL_HANG_TMOUT, before it
# calls it a hang, but only when AFL_HANG_TMOUT is above -t (its default, 1 s, is not). The time-out
# killed SharpFuzz's child, so that second run goes to a new .NET process that loads the runtime and
# libtorch first (about a second on a quiet machine, far more on a loaded one); without it every such
# input on a busy machine became a "hang" that no replay reproduces.
export AFL_HANG_TMOUT=${AFL_HANG_TMOUT:-30000}
export SEQNETS_FUZZ_LOG="$out/exceptions.log" # every exception a target lets escape, with its stack
for t in "${targets[@]}"; do
    echo "::: fuzzing $t for $seconds s"
    # -t: a reader must answer within 5 s (the child's first run loads libtorch); -m none: .NET
    # reserves far more address space than it uses.
    nice -n 10 afl-fuzz -i "$out/seeds/$t" -o "$out/findings/$t" -t 5000 -m none -V "$seconds" -- "$(command -v dotnet)" "$out/bin-afl/SeqNets.Fuzz.dll" "$t" \
        >"$out/findings-$t.log" 2>&1 || { echo "afl-fuzz stopped early for $t; see $out/findings-$t.log"; tail -20 "$out/findings-$t.log"; }
done

echo
printf '%-20s %12s %12s %8s %8s %10s\n' target executions paths crashes hangs seconds
for t in "${targets[@]}"; do
    stats="$out/findings/$t/default/fuzzer_stats"
    [ -f "$stats" ] || { printf '%-20s (no stats)\n' "$t"; continue; }
    get() { awk -F': *' -v k="$1" '$1 ~ "^"k"[ ]*$" { print $2 }' "$stats"; }
    printf '%-20s %12s %12s %8s %8s %10s\n' "$t" "$(get execs_done)" "$(get corpus_count)" "$(get saved_crashes)" "$(get saved_hangs)" "$(get run_time)"
done
for t in "${targets[@]}"; do
    for kind in crashes hangs; do
        dir="$out/findings/$t/default/$kind"
        if compgen -G "$dir/id:*" >/dev/null; then
            echo "::: $t: $kind"
            "${fuzz[@]}" replay "$t" "$dir"/id:* || true
        fi
    done
done
