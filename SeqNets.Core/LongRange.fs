/// Long-range tasks generated in code (seeded, no downloads), the two classic tests of whether a
/// recurrent cell can carry information over T steps (Hochreiter & Schmidhuber 1997):
///   adding   many-to-one regression: x_t = (u_t, m_t) with u_t ~ U(0, 1) and two markers m_a = m_b = 1,
///            a in the first half, b in the second; y = u_a + u_b. Solved: mean absolute error < 0.04 on
///            held-out sequences. Predicting 1 always has mean squared error Var(u_a + u_b) = 1/6.
///   copy     synced: ten symbols from 1–8, T − 1 blanks (0), the delimiter 9, ten blanks; the targets are
///            blanks for T + 10 steps, then the ten symbols. Solved: at least 99% of the recalled symbols
///            right on held-out sequences. Blanks followed by a uniform guess over the 8 symbols has
///            cross-entropy 10·log 8 / (T + 20) per step.
/// Each (T, cell) trains from the same seed on the same batches with the same budget, stops at the first
/// evaluation where it solves the task, and its gradient flow (Sensitivity.fs) is measured at
/// initialisation and after training on one held-out batch.
/// Legend: T time, B batch.
namespace SeqNets

open System
open System.Diagnostics
open System.IO
open TorchSharp

/// How the long-range tasks train and measure.
type LongRangeOptions =
    { /// "adding" or "copy".
      Task: string
      /// The lengths T (the copy task's delay).
      Lags: int list
      /// The cells compared, at the same hidden size and budget.
      Cells: CellKind list
      /// H of every cell.
      Hidden: int
      /// B: rows per training batch.
      Batch: int
      /// The budget: training steps at most.
      MaxSteps: int
      /// Steps between evaluations on the held-out set (the run stops at the first that solves the task).
      EvaluateEvery: int
      /// Adam's rate.
      LearningRate: float
      /// Clipping by norm.
      MaxNorm: float
      /// Rows of the held-out set.
      HeldOut: int
      /// Rows of the batch the gradient flow is measured on.
      AnalysisRows: int
      Seed: uint64
      /// Where each trained model's checkpoint and gradient-flow pictures go; None: nowhere.
      Output: string option
      /// Called after every training step with (model, step, loss); may be null.
      Progress: Action<string, int, float> }
    /// The adding problem at T = 10, 50, 100, 200 for Elman (tanh), GRU and LSTM of H = 64: B = 32,
    /// at most 3,000 steps of Adam 1e-3 clipped at norm 1, evaluated every 250 steps on 1,000 held-out
    /// sequences, the gradient flow on 4; seed 1.
    static member Default =
        { Task = "adding"; Lags = [ 10; 50; 100; 200 ]; Cells = [ ElmanTanh; GruPyTorch; Lstm ]; Hidden = 64; Batch = 32
          MaxSteps = 3000; EvaluateEvery = 250; LearningRate = 1e-3; MaxNorm = 1.0; HeldOut = 1000; AnalysisRows = 4
          Seed = 1UL; Output = None; Progress = null }

/// One trained (T, cell) of a long-range task.
[<NoComparison; NoEquality>]
type LongRangeRow =
    { Task: string
      /// T.
      Lag: int
      Cell: string
      /// Whether the held-out measure met the task's criterion.
      Solved: bool
      /// Steps trained: the evaluation at which it was solved, or the budget.
      Steps: int
      /// "mean absolute error" (adding) or "recalled symbols right" (copy).
      Measure: string
      /// The held-out measure when training stopped.
      Value: float
      /// The held-out loss (mean squared error or cross-entropy per step).
      Loss: float
      /// The trivial baseline's loss: 1/6, or 10·log 8 / (T + 20).
      Baseline: float
      /// D: the lag the task's information must travel (adding T/2, the first marker's distance at least;
      /// copy T + 10, exactly).
      DependencyLag: int
      /// The share of ‖∂L/∂θ‖ carried over D steps or more (what truncation at D throws away), at
      /// initialisation.
      FarShareAtInit: float
      /// The same after training.
      FarShare: float
      Seconds: float
      /// The gradient flow at initialisation and after training, on one held-out batch.
      InitialFlow: SensitivityReport
      Flow: SensitivityReport
      /// The gradient-norm-vs-lag picture written for this model, if any.
      Picture: string option
      /// The checkpoint written for this model, if any.
      Checkpoint: string option }

