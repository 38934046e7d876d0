/// ∂L/∂θ assembled from the closed form, against autograd and finite differences; truncation as
/// weights on the closed form; user-defined cells; and proof that the suite can fail.
module SeqNets.Tests.BpttTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open SeqNets
open SeqNets.Tests.Common

let private lossOf (cell: Cell) output loss (theta: torch.Tensor) wo xs s0 targets =
    use _ = torch.no_grad ()
    let states = Recurrence.unroll cell theta xs s0
    (Loss.sequence loss (OutputLayer.apply output wo (Recurrence.outputs cell states)) targets).item<float> ()

/// Closed-form ∂L/∂θ, ∂L/∂w_o, ∂L/∂s_0 = autograd's (1e-9), and the directional derivative
/// along a random direction = central finite differences (ε = 1e-6).
let lossGradientProperty (loss: Loss) (makeCell: CaseSpec -> Cell) (s: CaseSpec) =
    use _ = torch.NewDisposeScope()
    let cell = makeCell s
    let g = generator s.Seed
    let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch g
    let O = s.Input + s.Hidden + 1 // distinct from every other size
    let output = OutputLayer.create cell.HiddenSize O
    let wo = OutputLayer.initParameters output torch.float64 g
    let targets =
        match loss with
        | CrossEntropy -> torch.randint(int64 O, [| int64 s.Steps; int64 s.Batch |], generator = g)
        | MeanSquared -> torch.randn([| int64 s.Steps; int64 s.Batch; int64 O |], dtype = torch.float64, generator = g)
    let theta, xs, s0 = case.Theta, case.Inputs, case.InitialState
    let states = Recurrence.unroll cell theta xs s0
    let j = Bptt.jacobians cell theta xs states
    let closed = Bptt.lossGradient cell output loss wo states j (Bptt.byClosedForm j) targets
    let gt, gw, gs = Autodiff.lossGradient cell output loss theta wo xs s0 targets
    close $"{cell.Name} ∂L/∂θ, {s}" exact closed.Cell gt
    close $"{cell.Name} ∂L/∂w_o, {s}" exact closed.Output gw
    close $"{cell.Name} ∂L/∂s_0, {s}" exact closed.InitialState gs
    // Central differences along a random unit direction in θ: D(ε) = (L(θ+εv) − L(θ−εv))/2ε at
    // ε and ε/2, Richardson-extrapolated to (4 D(ε/2) − D(ε))/3. The tolerance is 1e-6 of the
    // gradient's scale plus the finite differences' own uncertainty |D(ε) − D(ε/2)|: exploding
    // trajectories have large higher derivatives, and a ReLU kink inside [θ − εv, θ + εv] makes
    // the difference quotient itself unreliable, which that term exposes.
    let v = torch.randn([| int64 cell.ParameterCount |], dtype = torch.float64, generator = g)
    let v = v / v.norm()
    let D eps = (lossOf cell output loss (theta + v * eps) wo xs s0 targets - lossOf cell output loss (theta - v * eps) wo xs s0 targets) / (2.0 * eps)
    let d1, d2 = D 1e-6, D 5e-7
    let fd = (4.0 * d2 - d1) / 3.0
    let analytic = (closed.Cell * v).sum().item<float> ()
    let scale = max (Tensors.maxAbs closed.Cell) 1e-3
    let tolerance = 1e-6 * scale + 8.0 * abs (d1 - d2)
    if abs (fd - analytic) > tolerance then
        failtest $"{cell.Name}, {s}: finite difference {fd:E6} vs closed form {analytic:E6} (gradient scale {scale:E2}, tolerance {tolerance:E2})"

/// An Elman cell whose c_t uses Uᵀ instead of U: a plausible slip in a derivation.
let transposedStateJacobian (s: CaseSpec) =
    let good = cellNamed "elman-tanh" s
    good |> Cell.withJacobians (fun theta x h ->
        let j = good.Jacobians.Value theta x h
        { j with State = j.State.transpose(1L, 2L) })

