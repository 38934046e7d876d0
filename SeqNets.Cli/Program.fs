module SeqNets.Cli.Program

open System
open System.Globalization
open Argu
open SeqNets
open SeqNets.Cli.Errors

type VerifyArgs =
    | Cases of int
    | Max_Steps of int
    | Seed of uint64
    | Tolerance of float
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Cases _ -> "random cases per cell (default 50)."
            | Max_Steps _ -> "largest sequence length T (default 40)."
            | Seed _ -> "random seed (default 1)."
            | Tolerance _ -> "largest relative disagreement accepted (default 1e-9)."

type TaskArgs =
    | [<MainCommand; ExactlyOnce>] Name of task: string
    | Steps of int
    | Hidden of int
    | Batch of int
    | Seed of uint64
    | Markdown
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Name _ -> "brackets (many-to-one), depth (synced), spell (one-to-many) or later (bidirectional against one direction)."
            | Steps _ -> "training steps per network (default 1500)."
            | Hidden _ -> "hidden units (default 64)."
            | Batch _ -> "rows per batch (default 32)."
            | Seed _ -> "random seed (default 1)."
            | Markdown -> "print the table as Markdown (as docs/tasks.md shows it)."

type Seq2SeqArgs =
    | [<Mandatory>] Task of name: string
    | Steps of int
    | Hidden of int
    | Batch of int
    | Seed of uint64
    | Lr of float
    | Bar of float
    | Out of dir: string
    | Markdown
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Task _ -> "reverse (lengths 5–15), dates (normalised to ISO) or addition (a+b of up to three digits)."
            | Steps _ -> "training steps per model (default: reverse 1000, dates 400, addition 3000)."
            | Hidden _ -> "hidden units (default 64; addition 128)."
            | Lr _ -> "Adam's learning rate (default 0.005; addition 0.003)."
            | Batch _ -> "pairs per batch (default 64; addition 128)."
            | Seed _ -> "random seed (default 1)."
            | Bar _ -> "exact-match share on held-out pairs the claim asks for (default 0.99)."
            | Out _ -> "folder for the attention heatmaps and the model <task>.ckpt (default seqnets-seq2seq); checked for writing before training."
            | Markdown -> "print the table as Markdown (as docs/seq2seq.md shows it)."

type GradFlowArgs =
    | [<MainCommand>] Target of checkpoint_or_cells: string
    | Text of file: string
    | Lags of int
    | Seq_Length of int
    | Rows of int
    | Hidden of int
    | Stride of int
    | Seed of uint64
    | Out of dir: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Target _ -> "a checkpoint, or cell names separated by commas (elman-tanh, gru, lstm, …; all: elman-tanh,gru,lstm) analysed at initialisation on the same text (default all)."
            | Text _ -> "UTF-8 text the windows are cut from (default: the embedded corpus); a long-range checkpoint uses its task's data."
            | Lags _ -> "lags N measured for the products and terms (default: every lag)."
            | Seq_Length _ -> "T of each window, or the long-range task's T (default 64)."
            | Rows _ -> "windows B (default 4)."
            | Hidden _ -> "hidden units of the fresh cells (default 32)."
            | Stride _ -> "follow the products from every m-th position only (default 1)."
            | Seed _ -> "random seed (default 1)."
            | Out _ -> "folder for the PNG and CSV files (default seqnets-gradflow)."

type LongRangeArgs =
    | [<Mandatory>] Task of name: string
    | Lags of string
    | Steps of int
    | Hidden of int
    | Batch of int
    | Evaluate_Every of int
    | Held_Out of int
    | Lr of float
    | Seed of uint64
    | Out of dir: string
    | Markdown
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Task _ -> "adding (the sum of two marked numbers) or copy (recall ten symbols after a delay)."
            | Lags _ -> "lengths T, separated by commas (default 10,50,100,200)."
            | Steps _ -> "training budget: steps at most per model (default 3000)."
            | Hidden _ -> "hidden units of every cell (default 64)."
            | Batch _ -> "sequences per batch (default 32)."
            | Evaluate_Every _ -> "steps between held-out evaluations; training stops at the first that solves the task (default 250)."
            | Held_Out _ -> "held-out sequences (default 1000)."
            | Lr _ -> "Adam's learning rate (default 1e-3)."
            | Seed _ -> "random seed (default 1)."
            | Out _ -> "folder for each model's gradient-norm-vs-lag picture and checkpoint (default seqnets-longrange)."
            | Markdown -> "print the table as Markdown (as docs/gradient-flow.md shows it)."

