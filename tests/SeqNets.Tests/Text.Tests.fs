/// Vocabulary, split and batches.
module SeqNets.Tests.TextTests

open System
open Expecto
open TorchSharp
open SeqNets

[<Tests>]
let tests =
    testList "Text" [
        test "the vocabulary is the sorted distinct characters, whatever their order in the text" {
            let v1, v2 = Vocabulary.ofText "hello", Vocabulary.ofText "olleh"
            Expect.sequenceEqual v1.Characters [ 'e'; 'h'; 'l'; 'o' ] "sorted"
            Expect.equal v1 v2 "same vocabulary"
            Expect.equal (Vocabulary.decode v1 (Vocabulary.encode v1 "hello")) "hello" "round trip"
        }
        test "an unknown character is an ArgumentException naming it and its position" {
            let v = Vocabulary.ofText "hello"
            let e = Expect.throwsC (fun () -> Vocabulary.encode v "help" |> ignore) id
            Expect.stringContains e.Message "'p'" "names the character"
            Expect.stringContains e.Message "position 3" "names the position"
        }
        test "the split is contiguous, 90/10 by default" {
            let letters = "abcdefghij"
            let text = String.init 1000 (fun i -> string letters.[i % 10])
            let c = Corpus.split 0.9 text
            Expect.equal c.Train.Length 900 "90%"
            Expect.equal c.Validation.Length 100 "10%"
            Expect.equal (Vocabulary.decode c.Vocabulary (Array.append c.Train c.Validation)) text "contiguous, nothing lost"
        }
        test "batches read B parallel streams, T steps at a time, targets shifted by one" {
            let ids = Array.init 101 int64 // streams of (101 − 1) / 4 = 25
            let b = Batches(ids, 4, 5) // B = 4, T = 5
            Expect.equal b.Count 5 "25 / 5 batches"
            let x0, y0 = b.Get 0
            let x1, _ = b.Get 1
            Expect.sequenceEqual x0.shape [| 5L; 4L |] "[T; B]"
            for row in 0L .. 3L do
                for t in 0L .. 4L do
                    Expect.equal (x0[t, row].item<int64> ()) (row * 25L + t) "stream row starts at row·L"
                    Expect.equal (y0[t, row].item<int64> ()) (row * 25L + t + 1L) "target is the next id"
                Expect.equal (x1[0L, row].item<int64> ()) (x0[4L, row].item<int64> () + 1L) "the next batch continues the stream"
        }
        test "too little text for one batch is an ArgumentException" {
            Expect.throwsT<ArgumentException> (fun () -> Batches(Array.init 10 int64, 4, 5) |> ignore) "needs B·T + 1"
        }
    ]
