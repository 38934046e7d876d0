/// Checkpoints: exact resumption, atomic writes, and clear errors for unusable files.
module SeqNets.Tests.CheckpointTests

open System
open System.IO
open Expecto
open TorchSharp
open SeqNets
open SeqNets.Tests.Common

let private corpus = Corpus.split 1.0 (String.replicate 30 "a checkpoint holds everything. ")

let private newTrainer seed =
    let model = CharModel.create { Kind = Lstm; VocabularySize = corpus.Vocabulary.Size; HiddenSize = 10; Layers = 2 } torch.float32 seed
    model, new Trainer(model, corpus.Train, { TrainingConfig.Default with Strategy = Randomized 5.0; Path = Some Step; Batch = 3; SequenceLength = 10; Seed = seed })

let private vocabulary = Some corpus.Vocabulary

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
                Checkpoint.save path t1 vocabulary
                let straight = [ for _ in 1 .. 10 -> t1.Step().Loss ]
                let c = Checkpoint.load path
                Expect.equal c.Vocabulary vocabulary "vocabulary"
                Expect.equal c.Step 15 "step"
                use _ = c.Network
                use t2 = Checkpoint.resumeOnText c corpus.Train
                let resumed = [ for _ in 1 .. 10 -> t2.Step().Loss ]
                Expect.sequenceEqual resumed straight "same losses after resuming")
        }

        test "an interrupted save leaves the previous checkpoint intact and no temporary file" {
            withDir (fun dir ->
                let path = Path.Combine(dir, "m.ckpt")
                let m, t = newTrainer 12UL
                use _ = m
                use _ = t
                Checkpoint.save path t vocabulary
                let before = File.ReadAllBytes path
                for _ in 1 .. 3 do t.Step() |> ignore
                let interrupted () =
                    Checkpoint.saveVia (fun s body -> s.Write(body, 0, body.Length / 2); failwith "power cut") path t vocabulary
                Expect.throws interrupted "the save fails midway"
                Expect.sequenceEqual (File.ReadAllBytes path) before "previous checkpoint unchanged"
                Expect.sequenceEqual (Directory.GetFiles dir |> Array.map Path.GetFileName) [| "m.ckpt" |] "no temporary file left"
                use c = (Checkpoint.load path).Network
                Expect.equal c.Spec.Layers.Length 2 "still loads")
        }

        testList "unusable files raise an error naming the file and the problem" [
            let saved (f: string -> unit) =
                withDir (fun dir ->
                    let path = Path.Combine(dir, "m.ckpt")
                    let m, t = newTrainer 13UL
                    use _ = m
                    use _ = t
                    Checkpoint.save path t vocabulary
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
                    expectProblem p "cannot rebuild its network")
            }
            yield test "a header that claims 100,000 layers is refused before anything is built" {
                saved (fun p ->
                    rewriteHeader p (fun json ->
                        let node = Text.Json.Nodes.JsonNode.Parse json
                        let layers = (node["network"]["layers"]).AsArray()
                        let one = layers[0].ToJsonString()
                        layers.Clear()
                        for _ in 1 .. 100_000 do layers.Add(Text.Json.Nodes.JsonNode.Parse one)
                        node.ToJsonString())
                    expectProblem p "100000 layers")
            }
            yield test "a crafted negative position" {
                saved (fun p ->
                    rewriteHeader p (fun json -> Text.RegularExpressions.Regex.Replace(json, "\"position\":\\d+", "\"position\":-3"))
                    expectProblem p "position of -3")
            }
            yield test "a directory given as the checkpoint" {
                withDir (fun dir -> expectProblem dir "is a directory")
            }
        ]

        test "a format-1 checkpoint (the character model before networks) loads, predicts and resumes as it did" {
            let dir = fixturesDir "v1"
            let expected = File.ReadAllLines(Path.Combine(dir, "charmodel_lstm.v1.expected.txt")) |> Array.filter (fun l -> not (l.StartsWith "#"))
            let numbers (line: string) = line.Split ' ' |> Array.map (fun x -> Double.Parse(x, Globalization.CultureInfo.InvariantCulture))
            let losses, logits = numbers expected[0], numbers expected[1]
            let c = Checkpoint.load (Path.Combine(dir, "charmodel_lstm.v1.ckpt"))
            use net = c.Network
            Expect.equal (CharModel.tryConfig net) (Some { Kind = Lstm; VocabularySize = c.Vocabulary.Value.Size; HiddenSize = 6; Layers = 2 }) "the character model it held"
            Expect.equal c.Step 12 "its step"
            let text = Corpus.split 0.9 (String.replicate 30 "a format-1 checkpoint still loads. ")
            Expect.equal c.Vocabulary (Some text.Vocabulary) "its vocabulary"
            do
                use _ = torch.no_grad ()
                let ids = torch.tensor(Vocabulary.encode text.Vocabulary "a format").reshape(-1L, 1L)
                let y, _ = net.Forward(Step, ids, net.ZeroState 1)
                close "logits as format 1 computed them" 1e-12 y (torch.tensor(logits).reshape(y.shape))
            use trainer = Checkpoint.resumeOnText c text.Train
            let next = [| for _ in 1 .. 5 -> trainer.Step().Loss |]
            close "the next five losses of the resumed run" 1e-9 (torch.tensor next) (torch.tensor losses)
        }

        testList "any network, as a file that names what it holds" [
            let spec =
                { Input = Embedding(9, 4)
                  Layers = Layer.stack 2 (Bidirectional Concat) 4 (fun w -> Cells.Gru.create Cells.Lecture w 5)
                  Dropout = 0.0
                  Head = ManyToOne Mean
                  Output = 3
                  Loss = CrossEntropy }
            let ids = torch.tensor([| 1L; 4L; 8L; 0L; 2L; 3L; 5L; 6L; 7L; 2L; 2L; 1L |]).reshape(4L, 3L)
            yield test "a bidirectional many-to-one network saved on its own loads with the same predictions" {
                withDir (fun dir ->
                    let path = Path.Combine(dir, "net.ckpt")
                    use net = new Network(spec, torch.float64, 4UL)
                    Checkpoint.saveNetwork path net None
                    let c = Checkpoint.load path
                    use back = c.Network
                    Expect.isNone c.Training "no training run"
                    Expect.isNone c.Vocabulary "no vocabulary"
                    Expect.equal (back.Describe()) (net.Describe()) "the same network"
                    let lengths = Some [| 4L; 2L; 3L |]
                    let a = Heads.predict net Step ids lengths None
                    let b = Heads.predict back Step ids lengths None
                    Expect.sequenceEqual (b.Values.data<int64>().ToArray()) (a.Values.data<int64>().ToArray()) "same predictions"
                    close "same parameters" 0.0 back.Parameters net.Parameters
                    let header = File.ReadAllText path
                    Expect.stringContains header "gru-lecture 5 bidirectional" "the file names what it holds"
                    Expect.throwsT<ArgumentException> (fun () -> Checkpoint.resume c (GeneratedBatches(1, 3, fun _ -> failwith "unused")) |> ignore) "nothing to resume")
            }
            yield test "a user-defined cell loads once registered, and names the registration when it is not" {
                withDir (fun dir ->
                    let path = Path.Combine(dir, "custom.ckpt")
                    let name = $"leaky-{Guid.NewGuid():N}"
                    let leaky I H =
                        let layout = ParameterLayout [ "W", [ int64 H; int64 I ]; "U", [ int64 H; int64 H ] ]
                        Cell.custom name I H H layout (fun theta x s ->
                            let W, U = layout.View(theta, "W"), layout.View(theta, "U")
                            0.5 * s + 0.5 * (Tensors.linear W x + Tensors.linear U s).tanh ())
                    let spec = { Input = InputLayer.Vectors 3; Layers = [ Layer.recurrent (leaky 3 6) ]; Dropout = 0.0; Head = PerStep; Output = 2; Loss = MeanSquared }
                    use net = new Network(spec, torch.float64, 2UL)
                    Checkpoint.saveNetwork path net None
                    let e = Expect.throwsC (fun () -> Checkpoint.load path |> ignore) id
                    Expect.stringContains e.Message $"CellCatalog.register \"{name}\"" "says how to load it"
                    CellCatalog.register name leaky
                    use back = (Checkpoint.load path).Network
                    let x = torch.randn([| 5L; 2L; 3L |], dtype = torch.float64)
                    let y1, _ = net.Forward(Step, x, net.ZeroState 2)
                    let y2, _ = back.Forward(Step, x, back.ZeroState 2)
                    close "same outputs" 0.0 y2 y1)
            }
        ]

        testList "writing never loses an earlier file and says why it failed" [
            yield test "a save onto a directory, or under a file, is a CheckpointException (an IOException)" {
                withDir (fun dir ->
                    use net = new Network(CharModel.spec { Kind = Lstm; VocabularySize = 3; HiddenSize = 2; Layers = 1 }, torch.float32, 1UL)
                    let onDir = Expect.throwsC (fun () -> Checkpoint.saveNetwork dir net None) id
                    Expect.isTrue (onDir :? CheckpointException) $"a CheckpointException, got {onDir.GetType().Name}"
                    Expect.stringContains onDir.Message "is a directory" "says why"
                    let file = Path.Combine(dir, "plain.txt")
                    File.WriteAllText(file, "x")
                    let under = Expect.throwsC (fun () -> Checkpoint.saveNetwork (Path.Combine(file, "m.ckpt")) net None) id
                    Expect.isTrue (under :? IOException) $"an IOException, got {under.GetType().Name}"
                    Expect.stringContains under.Message "cannot be written" "says why")
            }
            yield test "the temporary file of an interrupted save by a process that is gone is removed by the next save" {
                withDir (fun dir ->
                    use net = new Network(CharModel.spec { Kind = Lstm; VocabularySize = 3; HiddenSize = 2; Layers = 1 }, torch.float32, 1UL)
                    let path = Path.Combine(dir, "m.ckpt")
                    // PIDs are below 2^22 on Linux: this one belongs to no process.
                    let stale = Path.Combine(dir, ".m.ckpt.2147483000.0123456789abcdef.tmp")
                    File.WriteAllText(stale, "half a checkpoint")
                    let foreign = Path.Combine(dir, ".other.ckpt.2147483000.0123456789abcdef.tmp")
                    File.WriteAllText(foreign, "not this file's")
                    Checkpoint.saveNetwork path net None
                    Expect.isFalse (File.Exists stale) "removed"
                    Expect.isTrue (File.Exists foreign) "another file's temporary is left alone")
            }
        ]
    

        testList "a seq2seq model with its two token vocabularies" [
            let sv = TokenVocabulary.ofTokens [ "a"; "b"; "c"; "日本"; "🙂"; "" ]
            let tv = TokenVocabulary.ofTokens [ "x"; "y"; "z" ]
            let cases =
                [ "Luong with input feeding, general score", { Seq2SeqConfig.Create(sv, tv) with Embedding = 4; Hidden = 5; MaxLength = 6 }
                  "Luong without input feeding, dot score, one direction",
                  { Seq2SeqConfig.Create(sv, tv) with Embedding = 4; Hidden = 5; BidirectionalEncoder = false; Attention = Some(Luong false, Dot); MaxLength = 9 }
                  "Bahdanau, additive score, teacher forcing 0.35, reversed source",
                  { Seq2SeqConfig.Create(sv, tv) with
                      Embedding = 3; Hidden = 6; Attention = Some(Bahdanau, Additive 7); TeacherForcing = 0.35; ReverseSource = true; MaxLength = 7 }
                  "plain two-layer GRU seq2seq", { Seq2SeqConfig.Create(sv, tv) with Embedding = 4; Hidden = 5; Layers = 2; Kind = GruPyTorch; Attention = None; MaxLength = 5 }
                  "Luong with input feeding, additive score, Elman cells",
                  { Seq2SeqConfig.Create(sv, tv) with Embedding = 3; Hidden = 4; Kind = ElmanTanh; Attention = Some(Luong true, Additive 3); MaxLength = 8 } ]
            let sources = [ [ "a"; "b"; "c" ]; [ "🙂"; "日本"; ""; "a"; "a" ]; [ "c" ] ]
            let pairs k = [ for i in 0 .. 5 -> [ for j in 0 .. i % 4 -> sv.Tokens[3 + (i + j + k) % 6] ], [ for j in 0 .. i % 3 -> tv.Tokens[3 + (i * j + k) % 3] ] ]
            for name, config in cases do
                yield test $"{name}: trained a little, saved and loaded, it translates the same and finds the same beam hypotheses" {
                    withDir (fun dir ->
                        let path = Path.Combine(dir, "s2s.ckpt")
                        use net = new Network(Seq2Seq.spec config, torch.float32, 3UL)
                        (use trainer = new Trainer(net, GeneratedBatches(100, 6, fun k -> Seq2Seq.batch sv tv config.MaxLength (pairs k)),
                                                   { TrainingConfig.Default with Strategy = Full; Batch = 6; LearningRate = 1e-2 })
                         for _ in 1 .. 5 do trainer.Step() |> ignore)
                        Seq2Seq.save path net sv tv
                        let back, sv', tv' = Seq2Seq.load path
                        use back = back
                        Expect.sequenceEqual sv'.Tokens sv.Tokens "the source vocabulary"
                        Expect.sequenceEqual tv'.Tokens tv.Tokens "the target vocabulary"
                        Expect.equal ((Description.toJson back.Spec).ToJsonString()) ((Description.toJson net.Spec).ToJsonString()) "the same description"
                        match back.Spec.Head, net.Spec.Head with
                        | EncoderDecoder b, EncoderDecoder a ->
                            Expect.equal b.Attention a.Attention "attention style and score"
                            Expect.equal b.TeacherForcing a.TeacherForcing "teacher forcing"
                            Expect.equal b.ReverseSource a.ReverseSource "source reversal"
                            Expect.equal b.MaxLength a.MaxLength "maximum length"
                            Expect.equal b.MaxLength config.MaxLength "maximum length as configured"
                        | _ -> failtest "an encoder–decoder"
                        close "same parameters" 0.0 back.Parameters net.Parameters
                        let before = Seq2Seq.translate net sv tv sources
                        let after = Seq2Seq.translate back sv' tv' sources
                        Expect.equal (List.map fst after) (List.map fst before) "same translations"
                        Expect.equal (List.map snd after) (List.map snd before) "same attention weights"
                        let options = { BeamOptions.Default with Width = 3; NBest = 3; MaxLength = Some 5 }
                        for s in sources do
                            let a = Seq2Seq.beam net sv s options
                            let b = Seq2Seq.beam back sv' s options
                            Expect.equal b.Length a.Length "as many hypotheses"
                            Array.iter2 (fun (x: Hypothesis) (y: Hypothesis) ->
                                Expect.sequenceEqual y.Tokens x.Tokens "same tokens"
                                Expect.equal y.LogProbability x.LogProbability "same log-probability"
                                Expect.equal y.Score x.Score "same score"
                                Expect.equal y.Finished x.Finished "same end"
                                Expect.equal y.Attention x.Attention "same attention") a b)
                }
            yield test "a trainer's run saved with the vocabularies resumes exactly" {
                withDir (fun dir ->
                    let path = Path.Combine(dir, "run.ckpt")
                    let config = snd cases[2]
                    let source () = GeneratedBatches(100, 6, fun k -> Seq2Seq.batch sv tv config.MaxLength (pairs k))
                    let training = { TrainingConfig.Default with Strategy = Full; Batch = 6; LearningRate = 1e-2; Seed = 5UL }
                    use net = new Network(Seq2Seq.spec config, torch.float64, 3UL)
                    use trainer = new Trainer(net, source (), training)
                    for _ in 1 .. 3 do trainer.Step() |> ignore
                    Checkpoint.saveSeq2Seq path trainer sv tv
                    let c = Checkpoint.load path
                    use _ = c.Network
                    Expect.isSome c.Tokens "the vocabularies"
                    Expect.isNone c.Vocabulary "no character vocabulary"
                    use resumed = Checkpoint.resume c (source ())
                    let next = [ for _ in 1 .. 2 -> trainer.Step().Loss ]
                    let again = [ for _ in 1 .. 2 -> resumed.Step().Loss ]
                    Expect.equal again next "the same losses after resuming (teacher forcing 0.35 draws from the saved random state)")
            }
            yield test "vocabularies that do not fit the network are refused before anything is written" {
                withDir (fun dir ->
                    let path = Path.Combine(dir, "bad.ckpt")
                    use net = new Network(Seq2Seq.spec (snd cases[0]), torch.float32, 1UL)
                    let e = Expect.throwsC (fun () -> Seq2Seq.save path net tv sv) id
                    Expect.isTrue (e :? ArgumentException) $"an ArgumentException, got {e.GetType().Name}"
                    Expect.equal (e :?> ArgumentException).ParamName "tokens" "names the argument"
                    Expect.stringContains e.Message "vocabularies have 6 and 9" "says what arrived"
                    use plain = new Network(CharModel.spec { Kind = Lstm; VocabularySize = 9; HiddenSize = 2; Layers = 1 }, torch.float32, 1UL)
                    Expect.throwsT<ArgumentException> (fun () -> Seq2Seq.save path plain sv tv) "not an encoder–decoder"
                    Expect.isEmpty (Directory.GetFiles dir) "no file, not even a temporary one")
            }
            yield test "a token the file format cannot carry is refused, or written so that it reads back the same" {
                withDir (fun dir ->
                    let path = Path.Combine(dir, "odd.ckpt")
                    // A lone surrogate is not Unicode text: JSON cannot hold it as it is.
                    let odd = TokenVocabulary.ofTokens [ "a"; "\uD800"; "b" ]
                    use net = new Network(Seq2Seq.spec { Seq2SeqConfig.Create(odd, tv) with Embedding = 3; Hidden = 4 }, torch.float32, 1UL)
                    match (try Seq2Seq.save path net odd tv; None with e -> Some e) with
                    | Some e ->
                        Expect.isTrue (e :? CheckpointWriteException || e :? ArgumentException) $"a clear error, got {e.GetType().Name}: {e.Message}"
                        Expect.isEmpty (Directory.GetFiles dir) "no file written"
                    | None ->
                        let back, s, _ = Seq2Seq.load path
                        use _ = back
                        Expect.sequenceEqual s.Tokens odd.Tokens "reads back the same tokens")
            }
            yield test "a file whose vocabularies are missing, crafted or do not fit is a CheckpointException naming the problem" {
                withDir (fun dir ->
                    let path = Path.Combine(dir, "s2s.ckpt")
                    use net = new Network(Seq2Seq.spec (snd cases[0]), torch.float32, 1UL)
                    let fresh () = Seq2Seq.save path net sv tv
                    fresh ()
                    rewriteHeader path (fun j -> j.Replace("\"targetTokens\":[\"x\",\"y\",\"z\"]", "\"targetTokens\":[\"x\",\"y\"]"))
                    expectProblem path "mismatched: the network reads 9 source and 6 target token ids, but the vocabularies have 9 and 5"
                    fresh ()
                    rewriteHeader path (fun j -> j.Replace("\"targetTokens\":[\"x\",\"y\",\"z\"]", "\"targetTokens\":[\"x\",\"x\",\"z\"]"))
                    expectProblem path "'targetTokens'"
                    fresh ()
                    rewriteHeader path (fun j -> j.Replace("\"targetTokens\":[\"x\",\"y\",\"z\"]", "\"targetTokens\":[\"x\",7,\"z\"]"))
                    expectProblem path "not a token"
                    fresh ()
                    rewriteHeader path (fun j -> j.Replace(",\"targetTokens\":[\"x\",\"y\",\"z\"]", ""))
                    expectProblem path "one side's token vocabulary without the other"
                    Checkpoint.saveNetwork path net None
                    match Expect.throwsC (fun () -> Seq2Seq.load path |> ignore) id with
                    | :? CheckpointException as e -> Expect.stringContains e.Problem "holds no token vocabularies" "says what is missing"
                    | e -> failtest $"expected CheckpointException, got {e.GetType().Name}")
            }
        ]
    ]