type TrainArgs =
    | [<MainCommand>] Text of file: string
    | Invalid_Utf8 of string
    | Cell of string
    | Hidden of int
    | Layers of int
    | Dropout of float
    | Steps of int
    | Minutes of float
    | Batch of int
    | Seq_Length of int
    | Bptt of string
    | Optimizer of string
    | Lr of float
    | Cosine
    | Clip of float
    | Clip_Value of float
    | Path of string
    | Seed of uint64
    | Float64
    | Out of dir: string
    | Overwrite
    | Resume of checkpoint: string
    | Validate_Every of int
    | Sample_Length of int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Text _ -> "UTF-8 text file to train on (default: the embedded corpus, SeqNets' own sources)."
            | Invalid_Utf8 _ -> "reject (default: an error naming the byte offset) or replace (read invalid bytes as U+FFFD)."
            | Cell _ -> "elman-tanh, elman-relu, gru, gru-lecture, lstm or mrnn-F (default lstm)."
            | Hidden _ -> "hidden units per layer (default 128)."
            | Layers _ -> "stacked layers (default 1)."
            | Dropout _ -> "dropout probability between stacked layers, as PyTorch's (default 0)."
            | Steps _ -> "training steps (default: train for --minutes)."
            | Minutes _ -> "training time when --steps is not given (default 1)."
            | Batch _ -> "parallel streams B (default 32)."
            | Seq_Length _ -> "steps per batch T (default 64)."
            | Bptt _ -> "full, truncated:τ or randomized:m (default truncated:T)."
            | Optimizer _ -> "adam, rmsprop[:alpha], adagrad or sgd[:momentum] (default adam)."
            | Lr _ -> "learning rate (default 2e-3)."
            | Cosine -> "decay the learning rate along a cosine to 10% at the last step (needs --steps)."
            | Clip _ -> "clip the gradient's global norm (default 5)."
            | Clip_Value _ -> "clip every gradient entry to [-v, v] instead."
            | Path _ -> "fused (libtorch's kernels), step (the cells' equations) or derived (the cells' equations with the hand-derived backward pass; built-in cells); default: the fastest available."
            | Seed _ -> "random seed (default 1)."
            | Float64 -> "train in float64 (default float32)."
            | Out _ -> "folder for the checkpoint and the loss plot (default seqnets-run); checked for writing before training starts."
            | Overwrite -> "replace a checkpoint already in --out (without it, an earlier run's checkpoint is never replaced except by --resume)."
            | Resume _ -> "continue from a checkpoint; options it fixes (--cell, --hidden, --layers, --float64, --batch, …) must match it or be left out."
            | Validate_Every _ -> "steps between validation losses (default 100; 0: only at the end)."
            | Sample_Length _ -> "characters to sample at the end (default 400)."

type SampleArgs =
    | [<MainCommand>] Checkpoint of file: string
    | Length of int
    | Prime of string
    | Temperature of float
    | Top_K of int
    | Seed of uint64
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Checkpoint _ -> "checkpoint to sample from (default seqnets-run/model.ckpt)."
            | Length _ -> "characters to generate (default 500)."
            | Prime _ -> "text to start from."
            | Temperature _ -> "softmax temperature (default 0.8)."
            | Top_K _ -> "draw only from the k most likely characters (default: all)."
            | Seed _ -> "random seed (default 1)."

