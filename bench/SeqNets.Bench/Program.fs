/// The SeqNets side of the character-model benchmark (bench/peer_charlm.py is the PyTorch side):
/// same data, batching, model, optimizer and measurements. Prints one JSON line.
///
///   --paths fused,step,derived   the execution paths to time (default: every one the cell has)
///   --repeats N                  runs per path, alternated in this process (fused, step, derived,
///                                fused, …); the JSON holds the median and every run
///   --profile                    instead: where a training step's time goes, per path (one JSON line each)
///   --memory                     instead: the peak resident memory of training on the one path given
///   --loss-path fused|step|derived  the path of the validation-loss run (default: the model's)
module SeqNets.Bench.Program

open System
open System.Diagnostics
open System.IO
open System.Threading
open TorchSharp
open SeqNets

let private arg (argv: string[]) name fallback =
    match Array.tryFindIndex ((=) name) argv with
    | Some i when i + 1 < argv.Length -> argv[i + 1]
    | _ -> fallback

let private flag (argv: string[]) name = Array.contains name argv

let private json (x: float) = if Double.IsNaN x then "null" else x.ToString("0.####", Globalization.CultureInfo.InvariantCulture)

let private median (xs: float list) =
    match List.sort xs with
    | [] -> nan
    | s -> let n = s.Length in if n % 2 = 1 then s[n / 2] else (s[n / 2 - 1] + s[n / 2]) / 2.0

let private pathName path = match path with Fused -> "fused" | Step -> "step" | Derived -> "derived"

/// The JSON field of a path's training rate (fused keeps the historical name).
let private rateField path = match path with Fused -> "train_chars_per_s" | Step -> "step_train_chars_per_s" | Derived -> "derived_train_chars_per_s"

