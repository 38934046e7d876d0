/// The SeqNets side of the character-model benchmark (bench/peer_charlm.py is the PyTorch side):
/// same data, batching, model, optimizer and measurements. Prints one JSON line.
module SeqNets.Bench.Program

open System
open System.Diagnostics
open System.IO
open TorchSharp
open SeqNets

let private arg (argv: string[]) name fallback =
    match Array.tryFindIndex ((=) name) argv with
    | Some i when i + 1 < argv.Length -> argv[i + 1]
    | _ -> fallback

[<EntryPoint>]
let main argv =
    Native.ensure ()
    let text = File.ReadAllText(arg argv "--text" "")
    let kind = CellKind.parse (arg argv "--cell" "lstm")
    let hidden = int (arg argv "--hidden" "256")
    let layers = int (arg argv "--layers" "1")
    let batch = int (arg argv "--batch" "32")
    let seq = int (arg argv "--seq" "64")
    let timedSteps = int (arg argv "--timed-steps" "50")
    let lossSteps = int (arg argv "--loss-steps" "1500")
    let sampleChars = int (arg argv "--sample-chars" "2000")
    let threads = int (arg argv "--threads" "2")
    let seed = uint64 (arg argv "--seed" "1")
    torch.set_num_threads threads
    let corpus = Corpus.split 0.9 text
    let config = { Kind = kind; VocabularySize = corpus.Vocabulary.Size; HiddenSize = hidden; Layers = layers }
    let training path = { TrainingConfig.Default with Batch = batch; SequenceLength = seq; Path = Some path; Seed = seed }

    /// Training characters per second on a path, after a warm-up.
    let trainRate path =
        use model = new CharModel(config, torch.float32, seed)
        use trainer = new Trainer(model, corpus.Train, training path)
        for _ in 1 .. 5 do trainer.Step() |> ignore
        let sw = Stopwatch.StartNew()
        for _ in 1 .. timedSteps do trainer.Step() |> ignore
        float (timedSteps * batch * seq) / sw.Elapsed.TotalSeconds

    let fusedRate = if CellKind.hasFusedPath kind then trainRate Fused else nan
    let stepRate = trainRate Step

    let sampleRate =
        use model = new CharModel(config, torch.float32, seed)
        // A warm-up of twice the length: the JIT reaches its optimised code after a few thousand
        // characters (the peer gets the same warm-up).
        for _ in 1 .. 2 do Sampling.generate model corpus.Vocabulary "" sampleChars SamplingOptions.Default |> ignore
        let sw = Stopwatch.StartNew()
        Sampling.generate model corpus.Vocabulary "" sampleChars SamplingOptions.Default |> ignore
        float sampleChars / sw.Elapsed.TotalSeconds

    let valLoss =
        if lossSteps <= 0 then nan
        else
            use model = new CharModel(config, torch.float32, seed)
            use trainer = new Trainer(model, corpus.Train, training model.DefaultPath)
            for _ in 1 .. lossSteps do trainer.Step() |> ignore
            Training.evaluate model model.DefaultPath corpus.Validation batch seq 20

    let json (x: float) = if Double.IsNaN x then "null" else x.ToString("0.####", Globalization.CultureInfo.InvariantCulture)
    printfn """{"system": "seqnets", "threads": %d, "cell": "%s", "hidden": %d, "layers": %d, "train_chars_per_s": %s, "step_train_chars_per_s": %s, "sample_chars_per_s": %s, "val_loss": %s}"""
        (torch.get_num_threads ()) (string kind) hidden layers (json (round fusedRate)) (json (round stepRate)) (json (round sampleRate)) (json valLoss)
    0