/// An Elman cell whose b_t forgets the bias_hh block.
let missingBiasBlock (s: CaseSpec) =
    let good = cellNamed "elman-tanh" s
    good |> Cell.withJacobians (fun theta x h ->
        let j = good.Jacobians.Value theta x h
        let P = j.Parameters.shape[2]
        let H = int64 s.Hidden
        { j with Parameters = torch.cat([| j.Parameters.narrow(2L, 0L, P - H); torch.zeros_like(j.Parameters.narrow(2L, 0L, H)) |], 2L) })

/// A user-defined cell: a minimal gated unit h_t = (1 − u) ⊙ h + u ⊙ tanh(W x + b), u = σ(V h).
let userCell (s: CaseSpec) (withJacobians: bool) =
    let I, H = int64 s.Input, int64 s.Hidden
    let L = ParameterLayout [ "W", [ H; I ]; "b", [ H ]; "V", [ H; H ] ]
    let cell =
        Cell.custom "user-gated" s.Input s.Hidden s.Hidden L (fun theta x h ->
            let u = (Tensors.linear (L.View(theta, "V")) h).sigmoid ()
            (1.0 - u) * h + u * (Tensors.linear (L.View(theta, "W")) x + L.View(theta, "b")).tanh ())
    if not withJacobians then cell
    else
        cell
        |> Cell.withRowParameters
        |> Cell.withJacobians (fun theta x h ->
            let u = (Tensors.linear (L.View(theta, "V")) h).sigmoid ()
            let n = (Tensors.linear (L.View(theta, "W")) x + L.View(theta, "b")).tanh ()
            let du = (n - h) * u * (1.0 - u) // ∂h'/∂(V h), diagonal
            let dn = u * (1.0 - n * n) // ∂h'/∂(W x + b), diagonal
            let Du, Dn = Tensors.diag du, Tensors.diag dn
            { State = Tensors.diag (1.0 - u) + Du.matmul (L.View(theta, "V"))
              Parameters = torch.cat([| Tensors.wrtWeight Dn x; Dn; Tensors.wrtWeight Du h |], 2L) })

let private expectFailure (name: string) (makeCell: CaseSpec -> Cell) =
    test $"the identity property catches {name}" {
        let cfg = Config.QuickThrowOnFailure.WithMaxTest(100).WithQuietOnSuccess(true)
        let failed =
            try
                Check.One(cfg, Prop.forAll caseArb (CellsTests.identityProperty makeCell))
                false
            with _ -> true
        Expect.isTrue failed $"a wrong Jacobian ({name}) must make the property fail"
    }