/// What a long-range run measured.
[<NoComparison; NoEquality>]
type LongRangeReport =
    { Task: string
      Rows: LongRangeRow list
      /// The claim the run checks, in words.
      Claim: string
      Holds: bool
      Options: LongRangeOptions
      Elapsed: TimeSpan }

[<RequireQualifiedAccess>]
module LongRange =
    /// The task names.
    let names = [ "adding"; "copy" ]

    let private between (rng: SplitMix) (lo: int) (hi: int) = lo + int (rng.NextUInt64() % uint64 (hi - lo + 1))

    /// B sequences of the adding problem of length T: inputs [T; B; 2] (value, marker), targets [B; 1].
    [<CompiledName("AddingBatch")>]
    let addingBatch (dtype: torch.ScalarType) (seed: uint64) (rows: int) (steps: int) : Batch =
        Check.positive "rows" rows
        if steps < 2 then Check.fail "steps" $"steps: expected T >= 2 (two marked positions), but got {steps}."
        let rng = SplitMix(seed)
        let x = Array.zeroCreate<float> (steps * rows * 2)
        let y = Array.zeroCreate<float> rows
        for b in 0 .. rows - 1 do
            for t in 0 .. steps - 1 do x[(t * rows + b) * 2] <- rng.NextDouble()
            let half = steps / 2
            let a = between rng 0 (half - 1)
            let c = between rng half (steps - 1)
            x[(a * rows + b) * 2 + 1] <- 1.0
            x[(c * rows + b) * 2 + 1] <- 1.0
            y[b] <- x[(a * rows + b) * 2] + x[(c * rows + b) * 2]
        { Inputs = torch.tensor(x, dtype = dtype).reshape(int64 steps, int64 rows, 2L)
          Lengths = None
          Targets = torch.tensor(y, dtype = dtype).reshape(int64 rows, 1L)
          TargetLengths = None }

    /// The blank, the eight symbols 1–8 and the delimiter 9 of the copy task.
    let copySymbols = 10

    /// B sequences of the copy task with delay T: inputs [T + 20; B] and targets [T + 20; B] (int64).
    [<CompiledName("CopyBatch")>]
    let copyBatch (seed: uint64) (rows: int) (delay: int) : Batch =
        Check.positive "rows" rows
        Check.positive "delay" delay
        let rng = SplitMix(seed)
        let n = delay + 20
        let x = Array.zeroCreate<int64> (n * rows)
        let y = Array.zeroCreate<int64> (n * rows)
        for b in 0 .. rows - 1 do
            for p in 0 .. 9 do
                let s = int64 (between rng 1 8)
                x[p * rows + b] <- s
                y[(delay + 10 + p) * rows + b] <- s
            x[(delay + 9) * rows + b] <- 9L
        { Inputs = torch.tensor(x).reshape(int64 n, int64 rows)
          Lengths = None
          Targets = torch.tensor(y).reshape(int64 n, int64 rows)
          TargetLengths = None }

    let private checkName (name: string) =
        match (if isNull name then "" else name.Trim().ToLowerInvariant()) with
        | "adding" -> "adding"
        | "copy" -> "copy"
        | other -> Check.fail "Task" $"""Task: expected one of {String.Join(", ", names)}, but got '{other}'."""

    /// A batch of the task (adding: float32 vectors; copy: token ids) at length T.
    [<CompiledName("Batch")>]
    let batch (task: string) (seed: uint64) (rows: int) (steps: int) : Batch =
        match checkName task with
        | "adding" -> addingBatch torch.float32 seed rows steps
        | _ -> copyBatch seed rows steps

    /// The network the task trains for a cell kind of H units: vectors of width 2 → the cell → the last
    /// state → one value (adding), or one-hot over 10 → the cell → a prediction per step over 9 (copy).
    [<CompiledName("Spec")>]
    let spec (task: string) (kind: CellKind) (hidden: int) : NetworkSpec =
        Check.positive "hidden" hidden
        match checkName task with
        | "adding" ->
            { Input = InputLayer.Vectors 2; Layers = [ Layer.recurrent (CellKind.cell kind 2 hidden) ]; Dropout = 0.0
              Head = ManyToOne Last; Output = 1; Loss = MeanSquared }
        | _ ->
            { Input = OneHot copySymbols; Layers = [ Layer.recurrent (CellKind.cell kind copySymbols hidden) ]; Dropout = 0.0
              Head = PerStep; Output = 9; Loss = CrossEntropy }

    /// The task whose networks have this shape (Spec), if any: how `seqnets gradflow` finds data for a
    /// long-range checkpoint.
    [<CompiledName("TaskOf")>]
    let taskOf (spec: NetworkSpec) : string option =
        match spec.Input, spec.Head, spec.Output, spec.Loss with
        | InputLayer.Vectors 2, ManyToOne Last, 1, MeanSquared -> Some "adding"
        | OneHot 10, PerStep, 9, CrossEntropy -> Some "copy"
        | _ -> None

    /// The length of the task's sequences for T: T (adding) or T + 20 (copy).
    [<CompiledName("SequenceLength")>]
    let sequenceLength (task: string) (steps: int) = if checkName task = "adding" then steps else steps + 20

    /// The trivial baseline's loss at T: 1/6 (adding) or 10·log 8 / (T + 20) (copy).
    [<CompiledName("Baseline")>]
    let baseline (task: string) (steps: int) =
        if checkName task = "adding" then 1.0 / 6.0 else 10.0 * log 8.0 / float (steps + 20)

    /// D: the lag the task's information must travel at T (adding T/2, copy T + 10).
    [<CompiledName("DependencyLag")>]
    let dependencyLag (task: string) (steps: int) = if checkName task = "adding" then steps / 2 else steps + 10

    /// The held-out measure: (mean absolute error, or the share of recalled symbols right), loss.
    let private heldOut (task: string) (net: Network) (data: Batch) (steps: int) : float * float =
        use _ = torch.NewDisposeScope()
        let m = Heads.evaluate net net.DefaultPath data
        if task = "adding" then m.MeanAbsoluteError, m.Loss
        else
            let p = Heads.predict net net.DefaultPath data.Inputs None None
            let recalled = p.Values.narrow(0L, int64 (steps + 10), 10L)
            let truth = data.Targets.narrow(0L, int64 (steps + 10), 10L)
            (use r = recalled.eq(truth).to_type(torch.float64).mean() in r.item<float> ()), m.Loss

    let private solved (task: string) (value: float) = if task = "adding" then value < 0.04 else value >= 0.99

    let private seedOf (options: LongRangeOptions) (steps: int) (k: uint64) = options.Seed * 1_000_003UL + uint64 steps * 7_919UL + k

    /// The analysis options for a trained model: every lag, about four positions followed.
    let private analysisOptions (length: int) = { SensitivityOptions.Default with Stride = max 1 (length / 4) }

    let private validate (options: LongRangeOptions) =
        let task = checkName options.Task
        Check.positive "Hidden" options.Hidden
        Check.positive "Batch" options.Batch
        Check.positive "MaxSteps" options.MaxSteps
        Check.positive "EvaluateEvery" options.EvaluateEvery
        Check.positive "HeldOut" options.HeldOut
        Check.positive "AnalysisRows" options.AnalysisRows
        if not (options.LearningRate > 0.0 && Double.IsFinite options.LearningRate) then
            Check.fail "LearningRate" $"LearningRate: expected a positive finite rate, but got {options.LearningRate}."
        if not (options.MaxNorm > 0.0 && Double.IsFinite options.MaxNorm) then
            Check.fail "MaxNorm" $"MaxNorm: expected a positive finite threshold, but got {options.MaxNorm}."
        task

    let private checkLength (task: string) (steps: int) =
        let least = if task = "adding" then 2 else 1
        if steps < least then Check.fail "Lags" $"Lags: expected lengths T >= {least} for the {task} task, but got {steps}."

    /// Trains one (T, cell) of the task and measures it (writing its picture and checkpoint into
    /// options.Output when set).
    [<CompiledName("TrainOne")>]
    let trainOne (options: LongRangeOptions) (steps: int) (kind: CellKind) : LongRangeRow =
        use _ = SignalShield.enter ()
        Native.ensure ()
        let task = validate options
        checkLength task steps
        let sw = Stopwatch.StartNew()
        let length = sequenceLength task steps
        use net = new Network(spec task kind options.Hidden, torch.float32, options.Seed)
        let cellName = net.Cells[0].Name
        let model = $"{cellName}, T = {steps}"
        let config =
            { TrainingConfig.Default with
                Strategy = Full; Optimizer = Adam; LearningRate = options.LearningRate; Clipping = ByNorm options.MaxNorm
                Batch = options.Batch; SequenceLength = length; Seed = options.Seed }
        let heldOutData = batch task (UInt64.MaxValue - options.Seed - uint64 steps) options.HeldOut steps
        let analysisData = batch task (UInt64.MaxValue / 2UL - options.Seed - uint64 steps) options.AnalysisRows steps
        let flowOf (label: string) = { GradientFlow.ofNetwork (analysisOptions length) net analysisData with Model = label }
        let initialFlow = flowOf $"{model}, at initialisation"
        use trainer = new Trainer(net, GeneratedBatches(1_000_000, options.Batch, fun k -> batch task (seedOf options steps (uint64 k)) options.Batch steps), config)
        let mutable stepsTaken = 0
        let mutable result = heldOut task net heldOutData steps
        let mutable isSolved = false
        while not isSolved && stepsTaken < options.MaxSteps do
            let r = trainer.Step()
            stepsTaken <- r.Step
            if not (isNull options.Progress) then options.Progress.Invoke(model, r.Step, r.Loss)
            if stepsTaken % options.EvaluateEvery = 0 || stepsTaken = options.MaxSteps then
                result <- heldOut task net heldOutData steps
                isSolved <- solved task (fst result)
        let flow = flowOf $"{model}, trained {stepsTaken} steps"
        let D = dependencyLag task steps
        let far (r: SensitivityReport) = if D <= r.Truncation.Length then r.Truncation[D - 1].Discarded else 0.0
        let picture, checkpoint =
            match options.Output with
            | None -> None, None
            | Some dir ->
                Directory.CreateDirectory dir |> ignore
                let stemName = $"{task}-T{steps}-{Plots.stem cellName}"
                let png = Path.Combine(dir, stemName + ".png")
                Plots.lags LossGradient png [ initialFlow; flow ]
                let ckpt = Path.Combine(dir, stemName + ".ckpt")
                Checkpoint.saveNetwork ckpt net None
                Some png, Some ckpt
        { Task = task
          Lag = steps
          Cell = cellName
          Solved = isSolved
          Steps = stepsTaken
          Measure = (if task = "adding" then "mean absolute error" else "recalled symbols right")
          Value = fst result
          Loss = snd result
          Baseline = baseline task steps
          DependencyLag = D
          FarShareAtInit = far initialFlow
          FarShare = far flow
          Seconds = sw.Elapsed.TotalSeconds
          InitialFlow = initialFlow
          Flow = flow
          Picture = picture
          Checkpoint = checkpoint }

    /// The claim a run checks, from its rows: at the shortest T every cell learns something — its
    /// held-out loss is below the trivial baseline's. What happens at longer T is measured and
    /// reported (the table, the pictures), not assumed.
    let private claimOf (rows: LongRangeRow list) : string * bool =
        let shortest = rows |> List.map _.Lag |> List.min
        let beats = rows |> List.filter (fun r -> r.Lag = shortest) |> List.forall (fun r -> r.Loss < r.Baseline)
        $"at the shortest T = {shortest} every cell's held-out loss is below the trivial baseline's", beats

    /// Trains and measures every (T, cell) of the options, T outermost.
    [<CompiledName("Run")>]
    let run (options: LongRangeOptions) : LongRangeReport =
        use _ = SignalShield.enter ()
        Native.ensure ()
        let task = validate options
        Check.notNull "Lags" options.Lags
        Check.notNull "Cells" options.Cells
        if options.Lags.IsEmpty then Check.fail "Lags" "Lags: expected at least one length T, but got none."
        if options.Cells.IsEmpty then Check.fail "Cells" "Cells: expected at least one cell kind, but got none."
        options.Lags |> List.iter (checkLength task)
        let sw = Stopwatch.StartNew()
        let rows = [ for t in options.Lags do for kind in options.Cells -> trainOne { options with Task = task } t kind ]
        let claim, holds = claimOf rows
        { Task = task; Rows = rows; Claim = claim; Holds = holds; Options = { options with Task = task }; Elapsed = sw.Elapsed }
