/// Shared generators and tolerances. Sizes are always distinct (T ≠ B ≠ I ≠ H ≠ S) so that a
/// swapped axis cannot pass.
module SeqNets.Tests.Common

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open SeqNets

/// Relative tolerance for float64 comparisons between exact routes (closed form, autodiff).
let exact = 1e-9

/// One random verification case, described by its sizes.
type CaseSpec =
    { Steps: int
      Batch: int
      Input: int
      Hidden: int
      Regime: Regime
      Seed: int }
    override s.ToString() = $"T={s.Steps} B={s.Batch} I={s.Input} H={s.Hidden} {s.Regime} seed={s.Seed}"

/// T in 1..40, B in 1..3, I in 4..6, H in 7..9, every regime; T differs from B, I, H and 2H.
let caseSpecs =
    gen {
        let! b = Gen.choose (1, 3)
        let! i = Gen.choose (4, 6)
        let! h = Gen.choose (7, 9)
        let! t = Gen.choose (1, 40) |> Gen.filter (fun t -> t <> b && t <> i && t <> h && t <> 2 * h && t <> h + 1)
        let! regime = Gen.elements [ Vanishing; Moderate; Exploding ]
        let! seed = Gen.choose (0, Int32.MaxValue)
        return { Steps = t; Batch = b; Input = i; Hidden = h; Regime = regime; Seed = seed }
    }

let caseArb = Arb.fromGen caseSpecs

/// ≥ 100 cases per property, as the issue asks.
let config = { FsCheckConfig.defaultConfig with maxTest = 100 }

/// A property over random case specs.
let property name (body: CaseSpec -> unit) =
    testPropertyWithConfig config name (Prop.forAll caseArb body)

/// Expects relative error ≤ tol, naming the quantity and the case.
let close (what: string) (tol: float) (actual: torch.Tensor) (expected: torch.Tensor) =
    Expect.sequenceEqual actual.shape expected.shape $"{what}: shapes differ"
    let err = Tensors.relativeError actual expected
    if not (err <= tol) then
        failtest $"{what}: relative error {err:E3} > {tol:E1} (max |expected| = {Tensors.maxAbs expected:E3})"

let generator (seed: int) = new torch.Generator(uint64 seed)

/// The built-in cells at the spec's sizes.
let cellsFor (s: CaseSpec) = Verify.builtInCells s.Input s.Hidden

/// Builds the built-in cell called name at the spec's sizes.
let cellNamed name (s: CaseSpec) = cellsFor s |> List.find (fun c -> c.Name = name)

let cellNames = Verify.builtInCells 2 3 |> List.map _.Name

/// Starts this test program again in a fresh process with the given arguments (see Main.fs for
/// the child modes), standard output and error redirected.
let startSelf (args: string list) : Diagnostics.Process =
    let psi = Diagnostics.ProcessStartInfo("dotnet", ResizeArray(IO.Path.Combine(AppContext.BaseDirectory, "SeqNets.Tests.dll") :: args))
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    Diagnostics.Process.Start psi

/// The libc functions the tests call: pidfds, signals, signal masks.
module Libc =
    [<Runtime.InteropServices.DllImport("libc")>]
    extern int pthread_sigmask(int how, uint64[] set, uint64[] oldset)

    [<Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
    extern int64 syscall(int64 number, int64 a, int64 b, int64 c, int64 d)

    [<Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
    extern int kill(int pid, int signal)

    [<Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
    extern int close(int fd)

    [<Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
    extern nativeint signal(int signal, nativeint handler)

    // The numbers of the syscalls added since Linux 5.1 are the same on every architecture.
    let pidfdSendSignal = 424L
    let pidfdOpen = 434L

/// A non-interactive shell starts a background command with SIGINT ignored, and an ignored signal
/// stays ignored across exec: every child of the tests would ignore the Ctrl+C the signal tests send
/// (.NET installs no handler over an inherited SIG_IGN, as a program started by `nohup` or `&`
/// expects). The test program puts SIGINT back to its default before it runs the tests, so that
/// its children start as from a terminal. Nothing in the test program itself handles SIGINT.
let defaultSigintForChildren () =
    if OperatingSystem.IsLinux() then
        let ignored =
            IO.File.ReadAllLines "/proc/self/status"
            |> Array.tryFind (fun l -> l.StartsWith "SigIgn:")
            |> Option.exists (fun l -> Convert.ToUInt64(l.Substring(7).Trim(), 16) &&& 2UL <> 0UL)
        if ignored then Libc.signal (2, 0n) |> ignore // SIGINT, SIG_DFL

/// Signals one child process and never another. A child's pid is free for reuse as soon as the
/// runtime reaps it, so a test that sends signals by pid in a loop can hit an unrelated process
/// that got the same pid (a fuzzer's fork server starts thousands a second). A pidfd names the
/// process itself: after the child has gone, sending fails instead. Falls back to kill(2) where
/// pidfds are missing (Linux before 5.3). Open it right after starting the child.
type ChildSignal(p: Diagnostics.Process) =
    let fd = if OperatingSystem.IsLinux() then int (Libc.syscall (Libc.pidfdOpen, int64 p.Id, 0L, 0L, 0L)) else -1
    /// Sends the signal; false when the child has already ended.
    member _.Send(signal: int) : bool =
        if fd >= 0 then Libc.syscall (Libc.pidfdSendSignal, int64 fd, int64 signal, 0L, 0L) = 0L
        else not p.HasExited && Libc.kill (p.Id, signal) = 0
    interface IDisposable with
        member _.Dispose() = if fd >= 0 then Libc.close fd |> ignore

/// Waits for a child to end, at most timeoutMs; a child still running then is killed and the test
/// fails with what it wrote (so a lost signal fails the test instead of hanging the suite).
let waitOrFail (p: Diagnostics.Process) (timeoutMs: int) (what: string) (output: unit -> string) =
    if not (p.WaitForExit timeoutMs) then
        (try p.Kill true with _ -> ())
        p.WaitForExit()
        failtest $"{what}: the child did not end within {timeoutMs / 1000} s; it was killed. Its output:\n{output ()}"
    p.WaitForExit()

/// tests/fixtures/<name>, found above the test binaries or the working directory.
let fixturesDir (name: string) =
    let rec up (dir: IO.DirectoryInfo) =
        if isNull dir then None
        else
            let candidate = IO.Path.Combine(dir.FullName, "tests", "fixtures", name)
            if IO.Directory.Exists candidate then Some candidate else up dir.Parent
    match up (IO.DirectoryInfo AppContext.BaseDirectory) |> Option.orElse (up (IO.DirectoryInfo(IO.Directory.GetCurrentDirectory()))) with
    | Some d -> d
    | None -> failtest $"tests/fixtures/{name} not found above the test binaries or the working directory"
