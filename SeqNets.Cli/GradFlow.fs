/// `seqnets gradflow <checkpoint or cells>`: how the gradient flows back in time (Sensitivity.fs) for a
/// trained model or for fresh cells on the same data, as PNG pictures with CSV beside them and a short
/// table; and `seqnets longrange --task adding|copy`: the long-range tasks (LongRange.fs) with their
/// table and each trained model's gradient-norm-vs-lag picture.
module SeqNets.Cli.GradFlowCommand

open System
open System.IO
open Spectre.Console
open SeqNets
open SeqNets.Cli.Errors

let private inv = Globalization.CultureInfo.InvariantCulture
let private sci (x: float) = if Double.IsFinite x then x.ToString("0.00e+0", inv) else "–"
let private num (x: float) = if Double.IsFinite x then x.ToString("0.000", inv) else "–"

/// What `seqnets gradflow` measures.
type Options =
    { /// A checkpoint path, or cell names separated by commas (all: elman-tanh, gru, lstm).
      Target: string
      TextFile: string option
      /// N lags measured (None: every lag).
      Lags: int option
      Out: string
      /// T of the text windows (or of the long-range task a checkpoint was trained on).
      Steps: int
      Rows: int
      Hidden: int
      Stride: int
      Seed: uint64 }

/// The cells `all` stands for.
let allCells = [ "elman-tanh"; "gru"; "lstm" ]

/// The first million characters' worth of token ids the analysis windows are cut from.
let private maxIds = 1_000_000

let private text (o: Options) =
    match o.TextFile with
    | Some f ->
        if not (File.Exists f) then raise (Failed(ExitCode.BadInput, $"--text: the file '{f}' does not exist."))
        try File.ReadAllText(f, Text.UTF8Encoding(false, true))
        with :? Text.DecoderFallbackException as e -> raise (Failed(ExitCode.BadInput, $"--text: '{f}' is not UTF-8 ({e.Message})."))
    | None -> TrainCommand.embeddedCorpus ()

