/// Checkpoints: exact resumption, atomic writes, and clear errors for unusable files.
module SeqNets.Tests.CheckpointTests

open System
open System.IO
open Expecto
open TorchSharp
open SeqNets

let private corpus = Corpus.split 1.0 (String.replicate 30 "a checkpoint holds everything. ")

let private newTrainer seed =
    let model = new CharModel({ Kind = Lstm; VocabularySize = corpus.Vocabulary.Size; HiddenSize = 10; Layers = 2 }, torch.float32, seed)
    model, new Trainer(model, corpus.Train, { TrainingConfig.Default with Strategy = Randomized 5.0; Path = Some Step; Batch = 3; SequenceLength = 10; Seed = seed })

let private withDir (f: string -> unit) =
    let d = Directory.CreateTempSubdirectory "seqnets-ckpt-"
    try f d.FullName finally d.Delete true

let private expectProblem (path: string) (fragment: string) =
    let e = Expect.throwsC (fun () -> Checkpoint.load path |> ignore) id
    match e with
    | :? CheckpointException as c ->
        Expect.equal c.Path path "names the file"
        Expect.stringContains c.Message path "the message names the file"
        Expect.stringContains c.Problem fragment "names the problem"
    | other -> failtest $"expected CheckpointException, got {other.GetType().Name}: {other.Message}"

/// Rewrites a valid file's JSON header through f, with a fresh checksum.
let private rewriteHeader (path: string) (f: string -> string) =
    let bytes = File.ReadAllBytes path
    let body = bytes[20 .. bytes.Length - 33]
    let jsonLength = BitConverter.ToInt32(body, 0)
    let json = Text.Encoding.UTF8.GetString(body, 4, jsonLength)
    let json' = Text.Encoding.UTF8.GetBytes(f json)
    let body' = Array.concat [ BitConverter.GetBytes json'.Length; json'; body[4 + jsonLength ..] ]
    let head = Array.concat [ bytes[.. 11]; BitConverter.GetBytes(int64 body'.Length) ]
    File.WriteAllBytes(path, Array.concat [ head; body'; Security.Cryptography.SHA256.HashData body' ])

[<Tests>]
let tests =
    testList "Checkpoints" [
        test "a resumed run continues exactly like an uninterrupted one" {
            withDir (fun dir ->
                let path = Path.Combine(dir, "m.ckpt")
                let m1, t1 = newTrainer 11UL
                use _ = m1
                use _ = t1
                for _ in 1 .. 15 do t1.Step() |> ignore
                Checkpoint.save path t1 corpus.Vocabulary
                let straight = [ for _ in 1 .. 10 -> t1.Step().Loss ]
                let c = Checkpoint.load path
                Expect.equal c.Vocabulary corpus.Vocabulary "vocabulary"
                Expect.equal c.Step 15 "step"
                use _ = c.Model
                use t2 = Checkpoint.resume c corpus.Train
                let resumed = [ for _ in 1 .. 10 -> t2.Step().Loss ]
                Expect.sequenceEqual resumed straight "same losses after resuming")
        }

        test "an interrupted save leaves the previous checkpoint intact and no temporary file" {
            withDir (fun dir ->
                let path = Path.Combine(dir, "m.ckpt")
                let m, t = newTrainer 12UL
                use _ = m
                use _ = t
                Checkpoint.save path t corpus.Vocabulary
                let before = File.ReadAllBytes path
                for _ in 1 .. 3 do t.Step() |> ignore
                let interrupted () =
                    Checkpoint.saveVia (fun s body -> s.Write(body, 0, body.Length / 2); failwith "power cut") path t corpus.Vocabulary
                Expect.throws interrupted "the save fails midway"
                Expect.sequenceEqual (File.ReadAllBytes path) before "previous checkpoint unchanged"
                Expect.sequenceEqual (Directory.GetFiles dir |> Array.map Path.GetFileName) [| "m.ckpt" |] "no temporary file left"
                use c = (Checkpoint.load path).Model
                Expect.equal c.Config.Layers 2 "still loads")
        }

        testList "unusable files raise an error naming the file and the problem" [
            let saved (f: string -> unit) =
                withDir (fun dir ->
                    let path = Path.Combine(dir, "m.ckpt")
                    let m, t = newTrainer 13UL
                    use _ = m
                    use _ = t
                    Checkpoint.save path t corpus.Vocabulary
                    f path)
            yield test "missing" { withDir (fun dir -> expectProblem (Path.Combine(dir, "none.ckpt")) "no such file") }
            yield test "not a checkpoint" {
                withDir (fun dir ->
                    let p = Path.Combine(dir, "x.ckpt")
                    File.WriteAllText(p, "hello, this is a text file and not a checkpoint")
                    expectProblem p "not a SeqNets checkpoint")
            }
            yield test "truncated" {
                saved (fun p ->
                    let b = File.ReadAllBytes p
                    File.WriteAllBytes(p, b[.. b.Length / 2])
                    expectProblem p "truncated")
            }
            yield test "corrupt" {
                saved (fun p ->
                    let b = File.ReadAllBytes p
                    b[b.Length / 2] <- b[b.Length / 2] ^^^ 0x40uy
                    File.WriteAllBytes(p, b)
                    expectProblem p "checksum")
            }
            yield test "a newer format" {
                saved (fun p ->
                    let b = File.ReadAllBytes p
                    BitConverter.GetBytes(Checkpoint.FormatVersion + 1).CopyTo(b, 8)
                    File.WriteAllBytes(p, b)
                    expectProblem p $"format {Checkpoint.FormatVersion + 1}")
            }
            yield test "mismatched contents" {
                saved (fun p ->
                    rewriteHeader p (fun json -> json.Replace("\"hiddenSize\":10", "\"hiddenSize\":12"))
                    expectProblem p "mismatched")
            }
        ]
    ]
