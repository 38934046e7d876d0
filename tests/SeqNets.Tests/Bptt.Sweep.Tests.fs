/// ∂s_t/∂θ at one chosen step: the closed form by one suffix sweep (structured b_t or dense)
/// and reverse-mode autodiff at that step, against the full routes; the steps-as-rows evaluation
/// of the Jacobians against one call per step; arguments.
module SeqNets.Tests.BpttSweepTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open SeqNets
open SeqNets.Tests.Common

/// A step t in 1..T from the spec's seed.
let private stepOf (s: CaseSpec) = 1 + abs (s.Seed % s.Steps)

let sweepProperty (makeCell: CaseSpec -> Cell) (s: CaseSpec) =
    use _ = torch.NewDisposeScope()
    let cell = makeCell s
    let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch (generator s.Seed)
    let theta, xs, s0 = case.Theta, case.Inputs, case.InitialState
    let states = Recurrence.unroll cell theta xs s0
    let t = stepOf s
    let full = Bptt.byRecurrence (Bptt.jacobians cell theta xs states) // [T; B; S; P]
    let expected = full[int64 (t - 1)] // [B; S; P]
    let H = int64 cell.HiddenSize
    close $"{cell.Name} sweep (structured b_t) at t = {t}, {s}" exact (Bptt.atStep cell theta xs states t) expected
    let dense = { cell with StructuredJacobians = None }
    close $"{cell.Name} sweep (dense b_t) at t = {t}, {s}" exact (Bptt.atStep dense theta xs states t) expected
    close $"{cell.Name} ∂h_t/∂θ by the sweep, {s}" exact (Bptt.outputAtStep cell theta xs states t) (expected.narrow(1L, 0L, H))
    close $"{cell.Name} autodiff at t = {t}, {s}" exact (Bptt.byAutodiffAt cell theta xs s0 t) expected
    close $"{cell.Name} ∂h_t/∂θ by autodiff at t, {s}" exact (Bptt.outputByAutodiffAt cell theta xs s0 t) (expected.narrow(1L, 0L, H))
    let r = Verify.identityAt cell case t
    if not (r.ClosedFormVsAutodiff <= exact) then failtest $"{cell.Name}: Verify.identityAt disagrees by {r.ClosedFormVsAutodiff:E3}"

[<Tests>]
let tests =
    testList "BPTT at one step" [
        testList "the suffix sweep and autodiff at t equal the recurrence's a_t" [
            for name in cellNames -> property name (sweepProperty (cellNamed name))
            yield property "a user's cell written as equations (peephole LSTM)" (sweepProperty (fun s -> Equations.cell (SymbolicTests.peepholeLstm s.Input s.Hidden)))
        ]

        property "Jacobians of all steps evaluated as rows = one call per step" (fun s ->
            use _ = torch.NewDisposeScope()
            let cell = cellNamed "gru-lecture" s
            let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch (generator s.Seed)
            let states = Recurrence.unroll cell case.Theta case.Inputs case.InitialState
            let j = Bptt.jacobians cell case.Theta case.Inputs states
            let perStep = [| for t in 0L .. int64 s.Steps - 1L -> cell.Jacobians.Value case.Theta case.Inputs[t] states[t] |]
            close "c_t" 1e-14 j.State (torch.stack(perStep |> Array.map _.State, 0L))
            close "b_t" 1e-14 j.Parameters (torch.stack(perStep |> Array.map _.Parameters, 0L)))

        test "a seed picks a combination of the state: seed · ∂s_t/∂θ" {
            use _ = torch.NewDisposeScope()
            let cell = Cells.Lstm.create 4 7
            let case = Verify.randomCase cell torch.float64 Moderate 9 2 (generator 4)
            let states = Recurrence.unroll cell case.Theta case.Inputs case.InitialState
            let seed = torch.randn([| 2L; 3L; 14L |], dtype = torch.float64, generator = generator 5) // [B; K; S]
            let a = Bptt.atStep cell case.Theta case.Inputs states 6 // [B; S; P]
            close "closed form" exact (Bptt.sweepAt cell case.Theta case.Inputs states 6 seed) (seed.matmul a)
            close "autodiff" exact (Bptt.sweepByAutodiffAt cell case.Theta case.Inputs case.InitialState 6 seed) (seed.matmul a)
        }

        test "a cell without row parameters: autodiff at t by one pass per row" {
            use _ = torch.NewDisposeScope()
            let s = { Steps = 5; Batch = 2; Input = 4; Hidden = 7; Regime = Moderate; Seed = 3 }
            let cell = BpttTests.userCell s false
            let case = Verify.randomCase cell torch.float64 Moderate 5 2 (generator 6)
            let all = Bptt.byAutodiff cell case.Theta case.Inputs case.InitialState
            close "at t = 4" exact (Bptt.byAutodiffAt cell case.Theta case.Inputs case.InitialState 4) all[3L]
        }

        test "a step outside 1..T and a seed of the wrong shape are refused" {
            use _ = torch.NewDisposeScope()
            let cell = Cells.Elman.create Cells.Tanh 4 7
            let case = Verify.randomCase cell torch.float64 Moderate 5 2 (generator 7)
            let states = Recurrence.unroll cell case.Theta case.Inputs case.InitialState
            let e = Expect.throwsC (fun () -> Bptt.atStep cell case.Theta case.Inputs states 6 |> ignore) id
            Expect.equal (e :?> ArgumentException).ParamName "t" "names t"
            Expect.stringContains e.Message "1..5" "the range"
            let e = Expect.throwsC (fun () -> Bptt.sweepAt cell case.Theta case.Inputs states 2 (torch.ones([| 2L; 1L; 6L |], dtype = torch.float64)) |> ignore) id
            Expect.equal (e :?> ArgumentException).ParamName "seed" "names the seed"
        }
    ]