[<Tests>]
let tests =
    testList "BPTT" [
        testList "∂L/∂θ from the closed form equals autograd and finite differences" [
            for name in cellNames do
                yield property $"{name}, cross-entropy" (lossGradientProperty CrossEntropy (cellNamed name))
            yield property "lstm, mean squared" (lossGradientProperty MeanSquared (cellNamed "lstm"))
            yield property "elman-relu, mean squared" (lossGradientProperty MeanSquared (cellNamed "elman-relu"))
        ]

        testList "the suite can fail" [
            expectFailure "a transposed c_t" transposedStateJacobian
            expectFailure "a missing block of b_t" missingBiasBlock
            test "the correct cell passes the same property" {
                Check.One(Config.QuickThrowOnFailure.WithMaxTest(20).WithQuietOnSuccess(true),
                          Prop.forAll caseArb (CellsTests.identityProperty (cellNamed "elman-tanh")))
            }
        ]

        testList "user-defined cells" [
            property "with hand-derived Jacobians: the full identity" (CellsTests.identityProperty (fun s -> userCell s true))
            property "autodiff only: recurrence over autodiff c_t, b_t = reverse mode through the unroll" (fun s ->
                use _ = torch.NewDisposeScope()
                let s = { s with Steps = min s.Steps 12; Batch = 1 } // the per-row loop is slow; keep it small
                let cell = userCell s false
                let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch (generator s.Seed)
                let states = Recurrence.unroll cell case.Theta case.Inputs case.InitialState
                let j = Bptt.jacobiansByAutodiff cell case.Theta case.Inputs states
                close $"user cell, {s}" exact (Bptt.byClosedForm j) (Bptt.byAutodiff cell case.Theta case.Inputs case.InitialState))
            test "a cell without Jacobians says so" {
                let s = { Steps = 3; Batch = 1; Input = 4; Hidden = 7; Regime = Moderate; Seed = 1 }
                let cell = userCell s false
                let case = Verify.randomCase cell torch.float64 Moderate 3 1 (generator 1)
                let states = Recurrence.unroll cell case.Theta case.Inputs case.InitialState
                Expect.throwsT<ArgumentException> (fun () -> Bptt.jacobians cell case.Theta case.Inputs states |> ignore) "no Jacobians"
            }
        ]

        testList "truncation is a weight on the closed form" [
            property "τ ≥ T gives the full sum; τ = 1 gives b_t alone" (fun s ->
                use _ = torch.NewDisposeScope()
                let cell = cellNamed "gru-lecture" s
                let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch (generator s.Seed)
                let states = Recurrence.unroll cell case.Theta case.Inputs case.InitialState
                let j = Bptt.jacobians cell case.Theta case.Inputs states
                close "τ = T" exact (Bptt.byTruncatedSum s.Steps j) (Bptt.byClosedForm j)
                close "τ = 1" 0.0 (Bptt.byTruncatedSum 1 j) j.Parameters)
        ]

        test "a shared initial state [S] gives the same ∂s_t/∂θ as its rows [B; S], on every route" {
            use _ = torch.NewDisposeScope()
            let cell = Cells.Lstm.create 4 7
            let case = Verify.randomCase cell torch.float64 Moderate 6 3 (generator 21)
            let shared = case.InitialState[0L] // [S]
            let rows = shared.unsqueeze(0L).expand(3L, -1L).contiguous () // [B; S]
            let autodiffShared = Bptt.byAutodiff cell case.Theta case.Inputs shared
            let autodiffRows = Bptt.byAutodiff cell case.Theta case.Inputs rows
            close "autodiff, [S] vs [B; S]" 0.0 autodiffShared autodiffRows
            let states = Recurrence.unroll cell case.Theta case.Inputs shared
            close "closed form vs autodiff" exact (Bptt.byClosedForm (Bptt.jacobians cell case.Theta case.Inputs states)) autodiffShared
        }

        test "Enc → g → Dec is the unroll between an encoder and a decoder" {
            use _ = torch.NewDisposeScope()
            let g = generator 9
            let cell = Cells.Gru.create Cells.PyTorch 4 7
            let theta = Cell.initParameters cell torch.float64 g
            let E = torch.randn([| 4L; 6L |], dtype = torch.float64, generator = g) // Enc: R^6 → R^4
            let out = OutputLayer.create 7 3
            let wo = OutputLayer.initParameters out torch.float64 g
            let xs = torch.randn([| 5L; 2L; 6L |], dtype = torch.float64, generator = g)
            let z0 = torch.zeros([| 2L; 7L |], dtype = torch.float64)
            let ys, zs = Recurrence.encodeRecurDecode (fun x -> x.matmul (E.t ())) cell (OutputLayer.apply out wo) theta xs z0
            Expect.sequenceEqual ys.shape [| 5L; 2L; 3L |] "y(t) for every t"
            Expect.sequenceEqual zs.shape [| 6L; 2L; 7L |] "z(0..T)"
            // The same encoding row by row is the same unroll exactly; encoding all steps in one
            // product may round differently (the BLAS kernel depends on the shape and the CPU).
            let encoded = torch.stack([| for t in 0L .. 4L -> xs[t].matmul (E.t ()) |], 0L)
            close "same states" 0.0 zs (Recurrence.unroll cell theta encoded z0)
            close "same states, all steps encoded at once" 1e-13 zs (Recurrence.unroll cell theta (xs.matmul (E.t ())) z0)
        }
    ]