type DeriveArgs =
    | [<MainCommand; Mandatory>] Derived_Cell of cell: string
    | Latex
    | Markdown
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Derived_Cell _ -> "elman-tanh, elman-relu, gru-lecture, gru-pytorch (gru), lstm, mrnn or multiplicative-module."
            | Latex -> "print LaTeX instead of Unicode text."
            | Markdown -> "print a Markdown section with LaTeX math (as in docs/derivations.md)."

[<HelpFlags("--help", "-h")>]
type Command =
    | [<CliPrefix(CliPrefix.None)>] Train of ParseResults<TrainArgs>
    | [<CliPrefix(CliPrefix.None)>] Sample of ParseResults<SampleArgs>
    | [<CliPrefix(CliPrefix.None)>] Verify of ParseResults<VerifyArgs>
    | [<CliPrefix(CliPrefix.None)>] Task of ParseResults<TaskArgs>
    | [<CliPrefix(CliPrefix.None)>] Seq2seq of ParseResults<Seq2SeqArgs>
    | [<CliPrefix(CliPrefix.None)>] Derive of ParseResults<DeriveArgs>
    | [<CliPrefix(CliPrefix.None)>] Gradflow of ParseResults<GradFlowArgs>
    | [<CliPrefix(CliPrefix.None)>] Longrange of ParseResults<LongRangeArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Train _ -> "train a character-level language model (default: on SeqNets' own sources)."
            | Sample _ -> "generate text from a checkpoint."
            | Verify _ -> "check the closed-form BPTT identity against autodiff for every built-in cell."
            | Task _ -> "train and measure a generated task (brackets, depth, spell, later) and print its table."
            | Seq2seq _ -> "train an encoder–decoder with attention on a generated task (reverse, dates, addition); table and heatmaps."
            | Derive _ -> "a built-in cell's equations, its c_t and b_t derived by rules, and the identity for t = 1, 2, 3."
            | Gradflow _ -> "how the gradient flows back in time (per-lag norms, heatmap, truncation, spectrum) for a checkpoint or fresh cells; PNG and CSV."
            | Longrange _ -> "train Elman, GRU and LSTM on the adding or copy task at several lengths T; table and gradient-norm-vs-lag pictures."

let private inv = CultureInfo.InvariantCulture

let private positive (option: string) (v: int) =
    if v <= 0 then usage option "a positive whole number" (string v)
    v

let private nonNegative (option: string) (v: int) =
    if v < 0 then usage option "zero or a positive whole number" (string v)
    v

let private positiveFinite (option: string) (v: float) =
    if not (v > 0.0 && Double.IsFinite v) then usage option "a positive finite number" (v.ToString("R", inv))
    v

/// A number of the form an optimizer option takes (sgd:0.9, rmsprop:0.95), in [0, 1).
let private parseOptimizer (text: string) =
    let fraction (what: string) (s: string) =
        match Double.TryParse(s, NumberStyles.Float, inv) with
        | true, v when v >= 0.0 && v < 1.0 -> ()
        | _ -> usage "--optimizer" $"{what} in [0, 1) after the colon" $"'{text}'"
    match text.Trim().ToLowerInvariant().Split ':' with
    | [| "sgd"; m |] -> fraction "sgd:momentum with a momentum" m
    | [| "rmsprop"; a |] -> fraction "rmsprop:alpha with an alpha" a
    | _ -> ()
    try OptimizerKind.parse text
    with :? ArgumentException -> usage "--optimizer" "adam, rmsprop[:alpha], adagrad or sgd[:momentum]" $"'{text}'"

/// Longest --minutes: TimeSpan holds about 10⁷ days; a century is plenty.
let private maxMinutes = 100.0 * 365.25 * 24.0 * 60.0

