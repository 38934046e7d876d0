#!/usr/bin/env bash
# The NuGet packages as a user meets them. Packs SeqNets.Core, SeqNets.FSharp and SeqNets.CSharp
# into a local folder feed under a version no earlier run used (so the NuGet cache cannot serve a
# stale copy), checks what each package holds, then:
#   (a) a fresh C# console app references SeqNets.CSharp from that feed (everything else from the
#       machine's usual package sources), builds an LSTM, unrolls it and checks the closed form of
#       ∂s_t/∂θ against autodiff;
#   (b) an F# script does the same through SeqNets.FSharp with #r "nuget: …", run by dotnet fsi.
# Prints one line per check and a closing "packages: N passed, N failed"; exits non-zero if any
# check failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

version="0.1.0-ci.$(date -u +%Y%m%d%H%M%S).$$"
work=$(mktemp -d -t seqnets-packages.XXXXXX)
feed="$work/feed"
cache=$(dotnet nuget locals global-packages --list | sed -E 's/^global-packages: *//')
ids=(SeqNets.Core SeqNets.FSharp SeqNets.CSharp)

cleanup() {
    rm -rf "$work"
    # This run's packages were extracted into the NuGet cache under a version nothing else uses.
    for id in "${ids[@]}"; do
        rm -rf "${cache%/}/${id,,}/$version"
        rmdir "${cache%/}/${id,,}" 2>/dev/null
    done
}
trap cleanup EXIT

passed=0
failed=0
failures=()

step() { # name, command...
    local name=$1; shift
    echo "::: packages: $name"
    if ( "$@" ); then passed=$((passed + 1)); echo "::: packages: $name: ok"
    else failed=$((failed + 1)); failures+=("$name"); echo "::: packages: $name: FAILED"; fi
}

# --- pack ----------------------------------------------------------------------------------

pack() {
    dotnet pack SeqNets.slnx -c Release -o "$feed" -p:Version="$version" 2>&1 | tail -n 20
    [ "${PIPESTATUS[0]}" -eq 0 ]
}

# --- what each package holds ----------------------------------------------------------------

# expect <what> <file> <fixed string>: the file holds the string, or say what is missing.
expect() {
    if grep -qF -- "$3" "$2"; then return 0; fi
    echo "  $1: expected $3"
    return 1
}

