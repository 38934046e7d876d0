/// The attention seq2seq benchmark (bench/seq2seq.sh runs it against bench/peer_seq2seq.py, the same
/// model in PyTorch): the reverse task's data, an embedding of E, a bidirectional LSTM encoder of H per
/// direction, a projection bridge, an LSTM decoder with Luong attention (general score, input
/// feeding), Adam. Measures training steps per second (teacher forcing, full BPTT), greedy decoding
/// and beam search (width k) in source rows per second. Prints one JSON line.
///   --seq2seq [--hidden 64] [--embedding 32] [--batch 64] [--train-steps 20] [--decode-rows 64]
///             [--beam 5] [--threads 2] [--seed 1]
module SeqNets.Bench.Seq2SeqBench

open System
open System.Diagnostics
open TorchSharp
open SeqNets

let private arg (argv: string[]) name (fallback: string) =
    match Array.tryFindIndex ((=) name) argv with
    | Some i when i + 1 < argv.Length -> argv[i + 1]
    | _ -> fallback

let private json (x: float) = x.ToString("0.####", Globalization.CultureInfo.InvariantCulture)

let run (argv: string[]) : int =
    let hidden = int (arg argv "--hidden" "64")
    let embedding = int (arg argv "--embedding" "32")
    let batch = int (arg argv "--batch" "64")
    let trainSteps = int (arg argv "--train-steps" "20")
    let decodeRows = int (arg argv "--decode-rows" "64")
    let width = int (arg argv "--beam" "5")
    let threads = int (arg argv "--threads" "2")
    let seed = uint64 (arg argv "--seed" "1")
    Native.ensure ()
    torch.set_num_threads threads
    let letters = [ for c in 'a' .. 'l' -> string c ]
    let source, target = TokenVocabulary.ofTokens letters, TokenVocabulary.ofTokens letters
    let config =
        { Seq2SeqConfig.Create(source, target) with
            Embedding = embedding; Hidden = hidden; Attention = Some(Luong true, General); MaxLength = 17 }
    use net = new Network(Seq2Seq.spec config, torch.float32, seed)
    let chars (s: string) = TokenVocabulary.characters s
    let makeBatch (k: int) =
        Seq2Seq.batch source target config.MaxLength
            [ for s, t in Seq2SeqTasks.pairs "reverse" (SplitMix(seed * 7919UL + uint64 k)) batch -> chars s, chars t ]
    use trainer =
        new Trainer(net, GeneratedBatches(1_000_000, batch, makeBatch),
                    { TrainingConfig.Default with Strategy = Full; LearningRate = 2e-3; Batch = batch; Seed = seed })
    let path = net.DefaultPath
    for _ in 1 .. 5 do trainer.Step() |> ignore // warm-up
    let sw = Stopwatch.StartNew()
    let mutable loss = 0.0
    for _ in 1 .. trainSteps do loss <- trainer.Step().Loss
    let trainTime = sw.Elapsed.TotalSeconds
    let sources = Seq2SeqTasks.pairs "reverse" (SplitMix(seed + 99UL)) decodeRows |> List.map (fst >> chars)
    let b = Seq2Seq.batch source target config.MaxLength [ for s in sources -> s, [] ]
    let greedy () =
        use _ = torch.NewDisposeScope()
        Heads.predict net path b.Inputs b.Lengths None |> ignore
    let beam () =
        use _ = torch.NewDisposeScope()
        Heads.beam net path b.Inputs b.Lengths { BeamOptions.Default with Width = width; NBest = 1 } |> ignore
    greedy ()
    beam ()
    let timed f =
        let sw = Stopwatch.StartNew()
        f ()
        sw.Elapsed.TotalSeconds
    let greedyTime = List.init 3 (fun _ -> timed greedy) |> List.min
    let beamTime = timed beam
    printfn
        """{"side": "seqnets", "model": "%s", "hidden": %d, "embedding": %d, "batch": %d, "beam": %d, "threads": %d, "path": "%A", "train_steps_per_s": %s, "greedy_rows_per_s": %s, "beam_rows_per_s": %s, "last_loss": %s}"""
        (net.Describe()) hidden embedding batch width threads path
        (json (float trainSteps / trainTime)) (json (float decodeRows / greedyTime)) (json (float decodeRows / beamTime)) (json loss)
    0
