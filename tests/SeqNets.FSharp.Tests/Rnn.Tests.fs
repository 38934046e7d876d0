/// Networks as values: pipelines, every route to ∂s_t/∂θ, closed-form terms, the identity check.
module SeqNets.FSharp.Tests.RnnTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open SeqNets
open SeqNets.FSharp
open SeqNets.FSharp.Tests.Common

/// Agreement between exact float64 routes through a whole trajectory.
let routes = 1e-9

/// T = 6, B = 2, I = 3, H = 4: distinct sizes, so a swapped axis cannot pass.
let T, B, I, H = 6, 2, 3, 4

let inputs seed = randn seed [| int64 T; int64 B; int64 I |]

let cells () =
    [ Rnn.elman I H; Rnn.elmanRelu I H; Rnn.gru I H; Rnn.gruPyTorch I H; Rnn.lstm I H; Rnn.multiplicative I H (H + 1) ]

/// A cell (by index), a seed and a weight scale.
let cases =
    gen {
        let! k = Gen.choose (0, 5)
        let! seed = Gen.choose (0, 100000)
        let! scale = Gen.elements [ 0.1; 1.0; 3.0 ]
        return k, seed, scale
    }

let routeProperty name body =
    testPropertyWithConfig { config with maxTest = 12 } name (Prop.forAll (Arb.fromGen cases) (fun (k, seed, scale) ->
        let net = cells () |> List.item k |> Rnn.initWith { Rnn.defaults with Seed = seed; Scale = scale }
        body net (inputs (seed + 1))))