/// /proc/self/status fields in MiB (VmRSS, VmHWM).
let private statusMiB (field: string) =
    File.ReadAllLines "/proc/self/status"
    |> Array.tryFind (fun l -> l.StartsWith(field + ":"))
    |> Option.map (fun l -> float (l.Split([| ' '; '\t' |], StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0)
    |> Option.defaultValue nan

/// glibc's struct mallinfo2: ten size_t counters.
[<Struct; System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)>]
type private MallInfo2 =
    val Arena: unativeint
    val Ordblks: unativeint
    val Smblks: unativeint
    val Hblks: unativeint
    val Hblkhd: unativeint
    val Usmblks: unativeint
    val Fsmblks: unativeint
    val Uordblks: unativeint
    val Fordblks: unativeint
    val Keepcost: unativeint

[<System.Runtime.InteropServices.DllImport("libc")>]
extern MallInfo2 private mallinfo2()

/// Bytes malloc has handed out and not had back (arenas and mmapped blocks).
let private heapInUse () =
    let m = mallinfo2 ()
    int64 m.Uordblks + int64 m.Hblkhd

/// sgemm 1024³ float32 in GFLOP/s, in this process (the peer prints the same check).
let private sgemmRate () =
    use _ = torch.no_grad ()
    use a = torch.randn(1024L, 1024L)
    use b = torch.randn(1024L, 1024L)
    (use c = torch.mm(a, b) in ())
    let sw = Stopwatch.StartNew()
    for _ in 1 .. 10 do (use c = torch.mm(a, b) in ())
    2.0 * 1024.0 ** 3.0 * 10.0 / sw.Elapsed.TotalSeconds / 1e9

/// Floating-point operations of one training step's matrix products (forward and backward),
/// counted from the shapes: recurrent GEMMs, input projections of layers ≥ 2 (layer 1 reads a
/// one-hot table), the output layer.
let private stepFlops (kind: CellKind) (V: int) (H: int) (L: int) (B: int) (T: int) =
    let TB, H, V = float (T * B), float H, float V
    let recurrent, projection =
        match kind with
        | ElmanTanh | ElmanRelu -> H * H, H * H
        | GruPyTorch | GruLecture -> 3.0 * H * H, 3.0 * H * H
        | Lstm -> 4.0 * H * H, 4.0 * H * H
        | MultiplicativeRnn f -> 2.0 * float f * H, (H + float f) * H
    // Each product once forward and twice backward (the input's and the weight's gradient).
    3.0 * 2.0 * TB * (float L * recurrent + float (L - 1) * projection + H * V)

[<EntryPoint>]
let main argv =
    Native.ensure ()
    // --mode jacobians | sweep | memory | verify-scale: the symbolic derivations' benchmarks.
    if Array.contains "--mode" argv then Symbolic.run argv else
    // --seq2seq: the attention seq2seq model's training and decoding (bench/seq2seq.sh).
    if Array.contains "--seq2seq" argv then Seq2SeqBench.run argv else
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
    let repeats = int (arg argv "--repeats" "1")
    let warmup = int (arg argv "--warmup" "5")
    let parsePath (p: string) =
        match p.Trim() with
        | "fused" -> Fused
        | "step" -> Step
        | "derived" -> Derived
        | other -> failwith $"expected a path fused, step or derived, but got '{other}'"
    let lossPath = match arg argv "--loss-path" "" with "" -> None | p -> Some(parsePath p)
    let paths =
        match arg argv "--paths" "" with
        | "" -> [ if CellKind.hasFusedPath kind then Fused
                  Step
                  Derived ]
        | s ->
            [ for p in s.Split(',', StringSplitOptions.RemoveEmptyEntries) -> parsePath p ]
    torch.set_num_threads threads
    let corpus = Corpus.split 0.9 text
    let config = { Kind = kind; VocabularySize = corpus.Vocabulary.Size; HiddenSize = hidden; Layers = layers }
    let training path = { TrainingConfig.Default with Batch = batch; SequenceLength = seq; Path = Some path; Seed = seed }
    let header = $""""system": "seqnets", "threads": {torch.get_num_threads ()}, "cell": "{kind}", "hidden": {hidden}, "layers": {layers}"""

    /// Training characters per second on a path, after a warm-up.
    let trainRate path =
        use model = CharModel.create config torch.float32 seed
        use trainer = new Trainer(model, corpus.Train, training path)
        for _ in 1 .. warmup do trainer.Step() |> ignore
        let sw = Stopwatch.StartNew()
        for _ in 1 .. timedSteps do trainer.Step() |> ignore
        float (timedSteps * batch * seq) / sw.Elapsed.TotalSeconds

    if flag argv "--memory" then
        // One path per process. The heap in use (malloc's count, which holds libtorch's CPU tensors)
        // is read before a step's forward pass, after it (what the graph holds for the backward
        // pass) and after the backward pass; the process's peak resident size is read at the end.
        let path = List.exactlyOne paths
        use model = CharModel.create config torch.float32 seed
        let batches = Batches(corpus.Train, batch, seq)
        use optimizer = torch.optim.Adam([ model.Parameters ], 2e-3)
        let mutable state = model.ZeroState batch
        let held, transient = ResizeArray(), ResizeArray()
        let step (k: int) =
            use scope = torch.NewDisposeScope()
            let inputs, targets = batches.Get(k % batches.Count)
            let weights = BpttStrategy.boundaryWeights (Truncated seq) seq (SplitMix 1UL)
            let p = model.Parameters
            if not (isNull p.grad) then p.grad.zero_ () |> ignore
            let before = heapInUse ()
            let logits, finals = model.Forward(path, inputs, state, weights, training = true)
            let loss = Training.crossEntropy logits targets
            let forward = heapInUse ()
            loss.backward ()
            if path = Fused then model.CollectGradients()
            let backward = heapInUse ()
            held.Add(forward - before)
            transient.Add(backward - before)
            Clipping.apply (ByNorm 5.0) p.grad |> ignore
            optimizer.step () |> ignore
            state <- finals |> Array.map (fun s -> s.detach().MoveToOuterDisposeScope())
        for k in 1 .. warmup do step k
        held.Clear(); transient.Clear()
        // The peak within steps: a thread samples the heap in use every 0.2 ms meanwhile.
        let baseline = heapInUse ()
        let mutable peak = baseline
        let mutable sampling = true
        let sampler = Threading.Thread((fun () ->
            while Volatile.Read &sampling do
                peak <- max peak (heapInUse ())
                Threading.Thread.Sleep(TimeSpan.FromMilliseconds 0.2)), IsBackground = true)
        sampler.Start()
        for k in 1 .. timedSteps do step (warmup + k)
        Volatile.Write(&sampling, false)
        sampler.Join()
        let mib (xs: ResizeArray<int64>) = median [ for x in xs -> float x / 1048576.0 ]
        printfn """{%s, "memory": true, "path": "%s", "held_for_backward_mib": %s, "after_backward_mib": %s, "peak_above_mib": %s, "peak_rss_mib": %s}"""
            header (pathName path) (json (mib held)) (json (mib transient)) (json (float (peak - baseline) / 1048576.0)) (json (statusMiB "VmHWM"))
        0
    elif flag argv "--profile" then
        // One training step taken apart (the same work as Trainer.Step): forward (one-hot input,
        // recurrence, output layer, loss), backward, clipping and Adam; on the derived path the
        // engine's own GEMM and element-wise time inside forward and backward.
        let sgemm = sgemmRate ()
        let flops = stepFlops kind corpus.Vocabulary.Size hidden layers batch seq
        for path in paths do
            use model = CharModel.create config torch.float32 seed
            let batches = Batches(corpus.Train, batch, seq)
            use optimizer = torch.optim.Adam([ model.Parameters ], 2e-3)
            let mutable state = model.ZeroState batch
            let tForward, tBackward, tOptimizer = Stopwatch(), Stopwatch(), Stopwatch()
            let run (k: int) =
                use scope = torch.NewDisposeScope()
                let inputs, targets = batches.Get(k % batches.Count)
                let weights = BpttStrategy.boundaryWeights (Truncated seq) seq (SplitMix 1UL)
                let p = model.Parameters
                if not (isNull p.grad) then p.grad.zero_ () |> ignore
                tForward.Start()
                let logits, finals = model.Forward(path, inputs, state, weights, training = true)
                let loss = Training.crossEntropy logits targets
                tForward.Stop()
                tBackward.Start()
                loss.backward ()
                if path = Fused then model.CollectGradients()
                tBackward.Stop()
                tOptimizer.Start()
                Clipping.apply (ByNorm 5.0) p.grad |> ignore
                optimizer.step () |> ignore
                tOptimizer.Stop()
                state <- finals |> Array.map (fun s -> s.detach().MoveToOuterDisposeScope())
            for k in 1 .. warmup do run k
            tForward.Reset(); tBackward.Reset(); tOptimizer.Reset()
            EngineProfile.Reset()
            EngineProfile.Enable true
            let sw = Stopwatch.StartNew()
            for k in 1 .. timedSteps do run (warmup + k)
            let total = sw.Elapsed.TotalSeconds
            EngineProfile.Enable false
            let per (x: float) = 1000.0 * x / float timedSteps
            let ms (s: Stopwatch) = per s.Elapsed.TotalSeconds
            let engine = path = Derived
            printfn """{%s, "profile": true, "path": "%s", "step_ms": %s, "forward_ms": %s, "backward_ms": %s, "clip_adam_ms": %s, "engine_ms": %s, "engine_gemm_ms": %s, "engine_elementwise_ms": %s, "engine_gemm_calls_per_step": %s, "engine_gemm_gflops": %s, "step_gemm_gflop": %s, "step_gflops": %s, "sgemm_gflops": %s, "roofline_fraction": %s, "chars_per_s": %s}"""
                header (pathName path) (json (per total)) (json (ms tForward)) (json (ms tBackward)) (json (ms tOptimizer))
                (json (if engine then per EngineProfile.TotalSeconds else nan))
                (json (if engine then per EngineProfile.GemmSeconds else nan))
                (json (if engine then per EngineProfile.KernelSeconds else nan))
                (json (if engine then float EngineProfile.GemmCalls / float timedSteps else nan))
                (json (if engine then EngineProfile.GemmFlops / EngineProfile.GemmSeconds / 1e9 else nan))
                (json (flops / 1e9)) (json (flops / (total / float timedSteps) / 1e9)) (json sgemm)
                (json (flops / (total / float timedSteps) / 1e9 / sgemm))
                (json (round (float (timedSteps * batch * seq) / total)))
        0
    else
        // Runs alternated: every path once, then again, `repeats` times.
        let runs = [ for _ in 1 .. repeats do for path in paths -> path, trainRate path ]
        let rates path = runs |> List.filter (fst >> (=) path) |> List.map snd
        let fields =
            [ for path in [ Fused; Step; Derived ] ->
                  let rs = rates path
                  let runsText = String.Join(", ", rs |> List.map (round >> json))
                  $""""{rateField path}": {json (round (median rs))}, "{pathName path}_runs": [{runsText}]""" ]

        let sampleRate =
            if sampleChars <= 0 then nan
            else
                use model = CharModel.create config torch.float32 seed
                // A warm-up of twice the length: the JIT reaches its optimised code after a few thousand
                // characters (the peer gets the same warm-up).
                for _ in 1 .. 2 do Sampling.generate model corpus.Vocabulary "" sampleChars SamplingOptions.Default |> ignore
                let sw = Stopwatch.StartNew()
                Sampling.generate model corpus.Vocabulary "" sampleChars SamplingOptions.Default |> ignore
                float sampleChars / sw.Elapsed.TotalSeconds

        let valLoss =
            if lossSteps <= 0 then nan
            else
                use model = CharModel.create config torch.float32 seed
                let path = lossPath |> Option.defaultValue model.DefaultPath
                use trainer = new Trainer(model, corpus.Train, training path)
                for _ in 1 .. lossSteps do trainer.Step() |> ignore
                Training.evaluate model path corpus.Validation batch seq 20

        let lossPathName = if lossSteps <= 0 then "" else pathName (lossPath |> Option.defaultValue (if CellKind.hasFusedPath kind then Fused else Step))
        printfn """{%s, %s, "sample_chars_per_s": %s, "val_loss": %s, "loss_path": "%s"}"""
            header (String.Join(", ", fields)) (json (round sampleRate)) (json valLoss) lossPathName
        0
