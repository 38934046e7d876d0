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
