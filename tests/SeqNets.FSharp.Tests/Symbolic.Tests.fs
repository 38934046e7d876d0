/// Cells written as equations from the F# face: they read like the lecture and every Rnn route
/// applies to them with no hand-written Jacobian.
module SeqNets.FSharp.Tests.SymbolicTests

open System
open Expecto
open TorchSharp
open SeqNets
open SeqNets.FSharp
open SeqNets.FSharp.Symbolic
open SeqNets.FSharp.Tests.Common

let T, B, I, H = 6, 2, 3, 4

/// The minimal gated unit, as written in its paper.
let mgu =
    let h = previous "h"
    let W_f, U_f, b_f = matrix "W_f", matrix "U_f", vector "b_f"
    let W_h, U_h, b_h = matrix "W_h", matrix "U_h", vector "b_h"
    let f = named "f" (σ (W_f * x + U_f * h + b_f))
    let hTilde = named "h~" (tanh (W_h * x + U_h * (f * h) + b_h))
    cell "mgu" I [ "h", H ]
        [ "W_f", [ H; I ]; "U_f", [ H; H ]; "b_f", [ H ]; "W_h", [ H; I ]; "U_h", [ H; H ]; "b_h", [ H ] ]
        [ "h", (1.0 - f) * h + f * hTilde ]

/// The lecture's GRU over PyTorch's layout, written with rows of its blocks.
let gru =
    let h = previous "h"
    let gate block k symbol = rows block (k * H) H symbol
    let bias block k symbol = vectorRows block (k * H) H symbol
    let r = named "r" (σ (gate "weight_ih" 0 "W_r" * x + bias "bias_ih" 0 "b_ir" + gate "weight_hh" 0 "U_r" * h + bias "bias_hh" 0 "b_hr"))
    let z = named "z" (σ (gate "weight_ih" 1 "W_z" * x + bias "bias_ih" 1 "b_iz" + gate "weight_hh" 1 "U_z" * h + bias "bias_hh" 1 "b_hz"))
    let n = named "n" (tanh (gate "weight_ih" 2 "W_n" * x + bias "bias_ih" 2 "b_in" + gate "weight_hh" 2 "U_n" * (r * h) + bias "bias_hh" 2 "b_hn"))
    cell "gru" I [ "h", H ] [ "weight_ih", [ 3 * H; I ]; "weight_hh", [ 3 * H; H ]; "bias_ih", [ 3 * H ]; "bias_hh", [ 3 * H ] ]
        [ "h", z * h + (1.0 - z) * n ]

[<Tests>]
let tests =
    testList "Cells written as equations" [
        test "an MGU from F#: every route agrees with autodiff (Rnn.identity)" {
            use _ = torch.NewDisposeScope()
            let net = mgu |> Rnn.initWith { Rnn.defaults with Seed = 3; Scale = 2.0 }
            let r = Rnn.identity (randn 4 [| int64 T; int64 B; int64 I |]) net
            Expect.isLessThanOrEqual r.WorstError 1e-9 $"worst disagreement {r.WorstError:E2}"
        }
        test "the lecture's GRU from F# is the built-in lecture-form GRU, Jacobians included" {
            use _ = torch.NewDisposeScope()
            let builtIn = Rnn.gru I H |> Rnn.init 5
            let mine = Rnn.network gru builtIn.Theta
            let xs = randn 6 [| int64 T; int64 B; int64 I |]
            close "states" 1e-12 (Rnn.unroll xs mine) (Rnn.unroll xs builtIn)
            let a, b = Rnn.jacobians xs mine, Rnn.jacobians xs builtIn
            close "c_t" 1e-12 a.State b.State
            close "b_t" 1e-12 a.Parameters b.Parameters
            close "∂s_t/∂θ by the closed form" 1e-12 (Rnn.dsdθ ByClosedForm xs mine) (Rnn.dsdθ ByClosedForm xs builtIn)
        }
        test "show writes the derivation in the lecture's notation" {
            let text = show (derive (equations "indrnn" I [ "h", H ] [ "W", [ H; I ]; "u", [ H ]; "b", [ H ] ] [ "h", relu (matrix "W" * x + vector "u" * previous "h" + vector "b") ]))
            Expect.stringContains text "h_t = ReLU(W x_t + u ⊙ h_(t−1) + b)" "the equation"
            Expect.stringContains text "∂h_t/∂h_(t−1) = diag(𝟙[W x_t + u ⊙ h_(t−1) + b > 0] ⊙ u)" "c_t"
        }
        test "a block the layout does not declare is an ArgumentException naming it" {
            throwsArg "equations" (fun () -> cell "bad" I [ "h", H ] [ "W", [ H; I ] ] [ "h", tanh (matrix "W" * x + matrix "V" * previous "h") ])
        }
    ]
