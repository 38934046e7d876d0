/// `seqnets train` and `seqnets sample`: a character-level language model, end to end.
module SeqNets.Cli.TrainCommand

open System
open System.Diagnostics
open System.IO
open System.Threading
open TorchSharp
open Spectre.Console
open SeqNets

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
      Kind: CellKind
      Hidden: int
      Layers: int
      /// Train this many steps; None: train for Minutes.
      Steps: int option
      Minutes: float
      Training: TrainingConfig
      Double: bool
      OutDir: string
      Resume: string option
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

let private readCorpus (o: Options) =
    match o.TextFile with
    | Some f ->
        if not (File.Exists f) then raise (ArgumentException($"text: no such file '{f}'.", "text"))
        File.ReadAllText f, Path.GetFileName f
    | None -> embeddedCorpus (), "the embedded corpus (SeqNets' own sources)"

let run (o: Options) : int =
    let text, source = readCorpus o
    let corpus = Corpus.split 0.9 text
    let checkpointPath = Path.Combine(o.OutDir, "model.ckpt")
    let dtype = if o.Double then torch.float64 else torch.float32
    let trainer, vocabulary =
        match o.Resume with
        | Some file ->
            let c = Checkpoint.load file
            if c.Vocabulary <> corpus.Vocabulary then
                raise (CheckpointException(file, $"mismatched: its vocabulary of {c.Vocabulary.Size} characters differs from the {corpus.Vocabulary.Size} of {source}"))
            Checkpoint.resume c corpus.Train, c.Vocabulary
        | None ->
            let config = { Kind = o.Kind; VocabularySize = corpus.Vocabulary.Size; HiddenSize = o.Hidden; Layers = o.Layers }
            let model = new CharModel(config, dtype, o.Training.Seed)
            new Trainer(model, corpus.Train, o.Training), corpus.Vocabulary
    use _ = trainer
    use _ = trainer.Model
    let model = trainer.Model
    let t = trainer.Config
    let clipping =
        match t.Clipping with
        | NoClipping -> "no clipping"
        | ByNorm n -> $"clipping by norm {n}"
        | ByValue v -> $"clipping by value {v}"
    let path = match trainer.Path with Fused -> "libtorch's fused kernels" | Step -> "the cells' equations step by step"
    AnsiConsole.MarkupLine(
        $"[bold]training[/] a {model.Config.Layers}×{model.Config.HiddenSize} {model.Config.Kind} ({model.ParameterCount:N0} parameters, {path}) "
        + $"on {Markup.Escape source}: {corpus.Train.Length:N0} training / {corpus.Validation.Length:N0} validation characters, "
        + $"vocabulary {vocabulary.Size}; B = {t.Batch}, T = {t.SequenceLength}, {t.Strategy} BPTT, {t.Optimizer} {t.LearningRate}, {clipping}")
    // Ctrl+C ends the run after the current step. The handler stays until the checkpoint and the
    // plot are written, so a second Ctrl+C (or a signal sent to the whole process group, as
    // `timeout` does) cannot kill the process halfway through saving.
    use cts = new CancellationTokenSource()
    let onCancel =
        ConsoleCancelEventHandler(fun _ e ->
            e.Cancel <- true
            // A signal already being handled when the run ends may find the source disposed.
            try cts.Cancel() with :? ObjectDisposedException -> ())
    Console.CancelKeyPress.AddHandler onCancel
    use _ = { new IDisposable with member _.Dispose() = Console.CancelKeyPress.RemoveHandler onCancel }
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
    if interactive then
        AnsiConsole.Progress()
            .Columns(TaskDescriptionColumn(), ProgressBarColumn(), PercentageColumn(), ElapsedTimeColumn(), RemainingTimeColumn(), SpinnerColumn())
            .Start(fun ctx ->
                let task = ctx.AddTask("training", true, 1000.0)
                loop (fun r ->
                    task.Value <- 1000.0 * min 1.0 (progress ())
                    task.Description <- $"step {r.Step}  {describe r}"))
    else
        let mutable lastPrint = TimeSpan.Zero
        loop (fun r ->
            let p = progress ()
            if sw.Elapsed - lastPrint >= TimeSpan.FromSeconds 5.0 || finished () then
                lastPrint <- sw.Elapsed
                let eta = TimeSpan.FromSeconds(if p > 0.0 then sw.Elapsed.TotalSeconds * (1.0 - p) / p else 0.0)
                printfn "step %d (%3.0f%%)  %s  eta %s" r.Step (100.0 * min 1.0 p) (describe r) (eta.ToString(@"hh\:mm\:ss")))
    let v = validate ()
    Directory.CreateDirectory o.OutDir |> ignore
    Checkpoint.save checkpointPath trainer vocabulary
    let plotPath = Path.Combine(o.OutDir, "loss.png")
    plotLosses plotPath (List.ofSeq losses) (List.ofSeq validation)
    Console.CancelKeyPress.RemoveHandler onCancel
    if cts.IsCancellationRequested then
        AnsiConsole.MarkupLine($"[yellow]interrupted[/] after step {trainer.StepCount}; the checkpoint is saved")
    let rate = float chars / max 1e-9 sw.Elapsed.TotalSeconds
    let vText, rateText, seconds = v.ToString("0.000", inv), rate.ToString("N0", inv), sw.Elapsed.TotalSeconds.ToString("0", inv)
    AnsiConsole.MarkupLine(
        $"step {trainer.StepCount}: validation loss {vText} nats/char, {rateText} chars/s, {seconds} s; "
        + $"skipped updates: {trainer.SkippedUpdates}")
    AnsiConsole.MarkupLine($"checkpoint: {Markup.Escape checkpointPath}   loss curve: {Markup.Escape plotPath}")
    if o.SampleLength > 0 then
        let sample = Sampling.generate model vocabulary "" o.SampleLength { SamplingOptions.Default with Seed = t.Seed }
        AnsiConsole.Write(Panel(Text sample).Header("sample (temperature 0.8)"))
    0

/// Generates text from a checkpoint.
let sample (checkpoint: string) (prime: string) (length: int) (options: SamplingOptions) : int =
    let c = Checkpoint.load checkpoint
    use _ = c.Model
    for s in c.State do s.Dispose()
    let sw = Stopwatch.StartNew()
    let text = Sampling.generate c.Model c.Vocabulary prime length options
    Console.Out.Write(prime)
    Console.Out.WriteLine(text)
    eprintfn "%d characters in %.2f s (%.0f chars/s)" length sw.Elapsed.TotalSeconds (float length / sw.Elapsed.TotalSeconds)
    0