let private trainOptions (parser: ArgumentParser<TrainArgs>) (a: ParseResults<TrainArgs>) : TrainCommand.Options =
    let T = positive "--seq-length" (a.GetResult(Seq_Length, 64))
    let steps = a.TryGetResult Steps |> Option.map (positive "--steps")
    let minutes = a.TryGetResult Minutes
    match minutes with
    | Some m when not (m > 0.0 && m <= maxMinutes) ->
        usage "--minutes" $"a positive number of minutes, at most {maxMinutes:N0} (a century)" (m.ToString("R", inv))
    | _ -> ()
    if steps.IsSome && minutes.IsSome then
        usage "--steps and --minutes" "one of them (--steps: that many steps; --minutes: that long)" "both"
    let clipping =
        match a.TryGetResult Clip, a.TryGetResult Clip_Value with
        | Some _, Some _ -> usage "--clip and --clip-value" "one of them (by norm or by value)" "both"
        | None, Some v -> ByValue(positiveFinite "--clip-value" v)
        | Some n, None -> ByNorm(positiveFinite "--clip" n)
        | None, None -> ByNorm 5.0
    let text =
        match a.TryGetResult Text with
        | Some f when f.StartsWith "-" && f.Length > 1 ->
            // Argu takes any word for the main argument; a word like a flag is an unknown flag.
            unknownOption "train" f
        | f -> f
    let given =
        [ for case in a.GetAllResults() do
              match case with
              | Text _ -> ()
              | c -> yield parser.GetArgumentCaseInfo(c).Name.Value ]
        |> List.distinct
    { TextFile = text
      InvalidText =
        (match a.TryGetResult Invalid_Utf8 |> Option.map (fun s -> s.Trim().ToLowerInvariant()) with
         | None | Some "reject" -> Reject
         | Some "replace" -> Replace
         | Some other -> usage "--invalid-utf8" "reject or replace" $"'{other}'")
      Kind =
        (let name = a.GetResult(Cell, "lstm")
         try CellKind.parse name with :? ArgumentException -> usage "--cell" "elman-tanh, elman-relu, gru, gru-lecture, lstm or mrnn-F (F > 0)" $"'{name}'")
      Hidden = positive "--hidden" (a.GetResult(Hidden, 128))
      Layers = positive "--layers" (a.GetResult(Layers, 1))
      Dropout =
        (let p = a.GetResult(Dropout, 0.0)
         if not (p >= 0.0 && p < 1.0) then usage "--dropout" "a probability in [0, 1)" (p.ToString("R", inv))
         if p > 0.0 && a.GetResult(Layers, 1) < 2 then usage "--dropout" "--layers 2 or more (dropout acts between stacked layers, never after the last)" (p.ToString("R", inv))
         p)
      Steps = steps
      Minutes = defaultArg minutes 1.0
      Training =
        { Strategy =
            (match a.TryGetResult Bptt with
             | Some s -> (try BpttStrategy.parse s with :? ArgumentException -> usage "--bptt" "full, truncated:τ (τ ≥ 1) or randomized:m (m > 1)" $"'{s}'")
             | None -> Truncated T)
          Optimizer = parseOptimizer (a.GetResult(Optimizer, "adam"))
          LearningRate = positiveFinite "--lr" (a.GetResult(Lr, 2e-3))
          Schedule =
            (match a.Contains Cosine, steps with
             | true, Some n -> Schedule.Cosine(n, 0.1)
             | true, None -> usage "--cosine" "--steps too, to know where the cosine ends" "no --steps"
             | false, _ -> Constant)
          Clipping = clipping
          Batch = positive "--batch" (a.GetResult(Batch, 32))
          SequenceLength = T
          Path =
            (match a.TryGetResult Path with
             | Some "fused" -> Some Fused
             | Some "step" -> Some Step
             | Some "derived" -> Some Derived
             | Some other -> usage "--path" "fused, step or derived" $"'{other}'"
             | None -> None)
          Seed = a.GetResult(TrainArgs.Seed, 1UL) }
      Double = a.Contains Float64
      OutDir = (match a.GetResult(Out, "seqnets-run") with "" -> usage "--out" "a folder" "an empty path" | d -> d)
      Overwrite = a.Contains Overwrite
      Resume = a.TryGetResult Resume
      Given = given
      ValidateEvery = nonNegative "--validate-every" (a.GetResult(Validate_Every, 100))
      SampleLength = nonNegative "--sample-length" (a.GetResult(Sample_Length, 400)) }

