(**
# The tensor engine: loading libtorch

SeqNets computes with TorchSharp-cpu 0.107.0 (libtorch 2.10). `SeqNets.Native.ensure ()` makes sure the
native library loads; every SeqNets entry point (cell constructors, `Cell.custom`, `Cell.initParameters`,
`Autodiff.gradWith`, …) calls it. Source: `SeqNets.Core/Native.fs`.

## What you must do

Call it yourself before touching TorchSharp directly — before the first `torch.*` call of a program or
script that has not yet called into SeqNets:

*)
(*** hide ***)
#r "../SeqNets.FSharp/bin/Release/net10.0/TorchSharp.dll"
#r "../SeqNets.FSharp/bin/Release/net10.0/SeqNets.Core.dll"

/// Stops the script with exit code 1 when a claim of the page does not hold.
let check (claim: string) (holds: bool) =
    if not holds then
        eprintfn "FAILED: %s" claim
        exit 1
(**
*)
open TorchSharp
open SeqNets

Native.ensure ()
let xs = torch.randn([| 20L; 2L; 3L |], dtype = torch.float64)
(*** hide ***)
check "TorchSharp works after Native.ensure ()" (xs.shape = [| 20L; 2L; 3L |])
Native.ensure ()  // later calls return at once
(**

From C#: `SeqNets.Native.ensure();`. The reason: if TorchSharp tries first and fails, it keeps the failed
initialisation for the life of the process, and nothing done afterwards can load the library.

`ensure` does its work once per process and keeps the outcome: later calls return at once, or raise the
same `EngineLoadException` again.

Reference SeqNets from a project that is built (`dotnet build`, `dotnet run`, or an F# script that
`#r`s the built assemblies): the build copies TorchSharp's native files into the output folder, and
that copy is the one SeqNets may fix. A copy inside the NuGet package cache is never modified: when that
is the copy a process would load (an F# script with `#r "nuget: SeqNets.FSharp"`), SeqNets fixes a private
copy instead (step 4).

## The problem: GLIBCXX_3.4.32

TorchSharp 0.107.0's `libLibTorchSharp.so` lists `GLIBCXX_3.4.32` (GCC 13's libstdc++) among its ELF
version requirements. Debian 12 and Ubuntu 22.04 ship a libstdc++ that stops at `GLIBCXX_3.4.30`/`3.4.31`,
so the dynamic loader refuses the library. The only symbol bound to that version is
`_ZSt21ios_base_library_initv`, a link anchor that no relocation refers to: nothing at run time uses it.
An ELF version requirement (`Vernaux` entry of `.gnu.version_r`) whose `vna_flags` has `VER_FLG_WEAK`
(value 2) set is only a warning when missing. Setting that one flag makes the library load and work.

TorchSharp loads the library itself with `NativeLibrary.TryLoad` (a DllImport resolver is not consulted),
so the copy to fix is the one TorchSharp will find, in the build output's `runtimes/linux-x64/native/`.

## What `ensure` does

On Linux x64 (elsewhere it only initialises TorchSharp's CPU device):

1. **Find the library.** Candidate folders, in order: the runtime's native probing folders
   (`NATIVE_DLL_SEARCH_DIRECTORIES`), the folders of the loaded SeqNets and TorchSharp assemblies and
   their `runtimes/linux-x64/native`, then `runtimes/linux-x64/native` under the application folder. The
   assembly folders matter for F# scripts, which have no `deps.json`. The first `libLibTorchSharp.so`
   found is used (`Native.candidateLibraries ()` lists them).
2. **Read its version tables** (`Elf.versionNeeds`, ELF64 little-endian): every `Vernaux` entry of
   `.gnu.version_r` — required file, version name, `vna_flags` and its file offset, index (`vna_other`);
   the dynamic symbols bound to that index (`.gnu.version`, hidden bit masked, names from `.dynsym`);
   and whether any `REL`/`RELA` relocation against `.dynsym` refers to one of those symbols.
3. **Compare with this system** (`Native.diagnose`). For each required file (e.g. `libstdc++.so.6`) find
   the path the dynamic loader resolves — load it by name, read `/proc/self/maps` — and read the versions
   it defines (`.gnu.version_d`, `Elf.definedVersions`). A requirement is **missing** if it is not already
   weak and the system library does not define it; a file that cannot be found is not judged. Missing
   requirements split into **fixable** (no relocation refers to their symbols) and **unfixable** (real code
   uses them).
4. **Decide.**
   * Anything unfixable: stop with an `EngineLoadException`; no patch can help.
   * Fixable and the library lies in the NuGet package cache — under `NUGET_PACKAGES` or
     `~/.nuget/packages`, or below a folder holding `.nupkg.metadata` (up to six levels up) — or it cannot be
     rewritten (a read-only install): SeqNets never writes there. It makes a **private copy**
     (`Native.privateCopy`) in `$SEQNETS_NATIVE_CACHE`, else `$XDG_CACHE_HOME/seqnets/native`, else
     `~/.cache/seqnets/native`: a folder keyed by the library's path, size and time, holding the fixed copy and
     links to every other native library of its folder and of the `libtorch-cpu-linux-x64` package TorchSharp
     expects, so that the copy finds `libtorch.so`, `libc10.so` and `libtorch_cpu.so` through its `$ORIGIN`
     run path. The folder is built under a temporary name and renamed into place, once; later processes reuse it.
   * Fixable otherwise: apply the fix in place (`Native.applyFix`).
   * Nothing missing (a system with GCC 13's libstdc++ or newer, or an already fixed copy): leave the file
     alone.
5. **Fix, atomically.** Read the file, OR `VER_FLG_WEAK` into `vna_flags` of each fixable entry — nothing
   else changes — write the result to a temporary file next to the library
   (`<library>.<pid>.<guid>.tmp`, same file mode), and rename it over the original. A process loading the
   library sees either the old or the new file, never a half-written one; the temporary file is deleted
   if anything fails. The fix is **idempotent**: a weak requirement no longer counts as missing, so a
   second run finds nothing to fix and writes nothing.
6. **Load.** Preload the library (or its private copy) with `NativeLibrary.Load`, so that TorchSharp, which
   asks the loader for `libLibTorchSharp.so` by name, finds it already loaded — also from a script — then
   initialise TorchSharp's CPU device.

## Errors you may see

All are `SeqNets.EngineLoadException`, with the real cause in the message:

| message begins | cause | what to do |
| --- | --- | --- |
| `libLibTorchSharp.so was not found in any of: …` | no native files next to the application or TorchSharp | reference TorchSharp-cpu (SeqNets.Core brings it) from a project and build it |
| `libtorch cannot run on this system: libstdc++.so.6 lacks version … (needed by …)` | a missing version that real code uses | install a newer C++ runtime (GCC 13's libstdc++ or later) |
| `'…' needs a one-flag fix to load on this system (…); it cannot be fixed in place and a private copy under '…' could not be made: …` | the copy is in the package cache or read-only, and the cache folder is not writable | set `SEQNETS_NATIVE_CACHE` to a writable folder |
| `libtorch could not be loaded from '…': …` | the dynamic loader still refused | the message names the missing versions, or gives the loader's error |
| `TorchSharp could not initialise libtorch. …` | TorchSharp's own initialisation failed | the message names the library examined and TorchSharp's error |

## Inspecting a library

The reader is public, for diagnostics and tests:
*)
open System
open System.IO
open SeqNets

// The package's pristine copy, in the NuGet package folder (read, never written).
let packages =
    match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
    | null | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
    | folder -> folder
let pristine = Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so")

for n in Elf.versionNeeds pristine do
    if n.Version = "GLIBCXX_3.4.32" then
        printfn "%s %s weak=%b symbols=%A relocated=%b"
            n.File n.Version (n.Flags &&& Elf.WeakFlag <> 0us) n.Symbols n.Relocated

let d = Native.diagnose pristine
printfn "missing %d, fixable %d, unfixable %d" d.Missing.Length d.Fixable.Length d.Unfixable.Length

// The copy this process loaded: the build output's, fixed where this system needed it.
let loaded = Native.candidateLibraries () |> List.head
printfn "%s: missing %d" loaded (Native.diagnose loaded).Missing.Length
(*** hide ***)
let need = Elf.versionNeeds pristine |> List.filter (fun n -> n.Version = "GLIBCXX_3.4.32")
check "the pristine copy needs GLIBCXX_3.4.32 from libstdc++.so.6, not weak"
    (need |> List.map (fun n -> n.File, n.Flags &&& Elf.WeakFlag) = [ ("libstdc++.so.6", 0us) ])
check "only the unrelocated link anchor is bound to it"
    (need |> List.forall (fun n -> n.Symbols = [ "_ZSt21ios_base_library_initv" ] && not n.Relocated))
let systemHasIt =
    match Native.systemLibraryPath "libstdc++.so.6" with
    | Some path -> Elf.definedVersions path |> Set.contains "GLIBCXX_3.4.32"
    | None -> failwith "libstdc++.so.6 does not resolve"
if systemHasIt then check "GCC 13's libstdc++: nothing missing" d.Missing.IsEmpty
else check "an older libstdc++: exactly one missing, fixable requirement"
         ((d.Fixable |> List.map _.Version) = [ "GLIBCXX_3.4.32" ] && d.Unfixable.IsEmpty)
check "the loaded copy lies outside the package cache" (not (Native.isInPackageCache loaded))
check "the loaded copy needs nothing more" (Native.diagnose loaded).Missing.IsEmpty
(**

On the package's pristine copy this reports `libstdc++.so.6 GLIBCXX_3.4.32 weak=false
symbols=["_ZSt21ios_base_library_initv"] relocated=false`, and on a system without that version one
missing, fixable requirement (a system with GCC 13's libstdc++: none), and the copy the script loaded
needs nothing more; this page's script checks all three, and the tests also that the fix flips exactly one flag.
*)

(**
## Signals

The float32 GEMM kernels that oneDNN (inside libtorch) generates at run time for AVX2 and AVX-512 point
the stack pointer into a heap buffer while they run. If a signal is handled on such a thread at that
moment, the kernel writes the signal frame into that buffer: the heap is corrupted and the process later
aborts in `free()` ("corrupted size vs. prev_size") or segfaults. .NET installs handlers for SIGINT,
SIGTERM, SIGQUIT, SIGCHLD, SIGCONT and SIGWINCH, so one Ctrl+C during training could be enough; under a
SIGINT every 20 ms a float32 LSTM on libtorch's fused kernels aborted within a second.

`SignalShield.enter ()` blocks the asynchronous signals on the calling thread until it is disposed (nested
uses cost nothing) and restores the thread's mask afterwards. Every SeqNets computation runs inside
one. libtorch keeps a pool of worker threads for each thread that calls it, and a worker keeps the
signal mask it started with, so `Native.ensure` (which every SeqNets entry point calls) starts the calling
thread's workers inside a shield, once per thread. The process still receives every signal — the kernel hands a process-wide signal to a thread that does not
block it, one of the runtime's own — so `Console.CancelKeyPress` and `PosixSignalRegistration` keep
working. Code of your own that calls TorchSharp directly in float32 — a backward pass you run yourself on
SeqNets' outputs, say — can use the shield too:
*)
let a = torch.randn([| 256L; 256L |])
let product =
    use _ = SignalShield.enter ()
    // Here SIGINT and the other asynchronous signals wait for a thread that takes them.
    a.matmul a
(*** hide ***)
let inside = (use _ = SignalShield.enter () in SignalShield.isBlocked 2)
if OperatingSystem.IsLinux() then
    check "inside the shield SIGINT is blocked on this thread" inside
    check "after it, this thread takes SIGINT again" (not (SignalShield.isBlocked 2))
check "the shielded product is computed" (product.shape = [| 256L; 256L |])
(**
On other systems the shield does nothing.
*)