[<Tests>]
let tests =
    testList "Networks" [
        testList "values and pipelines" [
            test "a pipeline unrolls from the zero state" {
                let xs = inputs 1
                let net = Rnn.lstm I H |> Rnn.init 42
                let states = net |> Rnn.unroll xs
                Expect.sequenceEqual states.shape [| int64 T + 1L; int64 B; 2L * int64 H |] "[T+1; B; S]"
                close "same as Recurrence.unroll from zeros" 0.0 states (Recurrence.unroll net.Cell net.Theta xs (Rnn.zeroState B net))
                close "outputs are h_1 … h_T" 0.0 (Rnn.outputs xs net) (states.narrow(0L, 1L, int64 T).narrow(2L, 0L, int64 H))
                let s0 = randn 2 [| int64 B; 2L * int64 H |]
                let first = (Rnn.unrollFrom s0 xs net)[0L]
                close "unrollFrom starts at s0" 0.0 first s0
            }
            test "init is deterministic by seed; options set dtype and scale" {
                let cell = Rnn.gru I H
                close "same seed, same θ" 0.0 (Rnn.init 7 cell).Theta (Rnn.init 7 cell).Theta
                Expect.isGreaterThan (Tensors.maxAbs ((Rnn.init 7 cell).Theta - (Rnn.init 8 cell).Theta)) 0.0 "another seed, another θ"
                let scaled = cell |> Rnn.initWith { Rnn.defaults with Seed = 7; Scale = 3.0 }
                close "Scale multiplies the initialisation" exact scaled.Theta ((Rnn.init 7 cell).Theta * 3.0)
                close "Rnn.scale multiplies θ" exact (Rnn.init 7 cell |> Rnn.scale 3.0).Theta scaled.Theta
                let single = cell |> Rnn.initWith { Rnn.defaults with Dtype = torch.float32 }
                Expect.equal single.Theta.dtype torch.float32 "float32 θ"
                Expect.equal single.Dtype torch.float32 "float32 network"
            }
            test "Rnn.network takes θ as given" {
                let cell = Rnn.elman I H
                let theta = randn 3 [| int64 cell.ParameterCount |]
                let net = Rnn.network cell theta
                Expect.isTrue (Object.ReferenceEquals(net.Theta, theta)) "θ kept"
                Expect.equal net.Dtype torch.float64 "dtype from θ"
            }
        ]

        testList "routes to ∂s_t/∂θ" [
            routeProperty "recurrence, closed form and autodiff agree for every cell and weight scale" (fun net xs ->
                let byAutodiff = Rnn.dsdθ ByAutodiff xs net
                Expect.sequenceEqual byAutodiff.shape [| int64 T; int64 B; int64 net.Cell.StateSize; int64 net.Cell.ParameterCount |] "[T; B; S; P]"
                close "closed form vs autodiff" routes (Rnn.dsdθ ByClosedForm xs net) byAutodiff
                close "recurrence vs autodiff" routes (Rnn.dsdθ ByRecurrence xs net) byAutodiff
                close "a truncation longer than T is the closed form" routes (Rnn.dsdθ (ByTruncatedSum T) xs net) byAutodiff)

            routeProperty "the closed-form terms of a_t sum to a_t, and the first is b_t" (fun net xs ->
                let t = 4
                let terms = Rnn.closedFormTerms t xs net
                Expect.sequenceEqual terms.shape [| int64 t; int64 B; int64 net.Cell.StateSize; int64 net.Cell.ParameterCount |] "[t; B; S; P]"
                let a = Rnn.dsdθ ByAutodiff xs net // [T; B; S; P]
                let b = (Rnn.jacobians xs net).Parameters // [T; B; S; P]
                close "Σ_k terms = a_t" routes (terms.sum 0L) a[int64 (t - 1)]
                close "term 0 = b_t" 0.0 terms[0L] b[int64 (t - 1)])

            test "a truncation keeps only the last τ terms" {
                let xs, net = inputs 3, Rnn.elman I H |> Rnn.init 3
                let t, tau = 5, 2
                let expected = (Rnn.closedFormTerms t xs net).narrow(0L, 0L, int64 tau).sum(0L)
                let truncated = Rnn.dsdθ (ByTruncatedSum tau) xs net // [T; B; S; P]
                close "τ = 2" routes truncated[int64 (t - 1)] expected
            }

            test "the hand-derived Jacobians match autodiff's, and so does the route from a given s0" {
                let xs, net = inputs 4, Rnn.multiplicative I H 5 |> Rnn.init 4
                let hand, auto = Rnn.jacobians xs net, Rnn.jacobiansByAutodiff xs net
                close "c_t" routes hand.State auto.State
                close "b_t" routes hand.Parameters auto.Parameters
                let s0 = randn 5 [| int64 B; int64 H |]
                close "from s0" routes (Rnn.dsdθFrom s0 ByClosedForm xs net) (Rnn.dsdθFrom s0 ByAutodiff xs net)
            }

            test "the identity check reports agreement to rounding" {
                let r = Rnn.lstm I H |> Rnn.init 5 |> Rnn.identity (inputs 6)
                Expect.isLessThan r.WorstError routes "every route agrees"
                Expect.isGreaterThan r.Magnitude 0.0 "a nonzero ∂s_t/∂θ"
            }
        ]

        testList "bad arguments" [
            test "θ of the wrong size names theta" {
                throwsArg "theta" (fun () -> Rnn.network (Rnn.elman I H) (randn 1 [| 3L |]))
            }
            test "inputs that are not [T; B; I] name xs" {
                let net = Rnn.elman I H |> Rnn.init 1
                throwsArg "xs" (fun () -> Rnn.unroll (randn 1 [| 4L; 3L |]) net)
                throwsArg "xs" (fun () -> Rnn.unroll (randn 1 [| 4L; 2L; 5L |]) net)
            }
            test "a step outside 1..T names t; a non-positive τ names route" {
                let net = Rnn.elman I H |> Rnn.init 1
                throwsArg "t" (fun () -> Rnn.closedFormTerms (T + 1) (inputs 1) net)
                throwsArg "route" (fun () -> Rnn.dsdθ (ByTruncatedSum 0) (inputs 1) net)
            }
            test "unsupported init options name options" {
                throwsArg "options" (fun () -> Rnn.elman I H |> Rnn.initWith { Rnn.defaults with Dtype = torch.int64 })
            }
        ]
    ]
