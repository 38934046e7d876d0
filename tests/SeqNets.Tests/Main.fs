module SeqNets.Tests.Main

open SeqNets

open Expecto

[<EntryPoint>]
let main argv =
    match argv with
    | [| "--probe-engine" |] ->
        // Used by the engine-loading tests: load libtorch in a fresh process and report.
        try
            SeqNets.Native.ensure ()
            printfn "engine loaded"
            0
        with :? SeqNets.EngineLoadException as e ->
            eprintfn "%s" e.Message
            3
    | [| "--worker-masks" |] ->
        // Used by the signal-shield test: after Native.ensure and a parallel kernel, list every
        // thread that is not the runtime's (the runtime names its threads; libtorch's OpenMP
        // workers keep the main thread's name) with whether it blocks SIGINT.
        SeqNets.Native.ensure ()
        use a = TorchSharp.torch.ones(1L <<< 22)
        a.mul_ a |> ignore
        let pid = System.Environment.ProcessId
        let name (task: string) = System.IO.File.ReadAllText(System.IO.Path.Combine(task, "comm")).Trim()
        let main = name $"/proc/{pid}/task/{pid}"
        printfn "threads %d" (TorchSharp.torch.get_num_threads ())
        for task in System.IO.Directory.GetDirectories $"/proc/{pid}/task" do
            let tid = System.IO.Path.GetFileName task
            if tid <> string pid && name task = main then
                let blk =
                    System.IO.File.ReadAllLines(System.IO.Path.Combine(task, "status"))
                    |> Array.find (fun l -> l.StartsWith "SigBlk:")
                let mask = System.Convert.ToUInt64(blk.Substring(7).Trim(), 16)
                printfn "worker %s sigint-blocked %b" tid (mask &&& 2UL <> 0UL)
        0
    | [| "--train-under-signals"; steps |] ->
        // Used by the signal-shield test: train a float32 LSTM on libtorch's fused kernels (oneDNN's
        // JIT GEMM) while the parent sends SIGINTs; count them; exit 0 if the process survives.
        SeqNets.Native.ensure ()
        let mutable handled = 0
        System.Console.CancelKeyPress.Add(fun e ->
            e.Cancel <- true
            System.Threading.Interlocked.Increment &handled |> ignore)
        let text = String.replicate 200 "h_t = f(x_t, h_(t-1)) and y_t = g(h_t); the state summarises the past.\n"
        let corpus = SeqNets.Corpus.split 0.9 text
        let config = { Kind = SeqNets.Lstm; VocabularySize = corpus.Vocabulary.Size; HiddenSize = 128; Layers = 1 }
        use model = SeqNets.CharModel.create config TorchSharp.torch.float32 1UL
        use trainer = new SeqNets.Trainer(model, corpus.Train, { SeqNets.TrainingConfig.Default with Batch = 32; SequenceLength = 64 })
        printfn "ready"
        stdout.Flush()
        let mutable loss = 0.0
        for _ in 1 .. int steps do loss <- trainer.Step().Loss
        printfn "loss after %s steps: %.3f" steps loss
        printfn "signals handled: %d" handled
        0
    | [| "--replay-fuzz"; target; dir |] ->
        // Used by the fuzzed-input tests: every file of dir through the fuzz target; exit 1 if any
        // breaks the reader's promise.
        SeqNets.Native.ensure ()
        let f = SeqNets.Fuzz.Targets.all |> List.find (fun (n, _) -> n = target) |> snd
        let mutable bad = 0
        for path in System.IO.Directory.GetFiles dir |> Array.sort do
            match (try f (System.IO.File.ReadAllBytes path); None with e -> Some e) with
            | None -> printfn "ok       %s" (System.IO.Path.GetFileName path)
            | Some e ->
                bad <- bad + 1
                printfn "FINDING  %s: %s" (System.IO.Path.GetFileName path) e.Message
        if bad = 0 then 0 else 1
    | _ ->
        SeqNets.Native.ensure ()
        Common.defaultSigintForChildren ()
        Tests.runTestsInAssemblyWithCLIArgs [] argv