/// The reports of the target on its data.
let private reports (o: Options) : SensitivityReport list =
    let options = { SensitivityOptions.Default with Lags = o.Lags; Stride = o.Stride }
    let looksLikeFile = File.Exists o.Target || o.Target.EndsWith ".ckpt" || o.Target.Contains Path.DirectorySeparatorChar
    if looksLikeFile then
        if not (File.Exists o.Target) then raise (Failed(ExitCode.BadInput, $"checkpoint: the file '{o.Target}' does not exist."))
        let contents = Checkpoint.load o.Target
        use net = contents.Network
        for s in contents.State do s.Dispose()
        let batch =
            match LongRange.taskOf net.Spec, contents.Vocabulary with
            | Some task, _ -> LongRange.batch task o.Seed o.Rows o.Steps
            | None, Some vocabulary ->
                let ids =
                    try Vocabulary.encode vocabulary (text o)
                    with :? ArgumentException as e -> raise (Failed(ExitCode.BadInput, "--text: " + messageOf e))
                GradientFlow.textBatch ids o.Rows o.Steps
            | None, None ->
                raise (Failed(ExitCode.BadInput, $"checkpoint: '{o.Target}' holds a network with no vocabulary and not one of the long-range tasks; its data cannot be made here (use GradientFlow.ofNetwork from code)."))
        [ { GradientFlow.ofNetwork options net batch with Model = $"{Path.GetFileNameWithoutExtension o.Target}: {net.Cells[0].Name}" } ]
    else
        let names =
            o.Target.Split(',', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
            |> Array.collect (fun n -> if n.ToLowerInvariant() = "all" then Array.ofList allCells else [| n |])
            |> Array.distinct
        if names.Length = 0 then usage "gradflow" "a checkpoint or cell names (elman-tanh, elman-relu, gru, gru-lecture, lstm, mrnn-F, all)" "nothing"
        let kinds =
            names |> Array.map (fun n ->
                try CellKind.parse n
                with :? ArgumentException ->
                    usage "gradflow" "a checkpoint file or cell names (elman-tanh, elman-relu, gru, gru-lecture, lstm, mrnn-F, all)" $"'{n}'")
        let corpus =
            match o.TextFile with
            | Some f when File.Exists f -> Corpus.ofFile Reject 1.0 f
            | _ -> Corpus.split 1.0 (text o)
        let ids = corpus.Train.Slice(0L, min corpus.Train.Length (int64 maxIds)).ToArray()
        let batch = GradientFlow.textBatch ids o.Rows o.Steps
        [ for kind in kinds do
              use net = CharModel.create { Kind = kind; VocabularySize = corpus.Vocabulary.Size; HiddenSize = o.Hidden; Layers = 1 } TorchSharp.torch.float64 o.Seed
              yield { GradientFlow.ofNetwork options net batch with Model = $"{net.Cells[0].Name} (H = {o.Hidden}), at initialisation" } ]

/// The summary line of each report: where its gradient comes from.
let private summary (reports: SensitivityReport list) =
    let table = Table().AddColumns("model", "T", "‖∂L/∂θ‖", "‖Π c‖₂ lag 1", "‖Π c‖₂ last lag", "‖G_k‖ k=0", "‖G_k‖ last", "discarded at τ=10")
    for r in reports do
        let last = r.Lags.Length - 1
        let lag k = if k >= 0 && k < r.Lags.Length then sci r.Lags[k].Spectral.GeometricMean else "–"
        let tau10 = if r.Truncation.Length >= 10 then num r.Truncation[9].Discarded else "–"
        table.AddRow(Markup.Escape r.Model, string r.Steps, sci r.GradientNorm, lag 1, $"{lag last} (k={last})",
                     sci r.LossGradientByLag[0], sci r.LossGradientByLag[r.LossGradientByLag.Length - 1], tau10) |> ignore
    AnsiConsole.Write table

let run (o: Options) : int =
    let reports = reports o
    let written = Plots.all o.Out reports
    summary reports
    for p in written do
        printfn "wrote %s (and %s)" p (Path.GetFileName(Plots.csvPath p))
    ExitCode.Done

/// The long-range table as Markdown (what docs/gradient-flow.md shows).
let markdown (r: LongRangeReport) =
    let o = r.Options
    let lines =
        [ yield "| task | T | cell | solved | steps | measure | value | loss (baseline) | share of ‖∂L/∂θ‖ over ≥ D steps: init → trained |"
          yield "| --- | ---: | --- | --- | ---: | --- | ---: | --- | --- |"
          for row in r.Rows ->
              let solved = if row.Solved then "yes" else "no"
              $"| {row.Task} | {row.Lag} | {row.Cell} | {solved} | {row.Steps} | {row.Measure} | {num row.Value} | {num row.Loss} ({num row.Baseline}) | {sci row.FarShareAtInit} → {sci row.FarShare} (D = {row.DependencyLag}) |" ]
    let seconds = r.Elapsed.TotalSeconds.ToString("0", inv)
    String.Join("\n", lines)
    + $"\n\nH = {o.Hidden}, batch {o.Batch}, at most {o.MaxSteps} steps of Adam {o.LearningRate.ToString(inv)} clipped at norm {o.MaxNorm.ToString(inv)}, "
    + $"evaluated every {o.EvaluateEvery} steps on {o.HeldOut} held-out sequences, seed {o.Seed}; {seconds} s. "
    + "Claim: " + r.Claim + " — " + (if r.Holds then "holds." else "does NOT hold.")

let longRange (options: LongRangeOptions) (asMarkdown: bool) : int =
    let interactive = AnsiConsole.Profile.Capabilities.Interactive && not asMarkdown
    let mutable last = DateTime.MinValue
    let quiet = Action<string, int, float>(fun model step loss ->
        if (DateTime.UtcNow - last).TotalSeconds >= 10.0 then
            last <- DateTime.UtcNow
            eprintfn "%s: step %d/%d, loss %s" model step options.MaxSteps (num loss))
    let report =
        if interactive then
            AnsiConsole.Status().Start($"training {options.Task}…", fun ctx ->
                let show = Action<string, int, float>(fun model step loss -> ctx.Status <- $"{Markup.Escape model}: step {step}/{options.MaxSteps}, loss {num loss}")
                LongRange.run { options with Progress = show })
        else LongRange.run { options with Progress = quiet }
    if asMarkdown then printfn "%s" (markdown report)
    else
        let table = Table().AddColumns("T", "cell", "solved", "steps", "measure", "value", "loss (baseline)", "far share init → trained", "s")
        for row in report.Rows do
            table.AddRow(string row.Lag, Markup.Escape row.Cell, (if row.Solved then "[green]yes[/]" else "[red]no[/]"), string row.Steps,
                         row.Measure, num row.Value, $"{num row.Loss} ({num row.Baseline})",
                         $"{sci row.FarShareAtInit} → {sci row.FarShare} (D = {row.DependencyLag})", row.Seconds.ToString("0", inv)) |> ignore
        let seconds = report.Elapsed.TotalSeconds.ToString("0", inv)
        AnsiConsole.MarkupLine($"[bold]{report.Task}[/]: H = {options.Hidden}, at most {options.MaxSteps} steps, seed {options.Seed}, {seconds} s")
        AnsiConsole.Write table
        let verdict = if report.Holds then "[green]holds[/]" else "[red]does not hold[/]"
        AnsiConsole.MarkupLine($"claim: {Markup.Escape report.Claim} — {verdict}")
    for row in report.Rows do
        row.Picture |> Option.iter (fun p -> eprintfn "wrote %s" p)
    if report.Holds then 0 else 1
