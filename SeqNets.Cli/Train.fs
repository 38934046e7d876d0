/// `seqnets train` and `seqnets sample`: a character-level language model, end to end.
module SeqNets.Cli.TrainCommand

open System
open System.Diagnostics
open System.IO
open System.Threading
open TorchSharp
open System.Runtime.InteropServices
open Spectre.Console
open SeqNets
open SeqNets.Cli.Errors

/// The text trained on when no file is given: the project's own F# sources, embedded at build
/// time (char-rnn famously learned from source code).
let embeddedCorpus () =
    let asm = Reflection.Assembly.GetExecutingAssembly()
    asm.GetManifestResourceNames()
    |> Array.filter (fun n -> n.StartsWith "corpus/")
    |> Array.sort
    |> Array.map (fun n ->
        use s = asm.GetManifestResourceStream n
        use r = new StreamReader(s)
        r.ReadToEnd())
    |> String.concat "\n"

type Options =
    { TextFile: string option
      /// What to do with bytes of the text file that are not UTF-8.
      InvalidText: InvalidText
      Kind: CellKind
      Hidden: int
      Layers: int
      /// Dropout between layers (0: none).
      Dropout: float
      /// Train this many steps; None: train for Minutes.
      Steps: int option
      Minutes: float
      Training: TrainingConfig
      Double: bool
      OutDir: string
      /// Replace a checkpoint an earlier run left in OutDir.
      Overwrite: bool
      Resume: string option
      /// The options given on the command line (e.g. "--hidden"), to refuse those a resumed
      /// checkpoint fixes when they differ from it.
      Given: string list
      ValidateEvery: int
      SampleLength: int }

let private inv = Globalization.CultureInfo.InvariantCulture

/// The loss curve as a PNG (ScottPlot).
let plotLosses (path: string) (train: (int * float) list) (validation: (int * float) list) =
    use plt = new ScottPlot.Plot()
    if not train.IsEmpty then
        let s = plt.Add.Scatter(train |> List.map (fst >> float) |> Array.ofList, train |> List.map snd |> Array.ofList)
        s.LegendText <- "training loss"
        s.MarkerSize <- 0.0f
    if not validation.IsEmpty then
        let s = plt.Add.Scatter(validation |> List.map (fst >> float) |> Array.ofList, validation |> List.map snd |> Array.ofList)
        s.LegendText <- "validation loss"
    plt.XLabel "step"
    plt.YLabel "cross-entropy (nats per character)"
    plt.Title "SeqNets character model"
    plt.ShowLegend() |> ignore
    plt.SavePng(path, 900, 520) |> ignore

let private isIO (e: exn) = (e :? IOException && (not (e :? CheckpointException) || e :? CheckpointWriteException)) || e :? UnauthorizedAccessException

let private readCorpus (o: Options) =
    match o.TextFile with
    | Some f ->
        if Directory.Exists f then raise (UsageError $"text: expected a text file, but '{f}' is a folder.")
        if not (File.Exists f) then raise (UsageError $"text: no such file '{f}'.")
        Corpus.ofFile o.InvalidText 0.9 f, Path.GetFileName f
    | None -> Corpus.split 0.9 (embeddedCorpus ()), "the embedded corpus (SeqNets' own sources)"

/// --out must be a folder (or not exist yet) and must not hold an earlier run's checkpoint that
/// this run would replace without being told to.
let private checkOut (o: Options) =
    if File.Exists o.OutDir then usage "--out" "a folder (made if missing)" $"'{o.OutDir}', which is a file"
    let checkpoint = Path.Combine(o.OutDir, "model.ckpt")
    let resumesIt = o.Resume |> Option.exists (fun r -> Path.GetFullPath r = Path.GetFullPath checkpoint)
    if File.Exists checkpoint && not resumesIt && not o.Overwrite then
        raise (UsageError(
            $"--out: '{o.OutDir}' already holds model.ckpt from an earlier run; continue that run with --resume {checkpoint}, "
            + "replace its checkpoint with --overwrite, or choose another --out."))

