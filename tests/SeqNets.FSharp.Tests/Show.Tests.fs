/// One-line tensor summaries and the printed form of networks.
module SeqNets.FSharp.Tests.ShowTests

open Expecto
open TorchSharp
open SeqNets.FSharp

[<Tests>]
let tests =
    testList "Printing" [
        test "a small tensor shows its shape, dtype and every value" {
            let t = torch.tensor ([| 1.5; -2.0; 0.25 |], dtype = torch.float64)
            Expect.equal (Show.tensor t) "[3] float64 = [1.5, -2, 0.25]" "summary"
        }
        test "a larger tensor shows its first values, its size and its range" {
            let t = torch.arange(12L, dtype = torch.float32).reshape(3L, 4L) - 4.0
            Expect.equal (Show.tensor t) "[3; 4] float32 = [-4, -3, -2, -1, 0, 1, …] (12 values, min -4, max 7)" "summary"
            Expect.equal (Show.tensorWith { Show.defaults with Values = 2; Format = "F1" } t)
                "[3; 4] float32 = [-4.0, -3.0, …] (12 values, min -4.0, max 7.0)" "two values, one decimal"
        }
        test "empty tensors, scalars, negative zero and grad requirements read plainly" {
            Expect.equal (Show.tensor (torch.zeros([| 0L; 3L |], dtype = torch.float64))) "[0; 3] float64 = [] (empty)" "empty"
            Expect.equal (Show.tensor (torch.tensor (-0.0, dtype = torch.float64))) "[] float64 = 0" "scalar −0"
            Expect.equal (Show.tensor (torch.ones(2L, dtype = torch.float64).requires_grad_ true)) "[2] float64 = [1, 1], requires grad" "grad"
        }
        test "a negative number of values names opts" {
            Common.throwsArg "opts" (fun () -> Show.tensorWith { Show.defaults with Values = -1 } (torch.ones 2L))
        }
        test "a network prints as its cell, dtype and parameter range, in fsi too" {
            let net = Rnn.lstm 3 5 |> Rnn.init 42
            let text = string net
            Expect.stringStarts text "lstm (I = 3, H = 5, S = 10, P = 200), float64, θ in [" "ToString"
            Expect.equal (sprintf "%A" net) text "StructuredFormatDisplay (what fsi shows)"
        }
    ]
