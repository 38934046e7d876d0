/// Tolerances, comparisons and generators shared by the tests of the F# face.
module SeqNets.FSharp.Tests.Common

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open SeqNets

/// Relative tolerance for float64 derivatives against their analytic values.
let exact = 1e-12

/// Expects relative error ≤ tol (max |x − y| / max |y|), naming the quantity.
let close (what: string) (tol: float) (actual: torch.Tensor) (expected: torch.Tensor) =
    Expect.sequenceEqual actual.shape expected.shape $"{what}: shapes differ"
    Expect.equal actual.dtype expected.dtype $"{what}: dtypes differ"
    let err = Tensors.relativeError actual expected
    if not (err <= tol) then
        failtest $"{what}: relative error {err:E3} > {tol:E1} (max |expected| = {Tensors.maxAbs expected:E3})"

/// Expects an ArgumentException naming the given argument.
let throwsArg (name: string) (f: unit -> 'a) =
    let e = Expect.throwsC (fun () -> f () |> ignore) id
    match e with
    | :? ArgumentException as a -> Expect.equal a.ParamName name $"the exception names {name}: {a.Message}"
    | other -> failtest $"expected an ArgumentException naming {name}, but got {other.GetType().Name}: {other.Message}"

let generator (seed: int) = new torch.Generator(uint64 seed)

/// A float64 tensor of standard normal entries.
let randn (seed: int) (shape: int64[]) =
    use g = generator seed
    torch.randn(shape, dtype = torch.float64, generator = g)

/// Sizes m ≠ n of a random function ℝⁿ → ℝᵐ, and a seed.
type Sizes = { M: int; N: int; Seed: int }

let sizes =
    gen {
        let! n = Gen.choose (1, 6)
        let! m = Gen.choose (1, 7) |> Gen.filter (fun m -> m <> n)
        let! seed = Gen.choose (0, Int32.MaxValue)
        return { M = m; N = n; Seed = seed }
    }

let config = { FsCheckConfig.defaultConfig with maxTest = 50 }

/// A property over random sizes.
let property name (body: Sizes -> unit) =
    testPropertyWithConfig config name (Prop.forAll (Arb.fromGen sizes) body)
