/// The safe wrapper over TorchSharp's autograd.grad.
module SeqNets.Tests.AutodiffTests

open System
open Expecto
open TorchSharp
open SeqNets

[<Tests>]
let tests =
    testList "Safe autograd" [
        test "an unused input gets a zero gradient instead of aborting the process" {
            let x = torch.randn([| 3L |], dtype = torch.float64, requires_grad = true)
            let y = torch.randn([| 4L |], dtype = torch.float64, requires_grad = true)
            match Autodiff.grad [ (x * x).sum () ] [ x; y ] with
            | [ gx; gy ] ->
                Common.close "∂(x·x)/∂x = 2x" 1e-15 gx (x.detach () * 2.0)
                Expect.sequenceEqual gy.shape y.shape "zero gradient shaped like y"
                Expect.equal (Tensors.maxAbs gy) 0.0 "zero"
            | other -> failtest $"expected two gradients, got {other.Length}"
        }
        test "the graph survives a first call, so a second gradient can be taken" {
            let x = torch.randn([| 3L |], dtype = torch.float64, requires_grad = true)
            let L = (x.pow(3.0.ToScalar())).sum ()
            let first = Autodiff.grad [ L ] [ x ]
            let second = Autodiff.grad [ L ] [ x ]
            Common.close "same gradient twice" 0.0 second.Head first.Head
        }
        test "create_graph keeps the graph and allows a second derivative" {
            let x = torch.randn([| 3L |], dtype = torch.float64, requires_grad = true)
            let L = (x.pow(3.0.ToScalar())).sum ()
            let g = Autodiff.gradWith false true [ L ] [ x ] None |> List.head // 3x²
            let h = Autodiff.gradWith false false [ g.sum () ] [ x ] None |> List.head // 6x
            Common.close "∂²(Σx³)/∂x² = 6x" 1e-14 h (x.detach () * 6.0)
        }
        test "an output that needs no grad is an ArgumentException" {
            let x = torch.randn([| 3L |], dtype = torch.float64, requires_grad = true)
            let c = torch.ones([| 2L |], dtype = torch.float64)
            Expect.throwsT<ArgumentException> (fun () -> Autodiff.grad [ c.sum () ] [ x ] |> ignore) "rejected"
        }
        test "an input that needs no grad is an ArgumentException" {
            let x = torch.randn([| 3L |], dtype = torch.float64)
            let y = torch.randn([| 3L |], dtype = torch.float64, requires_grad = true)
            Expect.throwsT<ArgumentException> (fun () -> Autodiff.grad [ (x * y).sum () ] [ x ] |> ignore) "rejected"
        }
    ]