/// Makes --out and writes and removes a file in it, so that a folder the run cannot write is found
/// before training, not after.
let checkWritable (dir: string) =
    try
        Directory.CreateDirectory dir |> ignore
        let probe = Path.Combine(dir, $".seqnets-write-test-{Environment.ProcessId}")
        File.WriteAllBytes(probe, [| 0uy |])
        File.Delete probe
    with e when isIO e ->
        raise (Failed(ExitCode.IO, $"--out: cannot write to '{dir}' ({e.Message}); nothing was trained."))

let private describeClipping c =
    match c with
    | NoClipping -> "none"
    | ByNorm n -> $"norm {n.ToString(inv)}"
    | ByValue v -> $"value {v.ToString(inv)}"

let private describeOptimizer o =
    match o with
    | Sgd m -> $"sgd:{m.ToString(inv)}"
    | Adagrad -> "adagrad"
    | RmsProp a -> $"rmsprop:{a.ToString(inv)}"
    | Adam -> "adam"

let private describeSchedule s =
    match s with
    | Constant -> "a constant rate"
    | StepDecay(every, factor) -> $"step decay ×{factor.ToString(inv)} every {every} steps"
    | Cosine(total, floor) -> $"a cosine over {total} steps to {floor.ToString(inv)}"

/// Refuses the options a resumed checkpoint fixes when they were given and differ from it.
let private checkResumed (o: Options) (file: string) (c: CheckpointContents) =
    let m =
        match CharModel.tryConfig c.Network with
        | Some m -> m
        | None -> raise (CheckpointException(file, $"holds a network that is not a character model ({c.Network.Describe()}); seqnets train continues character models"))
    let t =
        match c.Training with
        | Some t -> t
        | None -> raise (CheckpointException(file, "holds a network without a training run to continue"))
    let mine = o.Training
    let path p = match p with Some Fused -> "fused" | Some Step -> "step" | Some Derived -> "derived" | None -> "the fastest"
    let fixedByCheckpoint =
        [ "--cell", string o.Kind, string m.Kind
          "--hidden", string o.Hidden, string m.HiddenSize
          "--layers", string o.Layers, string m.Layers
          "--dropout", o.Dropout.ToString("R", inv), c.Network.Spec.Dropout.ToString("R", inv)
          "--float64", "float64", (if c.Network.DType = torch.float64 then "float64" else "float32")
          "--batch", string mine.Batch, string t.Batch
          "--seq-length", string mine.SequenceLength, string t.SequenceLength
          "--bptt", string mine.Strategy, string t.Strategy
          "--optimizer", describeOptimizer mine.Optimizer, describeOptimizer t.Optimizer
          "--lr", mine.LearningRate.ToString("R", inv), t.LearningRate.ToString("R", inv)
          "--cosine", describeSchedule mine.Schedule, describeSchedule t.Schedule
          "--clip", describeClipping mine.Clipping, describeClipping t.Clipping
          "--clip-value", describeClipping mine.Clipping, describeClipping t.Clipping
          "--path", path mine.Path, path t.Path
          "--seed", string mine.Seed, string t.Seed ]
    let differing = fixedByCheckpoint |> List.filter (fun (f, given, saved) -> List.contains f o.Given && given <> saved)
    if not differing.IsEmpty then
        let parts = differing |> List.map (fun (f, given, saved) -> $"{f} ({given}; the checkpoint has {saved})")
        raise (UsageError(
            $"""--resume: '{file}' fixes {String.Join(", ", parts)}; leave them out to continue its run, or start a new run without --resume."""))

/// Values a backward pass keeps per row (one of the T · B positions of a batch): the one-hot input,
/// for each layer its pre-activations, state and output with their gradients, and the logits,
/// softmax and their gradient.
let private valuesPerRow (cells: Cell[]) (V: int) =
    let layer (c: Cell) =
        let preactivations = max (int64 c.HiddenSize) (c.ParameterCount / int64 (c.InputSize + c.HiddenSize + 2))
        4L * (preactivations + int64 c.StateSize + int64 c.HiddenSize)
    int64 V + Array.sumBy layer cells + 3L * int64 V

