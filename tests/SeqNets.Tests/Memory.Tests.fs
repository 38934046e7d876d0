/// Checked sizes and memory estimates: overflow is an error, not a wrong number; a model too large
/// for the machine is refused before anything is allocated.
module SeqNets.Tests.MemoryTests

open System
open Expecto
open TorchSharp
open SeqNets

[<Tests>]
let tests =
    testList "Memory" [
        test "sizes multiply and add in 64 bits, and overflow is an ArgumentException naming what" {
            Expect.equal (Memory.multiply "x" 3_000_000_000L 4L) 12_000_000_000L "past 2³¹"
            let e = Expect.throwsC (fun () -> Memory.multiply "the layout" Int64.MaxValue 2L |> ignore) id
            Expect.stringContains e.Message "the layout" "names what overflowed"
            Expect.throwsT<ArgumentException> (fun () -> Memory.add "x" Int64.MaxValue 1L |> ignore) "sum"
            Expect.throwsT<ArgumentException> (fun () -> Memory.multiply "x" -1L 2L |> ignore) "negative"
        }
        test "a parameter layout past 2³¹ scalars counts right; one past 2⁶³ is refused when made" {
            let cell = Cells.Lstm.create 3 30_000 // 4H (I + H + 2) = 3,600,600,000 > 2³¹
            Expect.equal cell.ParameterCount (4L * 30_000L * (3L + 30_000L + 2L)) "P in 64 bits"
            Expect.throwsT<ArgumentException> (fun () -> ParameterLayout [ "W", [ 1L <<< 40; 1L <<< 40 ] ] |> ignore) "2⁸⁰ scalars"
            Expect.throwsT<ArgumentException> (fun () -> ParameterLayout [ "W", [ -1L; 3L ] ] |> ignore) "a negative size"
        }
        test "what the machine has is read, and an estimate above it is an InsufficientMemoryException naming both" {
            Expect.isSome (Memory.available ()) "MemAvailable or the runtime's figure"
            let e = Expect.throwsC (fun () -> Memory.checkAgainst (Some(1L <<< 30)) "a test model" (3L <<< 30)) id
            Expect.isTrue (e :? InsufficientMemoryException) $"InsufficientMemoryException, got {e.GetType().Name}"
            Expect.stringContains e.Message "a test model" "names what"
            Expect.stringContains e.Message "3.0 GiB" "the need"
            Expect.stringContains e.Message "1.0 GiB" "what there is"
            Memory.checkAgainst (Some(1L <<< 30)) "small" 1024L
            Memory.checkAgainst None "unknown" Int64.MaxValue
        }
        test "a character model with a 10⁶-unit hidden layer is refused before allocation" {
            let e = Expect.throwsC (fun () -> CharModel.create { Kind = Lstm; VocabularySize = 80; HiddenSize = 1_000_000; Layers = 1 } torch.float32 1UL |> ignore) id
            Expect.isTrue (e :? InsufficientMemoryException) $"InsufficientMemoryException, got {e.GetType().Name}: {e.Message}"
            Expect.stringContains e.Message "parameters" "names the model"
            Expect.stringContains e.Message "TiB" "and its need"
        }
        test "token ids too large for the machine are refused before allocation" {
            Expect.throwsT<InsufficientMemoryException> (fun () -> TokenIds.Allocate(300, 1L <<< 50) |> ignore) "2⁵⁰ ids"
        }
    ]
