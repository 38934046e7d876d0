/// Networks of layers from the F# face: specs that chain widths, pipelines, tasks.
module SeqNets.FSharp.Tests.NetTests

open Expecto
open TorchSharp
open SeqNets
open SeqNets.FSharp

[<Tests>]
let tests =
    testList "Networks of layers" [
        test "Net.spec gives each layer the width of the one below" {
            let spec = Net.spec (Embedding(10, 6)) [ Net.bidirectional (Net.lstm 7); Net.gru 5; Net.cell (fun w -> Cells.Elman.create Cells.Relu w 4) ] (ManyToOne Mean) 3
            Expect.equal [ for l in spec.Layers -> l.Cell.InputSize ] [ 6; 14; 5 ] "input widths"
            use net = Net.create 1 spec
            Expect.stringContains (net.Describe ()) "lstm 7 bidirectional → gru-pytorch 5 → elman-relu 4" "described"
        }
        test "a pipeline trains a per-step network on generated batches and it learns the copy of its input" {
            let make k =
                let g = new torch.Generator(uint64 k)
                let ids = torch.randint(4L, [| 8L; 16L |], generator = g)
                { Inputs = ids; Lengths = None; Targets = ids; TargetLengths = None }
            let net =
                Net.spec (OneHot 4) [ Net.gru 12 ] PerStep 4
                |> Net.create 2
                |> Net.fit 150 { TrainingConfig.Default with Strategy = Full; Batch = 16; LearningRate = 2e-2 } (Net.batches make)
            use _ = net
            let m = net |> Net.evaluate (make 999)
            Expect.isGreaterThan m.Accuracy 0.95 $"copies its input (accuracy {m.Accuracy:F3})"
        }
        test "Net.task runs a generated task and reports its rows and claim" {
            let r = "depth" |> Net.task 30 1
            Expect.equal r.Task "depth" "the task"
            Expect.isNonEmpty r.Rows "rows"
            Expect.isTrue (r.Rows |> List.exists (fun row -> row.Model.StartsWith "a counter" && row.Value = 1.0)) "the counter is exact"
        }
    ]