/// Checks that training this model on these batches fits the machine (Memory.check) before the
/// model is made.
let private checkMemory (o: Options) (V: int) =
    let cells = Array.init o.Layers (fun l -> CellKind.cell o.Kind (if l = 0 then V else o.Hidden) o.Hidden)
    let P = Array.fold (fun acc (c: Cell) -> Memory.add "parameters" acc c.ParameterCount) 0L cells
    let P = Memory.add "parameters" P (Memory.add "parameters" (Memory.multiply "parameters" (int64 o.Hidden) (int64 V)) (int64 V))
    let dtype = if o.Double then torch.float64 else torch.float32
    let t = o.Training
    let bytes = Memory.add "training" (Memory.modelBytes dtype P) (Memory.trainingBytes dtype P t.SequenceLength t.Batch (valuesPerRow cells V))
    Memory.check $"training a {o.Layers}×{o.Hidden} {o.Kind} model (P = {P:N0} parameters, {dtype}) on batches of B = {t.Batch} × T = {t.SequenceLength}" bytes

let run (o: Options) : int =
    checkOut o
    let corpus, source = readCorpus o
    let checkpointPath = Path.Combine(o.OutDir, "model.ckpt")
    let dtype = if o.Double then torch.float64 else torch.float32
    let fits (t: TrainingConfig) =
        let need = int64 t.Batch * int64 t.SequenceLength + 1L
        if corpus.Train.Length < need then
            raise (UsageError(
                $"--batch and --seq-length: expected a training text of at least B·T + 1 = {need:N0} characters for B = {t.Batch} and T = {t.SequenceLength}, "
                + $"but {source} has {corpus.Train.Length:N0}; lower --batch or --seq-length."))
    let trainer, vocabulary =
        match o.Resume with
        | Some file ->
            let c = Checkpoint.load file
            try
                checkResumed o file c
                match c.Vocabulary with
                | Some v when v = corpus.Vocabulary -> ()
                | Some v -> raise (CheckpointException(file, $"mismatched: its vocabulary of {v.Size} characters differs from the {corpus.Vocabulary.Size} of {source}"))
                | None -> raise (CheckpointException(file, "holds a network without a text vocabulary, so it cannot continue on a text"))
                fits c.Training.Value
                Checkpoint.resumeOnText c corpus.Train, corpus.Vocabulary
            with _ ->
                for s in c.State do s.Dispose()
                (c.Network :> IDisposable).Dispose()
                reraise ()
        | None ->
            fits o.Training
            checkMemory o corpus.Vocabulary.Size
            let config = { Kind = o.Kind; VocabularySize = corpus.Vocabulary.Size; HiddenSize = o.Hidden; Layers = o.Layers }
            let model = new Network(CharModel.specWithDropout o.Dropout config, dtype, o.Training.Seed)
            try new Trainer(model, corpus.Train, o.Training), corpus.Vocabulary
            with _ ->
                (model :> IDisposable).Dispose()
                reraise ()
    use _ = trainer
    use _ = trainer.Network
    checkWritable o.OutDir
    let model = trainer.Network
    let t = trainer.Config
    let clipping =
        match t.Clipping with
        | NoClipping -> "no clipping"
        | ByNorm n -> $"clipping by norm {n}"
        | ByValue v -> $"clipping by value {v}"
    let path = match trainer.Path with Fused -> "libtorch's fused kernels" | Step -> "the cells' equations step by step" | Derived -> "the engine on the derivation"
    AnsiConsole.MarkupLine(
        $"[bold]training[/] {Markup.Escape (model.Describe())} ({path}) "
        + $"on {Markup.Escape source}: {corpus.Train.Length:N0} training / {corpus.Validation.Length:N0} validation characters, "
        + $"vocabulary {vocabulary.Size}; B = {t.Batch}, T = {t.SequenceLength}, {t.Strategy} BPTT, {t.Optimizer} {t.LearningRate}, {clipping}")
    // Ctrl+C, SIGTERM (systemd, Kubernetes, docker stop) and SIGHUP (a closed terminal) end the run
    // after the current step. The handlers stay until the checkpoint and the plot are written, so a
    // second signal (or one sent to the whole process group, as `timeout` does) cannot kill the
    // process halfway through saving. The runtime delivers them on its own thread; the training
    // thread runs its kernels with them blocked (SignalShield) and only sees the cancellation.
    use cts = new CancellationTokenSource()
    let mutable stoppedBy: string option = None
    let stop (name: string) =
        lock cts (fun () -> if stoppedBy.IsNone then stoppedBy <- Some name)
        // A signal already being handled when the run ends may find the source disposed.
        try cts.Cancel() with :? ObjectDisposedException -> ()
    let onCancel =
        ConsoleCancelEventHandler(fun _ e ->
            e.Cancel <- true
            stop "Ctrl+C")
    Console.CancelKeyPress.AddHandler onCancel
    let registrations =
        [ for signal, name in [ PosixSignal.SIGTERM, "SIGTERM"; PosixSignal.SIGHUP, "SIGHUP" ] do
              match (try Some(PosixSignalRegistration.Create(signal, fun ctx -> ctx.Cancel <- true; stop name)) with :? PlatformNotSupportedException -> None) with
              | Some r -> yield r
              | None -> () ]
    let releaseSignals () =
        Console.CancelKeyPress.RemoveHandler onCancel
        for r in registrations do r.Dispose()
    use _ = { new IDisposable with member _.Dispose() = releaseSignals () }
    let losses = ResizeArray<int * float>()
    let validation = ResizeArray<int * float>()
    let first = trainer.StepCount
    let budget = TimeSpan.FromMinutes o.Minutes
    let sw = Stopwatch.StartNew()
    let finished () =
        match o.Steps with
        | Some n -> trainer.StepCount >= first + n
        | None -> sw.Elapsed >= budget
    /// Fraction done, for the progress display and the ETA.
    let progress () =
        match o.Steps with
        | Some n -> float (trainer.StepCount - first) / float n
        | None -> sw.Elapsed.TotalSeconds / budget.TotalSeconds
    let mutable chars = 0L
    let validate () =
        let v = Training.evaluate model trainer.Path corpus.Validation t.Batch t.SequenceLength 20
        if not (Double.IsNaN v) then validation.Add((trainer.StepCount, v))
        v
    let describe (r: StepReport) =
        let rate = float chars / max 1e-9 sw.Elapsed.TotalSeconds
        let v = if validation.Count > 0 then (snd validation[validation.Count - 1]).ToString("0.000", inv) else "–"
        let loss, rate = r.Loss.ToString("0.000", inv), rate.ToString("N0", inv)
        $"loss {loss}  val {v}  {rate} chars/s"
    let interactive = AnsiConsole.Profile.Capabilities.Interactive
    let loop (report: StepReport -> unit) =
        while not (finished ()) && not cts.IsCancellationRequested do
            let r = trainer.Step()
            chars <- chars + int64 r.Characters
            losses.Add((r.Step, r.Loss))
            if not r.Applied then
                AnsiConsole.MarkupLine($"[yellow]step {r.Step}: the gradient was not finite (norm {r.GradientNorm}); update skipped[/]")
            if o.ValidateEvery > 0 && r.Step % o.ValidateEvery = 0 then validate () |> ignore
            report r
    /// Writes the checkpoint to --out or, when that fails, next to the temporary files; the message
    /// of a failure, or None.
    let save () : string option =
        match (try Ok(Checkpoint.save checkpointPath trainer (Some vocabulary)) with e when isIO e -> Error e) with
        | Ok() -> None
        | Error e ->
            let rescue = Path.Combine(Path.GetTempPath(), $"seqnets-rescue-{Environment.ProcessId}.ckpt")
            match (try Ok(Checkpoint.save rescue trainer (Some vocabulary)) with e when isIO e -> Error e) with
            | Ok() ->
                Some $"cannot write the checkpoint to '{checkpointPath}' ({e.Message}); it is saved to '{rescue}' instead: continue with --resume {rescue}."
            | Error e2 ->
                Some $"cannot write the checkpoint to '{checkpointPath}' ({e.Message}) nor to '{rescue}' ({e2.Message}); the run's steps are lost."
    let trained =
        try
            if interactive then
                AnsiConsole.Progress()
                    .Columns(TaskDescriptionColumn(), ProgressBarColumn(), PercentageColumn(), ElapsedTimeColumn(), RemainingTimeColumn(), SpinnerColumn())
                    .Start(fun ctx ->
                        let task = ctx.AddTask("training", true, 1000.0)
                        loop (fun r ->
                            task.Value <- 1000.0 * min 1.0 (progress ())
                            task.Description <- $"step {r.Step}  {describe r}"))
            else
                let mutable lastPrint = TimeSpan.FromSeconds -5.0 // the first step is shown at once
                loop (fun r ->
                    let p = progress ()
                    if sw.Elapsed - lastPrint >= TimeSpan.FromSeconds 5.0 || finished () then
                        lastPrint <- sw.Elapsed
                        let eta = TimeSpan.FromSeconds(if p > 0.0 then sw.Elapsed.TotalSeconds * (1.0 - p) / p else 0.0)
                        printfn "step %d (%3.0f%%)  %s  eta %s" r.Step (100.0 * min 1.0 p) (describe r) (eta.ToString(@"hh\:mm\:ss")))
            Ok(validate ())
        with e -> Error e
    match trained with
    | Error e ->
        // Training failed midway: keep what the steps before the failure did, then report it.
        if trainer.StepCount > first then
            match save () with
            | None -> eprintfn "seqnets: step %d failed; the checkpoint of the steps before it is saved to %s" (trainer.StepCount + 1) checkpointPath
            | Some problem -> eprintfn "seqnets: %s" problem
        raise e
    | Ok v ->
    match save () with
    | Some problem -> raise (Failed(ExitCode.IO, problem))
    | None ->
    let plotPath = Path.Combine(o.OutDir, "loss.png")
    (try plotLosses plotPath (List.ofSeq losses) (List.ofSeq validation)
     with e when isIO e -> eprintfn "seqnets: the loss curve could not be drawn to %s (%s); the checkpoint is saved" plotPath e.Message)
    releaseSignals ()
    let signalled = stoppedBy |> Option.filter (fun s -> s <> "Ctrl+C")
    match stoppedBy with
    | Some by -> AnsiConsole.MarkupLine($"[yellow]interrupted[/] after step {trainer.StepCount} ({by}); the checkpoint is saved")
    | None -> ()
    let rate = float chars / max 1e-9 sw.Elapsed.TotalSeconds
    let vText, rateText, seconds = v.ToString("0.000", inv), rate.ToString("N0", inv), sw.Elapsed.TotalSeconds.ToString("0", inv)
    AnsiConsole.MarkupLine(
        $"step {trainer.StepCount}: validation loss {vText} nats/char, {rateText} chars/s, {seconds} s; "
        + $"skipped updates: {trainer.SkippedUpdates}")
    AnsiConsole.MarkupLine($"checkpoint: {Markup.Escape checkpointPath}   loss curve: {Markup.Escape plotPath}")
    match signalled with
    | Some _ -> ExitCode.Stopped // a supervisor asked the run to end: exit at once, without a sample
    | None ->
        if o.SampleLength > 0 then
            let sample = Sampling.generate model vocabulary "" o.SampleLength { SamplingOptions.Default with Seed = t.Seed }
            AnsiConsole.Write(Panel(Text sample).Header("sample (temperature 0.8)"))
        ExitCode.Done

/// Generates text from a checkpoint.
let sample (checkpoint: string) (prime: string) (length: int) (options: SamplingOptions) : int =
    let c = Checkpoint.load checkpoint
    use _ = c.Network
    for s in c.State do s.Dispose()
    let vocabulary =
        match c.Vocabulary with
        | Some v -> v
        | None -> raise (CheckpointException(checkpoint, "holds a network without a text vocabulary, so it cannot generate text"))
    let sw = Stopwatch.StartNew()
    let text =
        try Sampling.generate c.Network vocabulary prime length options
        with
        | :? InvalidTextException as e -> raise (UsageError("--prime" + (messageOf e).Substring(4)))
        | :? ArgumentException as e when e.ParamName = "text" -> raise (UsageError("--prime" + (messageOf e).Substring(4)))
    Console.Out.Write(prime)
    Console.Out.WriteLine(text)
    eprintfn "%d characters in %.2f s (%.0f chars/s)" length sw.Elapsed.TotalSeconds (float length / sw.Elapsed.TotalSeconds)
    0
