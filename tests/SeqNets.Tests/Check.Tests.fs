/// Bad input gets an ArgumentException naming the argument, the expectation and what arrived.
module SeqNets.Tests.CheckTests

open System
open Expecto
open TorchSharp
open SeqNets

let private rejects (argument: string) (fragments: string list) (f: unit -> 'a) =
    let e = Expect.throwsC (fun () -> f () |> ignore) id
    match e with
    | :? ArgumentException as a ->
        Expect.equal a.ParamName argument $"names the argument; message: {a.Message}"
        for s in fragments do Expect.stringContains a.Message s "says what was expected and what arrived"
    | other -> failtest $"expected ArgumentException, got {other.GetType().Name}: {other.Message}"

[<Tests>]
let tests =
    let cell = Cells.Lstm.create 3 5 // I = 3, H = 5, S = 10
    let g = new torch.Generator(7UL)
    let theta = Cell.initParameters cell torch.float64 g
    let xs = torch.randn([| 4L; 2L; 3L |], dtype = torch.float64)
    let s0 = torch.zeros([| 2L; 10L |], dtype = torch.float64)
    testList "Bad input" [
        test "input width" {
            rejects "xs" [ "I = 3"; "[4; 2; 7]" ] (fun () -> Recurrence.unroll cell theta (torch.randn([| 4L; 2L; 7L |], dtype = torch.float64)) s0)
        }
        test "state width" {
            rejects "initialState" [ "S = 10"; "[2; 5]" ] (fun () -> Recurrence.unroll cell theta xs (torch.zeros([| 2L; 5L |], dtype = torch.float64)))
        }
        test "state batch" {
            rejects "initialState" [ "B = 2"; "[3; 10]" ] (fun () -> Recurrence.unroll cell theta xs (torch.zeros([| 3L; 10L |], dtype = torch.float64)))
        }
        test "T = 0" {
            rejects "xs" [ "T = 0"; "[0; 2; 3]" ] (fun () -> Recurrence.unroll cell theta (torch.zeros([| 0L; 2L; 3L |], dtype = torch.float64)) s0)
        }
        test "rank" {
            rejects "xs" [ "[T; B; I]"; "[2; 3]" ] (fun () -> Recurrence.unroll cell theta (torch.zeros([| 2L; 3L |], dtype = torch.float64)) s0)
        }
        test "parameter count" {
            rejects "theta" [ $"P = {cell.ParameterCount}"; "[12]" ] (fun () -> Recurrence.unroll cell (torch.zeros([| 12L |], dtype = torch.float64)) xs s0)
        }
        test "integer parameters" {
            rejects "theta" [ "float32 or float64"; "Int64" ] (fun () -> Recurrence.unroll cell (torch.zeros([| int64 cell.ParameterCount |], dtype = torch.int64)) xs s0)
        }
        test "mixed dtypes" {
            rejects "xs" [ "Float64"; "Float32" ] (fun () -> Recurrence.unroll cell theta (xs.to_type torch.float32) s0)
        }
        test "NaN in weights" {
            let bad = theta.clone ()
            bad[3L] <- torch.tensor(nan, dtype = torch.float64)
            rejects "theta" [ "finite"; "1 NaN" ] (fun () -> Recurrence.unroll cell bad xs s0)
        }
        test "Inf in inputs" {
            let bad = xs.clone ()
            bad[1L, 1L, 2L] <- torch.tensor(infinity, dtype = torch.float64)
            rejects "xs" [ "finite"; "1 infinite" ] (fun () -> Recurrence.unroll cell theta bad s0)
        }
        test "step with a mismatched batch" {
            rejects "state" [ "B (the batch of x) = 2"; "[4; 10]" ] (fun () -> Cell.step cell theta (torch.zeros([| 2L; 3L |], dtype = torch.float64)) (torch.zeros([| 4L; 10L |], dtype = torch.float64)))
        }
        test "non-positive sizes" {
            rejects "hiddenSize" [ "positive"; "0" ] (fun () -> Cells.Gru.create Cells.PyTorch 3 0)
        }
        test "cross-entropy targets out of range" {
            let out = OutputLayer.create 5 4
            let wo = OutputLayer.initParameters out torch.float64 g
            let ys = OutputLayer.apply out wo (torch.randn([| 4L; 2L; 5L |], dtype = torch.float64))
            rejects "targets" [ "[0, 3]"; "[0, 9]" ] (fun () -> Loss.sequence CrossEntropy ys (torch.tensor([| 0L; 9L; 1L; 2L; 3L; 0L; 1L; 2L |]).reshape(4L, 2L)))
        }
        test "an unknown parameter block" {
            rejects "name" [ "weight_ih"; "'W_q'" ] (fun () -> cell.Layout.View(theta, "W_q"))
        }
        // torch.matmul on mismatched shapes ends the process in TorchSharp 0.107; SeqNets' products
        // go through matmulChecked. If its check let through a pair libtorch refuses, this test
        // process would abort: the property cannot pass by accident.
        test "a product of mismatched shapes" {
            let a, b = torch.zeros([| 3L; 4L |]), torch.zeros([| 5L; 6L |])
            rejects "b" [ "[3; 4]"; "[5; 6]" ] (fun () -> a.matmulChecked b)
            rejects "b" [ "do not broadcast" ] (fun () -> torch.zeros([| 2L; 3L; 4L |]).matmulChecked(torch.zeros([| 3L; 4L; 5L |])))
            rejects "b" [ "Float32"; "Float64" ] (fun () -> a.matmulChecked(torch.zeros([| 4L; 2L |], dtype = torch.float64)))
        }
        testPropertyWithConfig { FsCheckConfig.defaultConfig with maxTest = 300 } "matmulChecked accepts what torch.matmul accepts, with the same result" <| fun (seed: int) ->
            let rng = Random seed
            let dims () = [| for _ in 1 .. rng.Next(1, 5) -> int64 (rng.Next(1, 4)) |]
            let a = torch.randn(dims (), dtype = torch.float64)
            // Half the time a shape built to fit (shared inner size, batch sizes of 1 broadcast).
            let b =
                if rng.Next 2 = 0 then torch.randn(dims (), dtype = torch.float64)
                else
                    let sa = a.shape
                    let inner = sa[sa.Length - 1]
                    let batch = [| for d in (if sa.Length > 2 then sa[.. sa.Length - 3] else [||]) -> if rng.Next 3 = 0 then 1L else d |]
                    torch.randn(Array.concat [ batch; [| inner |]; (if rng.Next 4 = 0 then [||] else [| int64 (rng.Next(1, 4)) |]) ], dtype = torch.float64)
            match matmulProblem a b with
            | Some _ -> rejects "b" [ "matmul" ] (fun () -> a.matmulChecked b)
            | None ->
                let r = a.matmulChecked b
                Expect.isTrue (r.allclose(torch.matmul(a, b), 0.0, 0.0)) "the same product"
    ]