/// What `seqnets --help` says after the commands: the exit codes.
let private exitCodes =
    """
Exit codes:
  0  done (also after Ctrl+C, which finishes the step and saves the checkpoint)
  1  an unexpected error (a bug: please report the message)
  2  a bad command line: an unknown option, a value out of range, options that conflict
     or that a resumed checkpoint fixes; nothing has been written
  3  the tensor engine (libtorch) cannot be loaded
  4  an input file cannot be used: a checkpoint or state dict that is missing, corrupt or
     does not fit, a text that is not UTF-8
  5  a file cannot be read or written (permissions, a full disk, a read-only folder)
  6  not enough memory for the model or the batch (checked before anything is allocated)
  75 stopped by SIGTERM or SIGHUP after finishing the step and saving the checkpoint"""

[<EntryPoint>]
let main argv =
    let parser = ArgumentParser.Create<Command>(programName = "seqnets", helpTextMessage = "SeqNets: recurrent networks, BPTT in closed form." + exitCodes)
    Errors.handle (fun () ->
        let results = parser.ParseCommandLine(argv, raiseOnUsage = true)
        match results.TryGetSubCommand() with
        | Some(Verify v) ->
            let cases = positive "--cases" (v.GetResult(Cases, 50))
            let maxSteps = positive "--max-steps" (v.GetResult(Max_Steps, 40))
            let tolerance = positiveFinite "--tolerance" (v.GetResult(Tolerance, 1e-9))
            Native.ensure ()
            VerifyCommand.run cases maxSteps (v.GetResult(VerifyArgs.Seed, 1UL)) tolerance
        | Some(Train a) ->
            let o = trainOptions (parser.GetSubCommandParser Train) a
            Native.ensure ()
            TrainCommand.run o
        | Some(Task a) ->
            let d = TaskOptions.Default
            let name = a.GetResult Name
            if not (List.contains name Tasks.names) then usage "task" (String.Join(", ", Tasks.names)) $"'{name}'"
            let options =
                { d with Steps = positive "--steps" (a.GetResult(TaskArgs.Steps, d.Steps)); Hidden = positive "--hidden" (a.GetResult(TaskArgs.Hidden, d.Hidden))
                         Batch = positive "--batch" (a.GetResult(TaskArgs.Batch, d.Batch)); Seed = a.GetResult(TaskArgs.Seed, d.Seed) }
            Native.ensure ()
            TaskCommand.run name options (a.Contains TaskArgs.Markdown)
        | Some(Seq2seq a) ->
            let name = a.GetResult Seq2SeqArgs.Task
            if not (List.contains name Seq2SeqTasks.names) then usage "--task" (String.Join(", ", Seq2SeqTasks.names)) $"'{name}'"
            let d = Seq2SeqTasks.defaultsFor name
            let bar = a.GetResult(Bar, d.Bar)
            if not (bar >= 0.0 && bar <= 1.0) then usage "--bar" "a share in [0, 1]" (bar.ToString("R", inv))
            let options =
                { d with Steps = positive "--steps" (a.GetResult(Seq2SeqArgs.Steps, d.Steps)); Hidden = positive "--hidden" (a.GetResult(Seq2SeqArgs.Hidden, d.Hidden))
                         Batch = positive "--batch" (a.GetResult(Seq2SeqArgs.Batch, d.Batch)); Seed = a.GetResult(Seq2SeqArgs.Seed, d.Seed); Bar = bar
                         LearningRate = positiveFinite "--lr" (a.GetResult(Seq2SeqArgs.Lr, d.LearningRate)) }
            Native.ensure ()
            Seq2SeqCommand.run name options (a.GetResult(Seq2SeqArgs.Out, "seqnets-seq2seq")) (a.Contains Seq2SeqArgs.Markdown)
        | Some(Derive d) -> DeriveCommand.run (d.GetResult(Derived_Cell)) (d.Contains Latex) (d.Contains DeriveArgs.Markdown)
        | Some(Gradflow a) ->
            let target =
                match a.TryGetResult Target with
                | Some f when f.StartsWith "-" && f.Length > 1 -> unknownOption "gradflow" f
                | Some f -> f
                | None -> "all"
            let options : GradFlowCommand.Options =
                { Target = target
                  TextFile = a.TryGetResult GradFlowArgs.Text
                  Lags = a.TryGetResult GradFlowArgs.Lags |> Option.map (positive "--lags")
                  Out = (match a.GetResult(GradFlowArgs.Out, "seqnets-gradflow") with "" -> usage "--out" "a folder" "an empty path" | d -> d)
                  Steps = positive "--seq-length" (a.GetResult(GradFlowArgs.Seq_Length, 64))
                  Rows = positive "--rows" (a.GetResult(Rows, 4))
                  Hidden = positive "--hidden" (a.GetResult(GradFlowArgs.Hidden, 32))
                  Stride = positive "--stride" (a.GetResult(Stride, 1))
                  Seed = a.GetResult(GradFlowArgs.Seed, 1UL) }
            Native.ensure ()
            GradFlowCommand.run options
        | Some(Longrange a) ->
            let d = LongRangeOptions.Default
            let task = a.GetResult LongRangeArgs.Task
            if not (List.contains task LongRange.names) then usage "--task" (String.Join(", ", LongRange.names)) $"'{task}'"
            let lags =
                match a.TryGetResult LongRangeArgs.Lags with
                | None -> d.Lags
                | Some text ->
                    let parts = text.Split(',', StringSplitOptions.TrimEntries)
                    [ for p in parts ->
                          match Int32.TryParse(p, NumberStyles.None, inv) with
                          | true, v when v >= 2 && v <= 100_000 -> v
                          | _ -> usage "--lags" "lengths T from 2 to 100000 separated by commas, e.g. 10,50,100,200" $"'{text}'" ]
            let options =
                { d with
                    Task = task
                    Lags = lags
                    MaxSteps = positive "--steps" (a.GetResult(LongRangeArgs.Steps, d.MaxSteps))
                    Hidden = positive "--hidden" (a.GetResult(LongRangeArgs.Hidden, d.Hidden))
                    Batch = positive "--batch" (a.GetResult(LongRangeArgs.Batch, d.Batch))
                    EvaluateEvery = positive "--evaluate-every" (a.GetResult(Evaluate_Every, d.EvaluateEvery))
                    HeldOut = positive "--held-out" (a.GetResult(Held_Out, d.HeldOut))
                    LearningRate = positiveFinite "--lr" (a.GetResult(LongRangeArgs.Lr, d.LearningRate))
                    Seed = a.GetResult(LongRangeArgs.Seed, d.Seed)
                    Output = Some(match a.GetResult(LongRangeArgs.Out, "seqnets-longrange") with "" -> usage "--out" "a folder" "an empty path" | o -> o) }
            Native.ensure ()
            GradFlowCommand.longRange options (a.Contains LongRangeArgs.Markdown)
        | Some(Sample a) ->
            let checkpoint =
                match a.TryGetResult Checkpoint with
                | Some f when f.StartsWith "-" && f.Length > 1 ->
                    unknownOption "sample" f
                | Some f -> f
                | None -> IO.Path.Combine("seqnets-run", "model.ckpt")
            let options =
                { Temperature = positiveFinite "--temperature" (a.GetResult(Temperature, 0.8))
                  TopK = nonNegative "--top-k" (a.GetResult(Top_K, 0))
                  Seed = a.GetResult(SampleArgs.Seed, 1UL) }
            let length = nonNegative "--length" (a.GetResult(Length, 500))
            Native.ensure ()
            TrainCommand.sample checkpoint (a.GetResult(Prime, "")) length options
        | None ->
            eprintfn "%s" (parser.PrintUsage())
            ExitCode.Usage)