check_package() { # id, dependencies as "id version" words...
    local id=$1; shift
    local nupkg="$feed/$id.$version.nupkg" snupkg="$feed/$id.$version.snupkg"
    local ok=0
    for f in "$nupkg" "$snupkg"; do
        [ -f "$f" ] || { echo "  $(basename "$f"): not produced"; return 1; }
    done
    local files nuspec
    files="$work/$id.files"
    nuspec="$work/$id.nuspec"
    unzip -Z1 "$nupkg" >"$files"
    unzip -p "$nupkg" "$id.nuspec" >"$nuspec"
    echo "  $id.$version.nupkg: $(tr '\n' ' ' <"$files")"
    for f in README.md "lib/net10.0/$id.dll" "lib/net10.0/$id.xml"; do
        grep -qxF "$f" "$files" || { echo "  $id.nupkg: expected $f inside"; ok=1; }
    done
    # The listing goes to a file first: under pipefail, `unzip | grep -q` fails whenever grep
    # stops reading before unzip has finished writing (SIGPIPE), which depends on timing.
    unzip -Z1 "$snupkg" >"$work/$id.symbols"
    grep -qxF "lib/net10.0/$id.pdb" "$work/$id.symbols" || { echo "  $id.snupkg: expected lib/net10.0/$id.pdb inside"; ok=1; }
    expect "$id.nuspec" "$nuspec" '<license type="expression">MIT</license>' || ok=1
    expect "$id.nuspec" "$nuspec" '<readme>README.md</readme>' || ok=1
    expect "$id.nuspec" "$nuspec" '<repository type="git"' || ok=1
    expect "$id.nuspec" "$nuspec" '<description>' || ok=1
    local count
    count=$(grep -c '<dependency ' "$nuspec")
    if [ "$count" -ne $(($# / 2)) ]; then
        echo "  $id.nuspec: expected $(($# / 2)) dependencies, found $count:"; grep '<dependency ' "$nuspec"; ok=1
    fi
    while [ $# -gt 0 ]; do
        expect "$id.nuspec" "$nuspec" "<dependency id=\"$1\" version=\"$2\"" || ok=1
        shift 2
    done
    return $ok
}

only_libraries() { # nothing but the three libraries packs
    local extra
    extra=$(find "$feed" -name '*.nupkg' | grep -vE "/SeqNets\.(Core|FSharp|CSharp)\.$version\.nupkg$")
    [ -z "$extra" ] || { echo "  unexpected packages: $extra"; return 1; }
}

fsharp_core=$(sed -nE 's/.*PackageVersion Include="FSharp.Core" Version="([^"]+)".*/\1/p' Directory.Packages.props)
torchsharp=$(sed -nE 's/.*PackageVersion Include="TorchSharp-cpu" Version="([^"]+)".*/\1/p' Directory.Packages.props)
pybridge=$(sed -nE 's/.*PackageVersion Include="TorchSharp.PyBridge" Version="([^"]+)".*/\1/p' Directory.Packages.props)
tensors=$(sed -nE 's/.*PackageVersion Include="System.Numerics.Tensors" Version="([^"]+)".*/\1/p' Directory.Packages.props)
scottplot=$(sed -nE 's/.*PackageVersion Include="ScottPlot" Version="([^"]+)".*/\1/p' Directory.Packages.props)

# --- (a) a fresh C# console app --------------------------------------------------------------

csharp_app() {
    local app="$work/csharp-app"
    mkdir -p "$app" && cd "$app" || return 1
    # The local feed in addition to the machine's package sources: SeqNets from here, the rest
    # (TorchSharp, libtorch, FSharp.Core) from the registry.
    cat >nuget.config <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="seqnets-local" value="$feed" />
  </packageSources>
</configuration>
EOF
    dotnet new console --framework net10.0 --name PackageCheck --output . >/dev/null || return 1
    dotnet add package SeqNets.CSharp --version "$version" >"$work/add.log" 2>&1 \
        || { cat "$work/add.log"; return 1; }
    cat >Program.cs <<'EOF'
// An LSTM through the C# face of SeqNets: unroll, then ∂s_t/∂θ by the closed form against
// reverse-mode autodiff. Exits with 1 if they disagree. The first lines are docs/api.md's example.
using SeqNets.CSharp;
using TorchSharp;

SeqNetsEngine.EnsureLoaded();
var cell = RecurrentCell.Lstm(inputSize: 3, hiddenSize: 5);
using var net = new RecurrentNetwork(cell, NetworkOptions.Default.WithPrecision(Precision.Float64).WithSeed(42));
using var xs = torch.randn(new long[] { 7, 2, 3 }, dtype: torch.float64);                 // [T; B; I]
using var closedForm = net.StateParameterJacobian(xs, route: BpttRoute.ClosedForm);    // [T; B; S; P]
using var autodiff = net.StateParameterJacobian(xs, route: BpttRoute.Autodiff);
Console.WriteLine(net.VerifyIdentity(xs));

// T = 7, B = 2, I = 3, H = 5 are all different, so a swapped axis cannot pass.
const double tolerance = 1e-9;
using var unrolled = net.Unroll(xs);
long[] expected = { 8, 2, 10 }; // [T+1; B; S], S = 2H
if (!unrolled.States.shape.SequenceEqual(expected))
{
    Console.Error.WriteLine($"states: expected [{string.Join("; ", expected)}], got [{string.Join("; ", unrolled.States.shape)}]");
    return 1;
}

double error;
using (var diff = (closedForm - autodiff).abs().max())
using (var reference = autodiff.abs().max())
    error = diff.item<double>() / reference.item<double>();
var report = net.VerifyIdentity(xs);
Console.WriteLine($"{cell}: closed form vs autodiff {error:g3}, worst error of the identity {report.WorstError:g3}");
if (!(error <= tolerance) || !(report.WorstError <= tolerance))
{
    Console.Error.WriteLine($"closed form and autodiff disagree: {error:g3}, worst error {report.WorstError:g3} (tolerance {tolerance:g})");
    return 1;
}
Console.WriteLine($"C# app: closed form = autodiff within {tolerance:g}");
return 0;
EOF
    dotnet run -c Release 2>&1
}

# --- (b) an F# script with #r "nuget: …" ------------------------------------------------------

fsharp_script() {
    local dir="$work/fsharp-script"
    mkdir -p "$dir" && cd "$dir" || return 1
    sed -e "s|@FEED@|$feed|" -e "s|@VERSION@|$version|" >check.fsx <<'EOF'
// An LSTM through SeqNets.FSharp referenced as a package: unroll, then ∂s_t/∂θ by the closed
// form against reverse-mode autodiff. Exits with 1 if they disagree or libtorch cannot load.
#i "nuget: @FEED@"
#r "nuget: SeqNets.FSharp, @VERSION@"

open TorchSharp
open SeqNets
open SeqNets.FSharp

try
    Native.ensure ()
with :? EngineLoadException as e ->
    eprintfn "F# script: libtorch could not be loaded with SeqNets referenced from the NuGet package cache (#r \"nuget: …\"): EngineLoadException: %s" e.Message
    exit 1

let tolerance = 1e-9
let T, B, I, H = 7, 2, 3, 5 // distinct sizes, so a swapped axis cannot pass

let xs =
    use g = new torch.Generator(7UL)
    torch.randn([| int64 T; int64 B; int64 I |], dtype = torch.float64, generator = g) // [T; B; I]
let net = Rnn.lstm I H |> Rnn.init 42
let states = net |> Rnn.unroll xs // [T+1; B; S]
if states.shape <> [| int64 T + 1L; int64 B; 2L * int64 H |] then
    eprintfn "states: expected [%d; %d; %d], got %A" (T + 1) B (2 * H) states.shape
    exit 1

let closedForm = net |> Rnn.dsdθ ByClosedForm xs // [T; B; S; P]
let autodiff = net |> Rnn.dsdθ ByAutodiff xs // [T; B; S; P]
let error = Tensors.relativeError closedForm autodiff
let report = net |> Rnn.identity xs
printfn "%O: closed form vs autodiff %.3g; worst error of the identity %.3g" net.Cell error report.WorstError
if not (error <= tolerance && report.WorstError <= tolerance) then
    eprintfn "closed form and autodiff disagree: %g, worst error %g (tolerance %g)" error report.WorstError tolerance
    exit 1
printfn "F# script: closed form = autodiff within %g" tolerance
EOF
    dotnet fsi --quiet check.fsx 2>&1
}

echo "packages: version $version, feed $feed"
step "dotnet pack -p:Version=$version" pack
if [ -f "$feed/SeqNets.Core.$version.nupkg" ]; then
    step "SeqNets.Core.nupkg contents" check_package SeqNets.Core FSharp.Core "$fsharp_core" TorchSharp-cpu "$torchsharp" TorchSharp.PyBridge "$pybridge" System.Numerics.Tensors "$tensors" ScottPlot "$scottplot"
    step "SeqNets.FSharp.nupkg contents" check_package SeqNets.FSharp SeqNets.Core "$version" FSharp.Core "$fsharp_core"
    step "SeqNets.CSharp.nupkg contents" check_package SeqNets.CSharp SeqNets.Core "$version"
    step "only the three libraries pack" only_libraries
    step "C# console app referencing SeqNets.CSharp $version" csharp_app
    step "F# script with #r \"nuget: SeqNets.FSharp, $version\"" fsharp_script
fi

for f in "${failures[@]}"; do echo "packages: FAILED: $f"; done
echo "packages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
