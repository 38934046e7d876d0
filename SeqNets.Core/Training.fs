/// Training any network: BPTT strategies (full, truncated, randomized), gradient clipping,
/// optimizers and a learning-rate schedule, with reproducible randomness, over batches from a
/// source (streams of one text, or a generated task).
/// Legend: T time, B batch, V vocabulary, P parameters.
namespace SeqNets

open System
open TorchSharp

/// A small deterministic random number generator (SplitMix64) whose whole state is one number,
/// so that checkpoints can carry it.
[<Sealed>]
type SplitMix(seed: uint64) =
    let mutable state = seed
    /// The current state.
    member _.State with get () = state and set v = state <- v
    /// The next 64 random bits.
    [<System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    member _.NextUInt64() =
        state <- state + 0x9E3779B97F4A7C15UL
        let mutable z = state
        z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
        z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        z ^^^ (z >>> 31)
    /// A uniform double in [0, 1).
    member r.NextDouble() = float (r.NextUInt64() >>> 11) * (1.0 / 9007199254740992.0)

/// How far gradients flow back in time.
type BpttStrategy =
    /// Every batch is a fresh sequence from s_0 = 0, differentiated through all T steps.
    | Full
    /// The state is carried from batch to batch; the gradient is cut every τ steps and at every
    /// batch start, so it flows back at most τ steps (Williams & Peng's BPTT(τ, τ)).
    | Truncated of tau: int
    /// The state is carried; before each step after the first of a batch the gradient is cut with
    /// probability c = 1/meanLength and otherwise scaled by 1/(1 − c), which makes the expected
    /// gradient equal the full gradient over the batch (Tallec & Ollivier 2017).
    | Randomized of meanLength: float
    override s.ToString() =
        match s with
        | Full -> "full"
        | Truncated tau -> $"truncated:{tau}"
        | Randomized m -> $"""randomized:{m.ToString(Globalization.CultureInfo.InvariantCulture)}"""

[<RequireQualifiedAccess>]
module BpttStrategy =
    /// Parses full, truncated:τ, randomized:m.
    [<CompiledName("Parse")>]
    let parse (text: string) =
        let fail () = Check.fail "text" $"text: expected full, truncated:τ (τ >= 1) or randomized:m (m > 1), but got '{text}'."
        match (if isNull text then "" else text.Trim().ToLowerInvariant()).Split ':' with
        | [| "full" |] -> Full
        | [| "truncated"; n |] ->
            match Int32.TryParse n with
            | true, t when t >= 1 -> Truncated t
            | _ -> fail ()
        | [| "randomized"; m |] ->
            match Double.TryParse(m, Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
            | true, v when v > 1.0 -> Randomized v
            | _ -> fail ()
        | _ -> fail ()

    /// Whether the state carries over from one batch to the next.
    let carriesState strategy = match strategy with Full -> false | _ -> true

    /// The T weights on the gradient through the state into each step of one batch (see
    /// Network.Forward): w_1 = 0 always (the batch boundary), then per strategy.
    [<CompiledName("BoundaryWeights")>]
    let boundaryWeights (strategy: BpttStrategy) (steps: int) (rng: SplitMix) : float[] =
        Array.init steps (fun t ->
            if t = 0 then 0.0
            else
                match strategy with
                | Full -> 1.0
                | Truncated tau -> if t % tau = 0 then 0.0 else 1.0
                | Randomized m ->
                    let c = 1.0 / m
                    if rng.NextDouble() < c then 0.0 else 1.0 / (1.0 - c))

    /// The weight w(t, i) that boundary weights put on the closed-form term (Π_{j=i+1..t} c_j) b_i
    /// (1-based t and i): Π_{j=i+1..t} w_j. Bptt.byWeightedSum with it gives what training computes.
    [<CompiledName("TermWeight")>]
    let termWeight (weights: float[]) : int -> int -> float =
        fun t i -> Seq.fold (fun acc j -> acc * weights[j - 1]) 1.0 (seq { i + 1 .. t })

/// Gradient clipping (Goodfellow et al., Deep Learning, §10.11.1).
type Clipping =
    | NoClipping
    /// g ← g · min(1, τ/‖g‖): the global norm over all parameters is at most τ, direction kept.
    | ByNorm of maxNorm: float
    /// g_i ← clamp(g_i, −τ, τ).
    | ByValue of maxValue: float

[<RequireQualifiedAccess>]
module Clipping =
    /// Clips a flat gradient in place and returns its norm before clipping. A gradient with NaN
    /// or infinite entries is left as it is and reported by a non-finite norm.
    [<CompiledName("Apply")>]
    let apply (clipping: Clipping) (g: torch.Tensor) : float =
        use _ = torch.no_grad ()
        let norm = (use n = g.norm() in n.to_type(torch.float64).item<float> ())
        if Double.IsFinite norm then
            match clipping with
            | NoClipping -> ()
            | ByNorm maxNorm ->
                if not (maxNorm > 0.0) then Check.fail "maxNorm" $"maxNorm: expected a positive threshold, but got {maxNorm}."
                if norm > maxNorm then g.mul_ ((maxNorm / norm).ToScalar()) |> ignore
            | ByValue maxValue ->
                if not (maxValue > 0.0) then Check.fail "maxValue" $"maxValue: expected a positive threshold, but got {maxValue}."
                g.clamp_ ((-maxValue).ToScalar(), maxValue.ToScalar()) |> ignore
        norm

/// The update rule.
type OptimizerKind =
    /// SGD with (heavy-ball) momentum.
    | Sgd of momentum: float
    /// Adagrad, as in min-char-rnn (learning rate 0.1 there).
    | Adagrad
    /// RMSprop with decay α, as in char-rnn (α = 0.95, learning rate 2e-3 there).
    | RmsProp of alpha: float
    /// Adam (β = 0.9, 0.999).
    | Adam

/// The learning rate as a function of the step.
type Schedule =
    | Constant
    /// Multiply by factor every `every` steps.
    | StepDecay of every: int * factor: float
    /// Cosine from the base rate down to minFraction of it over `total` steps.
    | Cosine of total: int * minFraction: float

[<RequireQualifiedAccess>]
module Schedule =
    /// The learning rate at a (0-based) step.
    [<CompiledName("Rate")>]
    let rate (schedule: Schedule) (baseRate: float) (step: int) =
        match schedule with
        | Constant -> baseRate
        | StepDecay(every, factor) -> baseRate * Math.Pow(factor, float (step / max 1 every))
        | Cosine(total, minFraction) ->
            let p = min 1.0 (float step / float (max 1 total))
            baseRate * (minFraction + (1.0 - minFraction) * 0.5 * (1.0 + cos (Math.PI * p)))

[<RequireQualifiedAccess>]
module OptimizerKind =
    /// Parses sgd, sgd:momentum, adagrad, rmsprop, rmsprop:alpha, adam.
    [<CompiledName("Parse")>]
    let parse (text: string) =
        let number (s: string) = Double.Parse(s, Globalization.CultureInfo.InvariantCulture)
        match (if isNull text then "" else text.Trim().ToLowerInvariant()).Split ':' with
        | [| "sgd" |] -> Sgd 0.9
        | [| "sgd"; m |] -> Sgd(number m)
        | [| "adagrad" |] -> Adagrad
        | [| "rmsprop" |] -> RmsProp 0.95
        | [| "rmsprop"; a |] -> RmsProp(number a)
        | [| "adam" |] -> Adam
        | _ -> Check.fail "text" $"text: expected sgd[:momentum], adagrad, rmsprop[:alpha] or adam, but got '{text}'."

    let internal create (kind: OptimizerKind) (lr: float) (parameters: Modules.Parameter) : Modules.OptimizerHelper =
        let ps = [ parameters ]
        match kind with
        | Sgd momentum -> torch.optim.SGD(ps, lr, momentum = momentum)
        | Adagrad -> torch.optim.Adagrad(ps, lr, eps = 1e-8)
        | RmsProp alpha -> torch.optim.RMSProp(ps, lr, alpha = alpha)
        | Adam -> torch.optim.Adam(ps, lr)

    let internal setRate (optimizer: torch.optim.Optimizer) (lr: float) =
        for g in optimizer.ParamGroups do
            g.LearningRate <- lr

/// Everything that decides how a model is trained.
type TrainingConfig =
    { Strategy: BpttStrategy
      Optimizer: OptimizerKind
      LearningRate: float
      Schedule: Schedule
      Clipping: Clipping
      /// B: parallel streams (rows) per batch.
      Batch: int
      /// T: steps per batch of a text (a generated task sets its own lengths).
      SequenceLength: int
      /// None: the fastest path that runs the strategy (randomized truncation: the step path).
      Path: ExecutionPath option
      /// Seeds every random choice of training (truncation points).
      Seed: uint64 }
    /// Truncated BPTT over T = 64, Adam 2e-3, clipping by norm 5, B = 32.
    static member Default =
        { Strategy = Truncated 64
          Optimizer = Adam
          LearningRate = 2e-3
          Schedule = Constant
          Clipping = ByNorm 5.0
          Batch = 32
          SequenceLength = 64
          Path = None
          Seed = 1UL }

/// What one training step did.
type StepReport =
    { /// 1-based step number.
      Step: int
      /// Mean cross-entropy over the batch, in nats.
      Loss: float
      /// Global gradient norm before clipping (NaN or ∞ when the gradient was not finite).
      GradientNorm: float
      /// False when the gradient had NaN or infinite entries and the update was skipped.
      Applied: bool
      LearningRate: float
      /// Items consumed: characters (T · B) for a text, real steps or rows for a task.
      Characters: int }

/// Where a trainer's batches come from.
type IBatchSource =
    /// Batches in one pass over the data.
    abstract Count: int
    /// Batch k (0 <= k < Count) of a pass.
    abstract Get: k: int -> Batch
    /// Whether row b of batch k + 1 continues row b of batch k (streams of one text), so that the
    /// final state of one batch is the right initial state of the next.
    abstract CarriesState: bool
    /// B: rows per batch.
    abstract Rows: int

/// B parallel streams over one sequence of token ids, read T steps at a time (Text.Batches):
/// PerStep batches whose targets are the next tokens, the state carried from batch to batch.
[<Sealed>]
type TextStreams(ids: TokenIds, batch: int, steps: int) =
    let batches = Batches(ids, batch, steps)
    /// Streams over ids held in an array.
    new(ids: int64[], batch: int, steps: int) = TextStreams(TokenIds.ofArray ids, batch, steps)
    /// The batches.
    member _.Batches = batches
    interface IBatchSource with
        member _.Count = batches.Count
        member _.Get k =
            let inputs, targets = batches.Get k
            { Inputs = inputs; Lengths = None; Targets = targets; TargetLengths = None }
        member _.CarriesState = true
        member _.Rows = batch

/// Batches made on demand by a function of their index (a generated task: batch k is the same
/// every time it is asked for).
[<Sealed>]
type GeneratedBatches(count: int, rows: int, make: int -> Batch) =
    do
        Check.positive "count" count
        Check.positive "rows" rows
        Check.notNull "make" make
    interface IBatchSource with
        member _.Count = count
        member _.Get k =
            if k < 0 || k >= count then raise (ArgumentOutOfRangeException("k", $"k: expected 0 <= k < {count}, but got {k}."))
            make k
        member _.CarriesState = false
        member _.Rows = rows

[<RequireQualifiedAccess>]
module Training =
    /// L = mean cross-entropy of logits [T; B; V] against targets [T; B].
    let crossEntropy (logits: torch.Tensor) (targets: torch.Tensor) =
        let V = logits.shape[2]
        torch.nn.functional.cross_entropy(logits.reshape(-1L, V), targets.reshape(-1L))

    /// One forward and backward pass of the network's head on a batch: leaves ∂L/∂(all parameters)
    /// in network.Parameters.grad (overwritten, not accumulated) and returns L and the final states
    /// (still attached).
    [<CompiledName("Gradient")>]
    let gradient (network: Network) (path: ExecutionPath) (batch: Batch) (states: torch.Tensor[] option)
                 (weights: float[] option) : float * torch.Tensor[] =
        use _ = SignalShield.enter ()
        let p = network.Parameters
        if not (isNull p.grad) && not p.grad.IsInvalid then p.grad.zero_ () |> ignore
        let loss, finals = Heads.loss network path batch states weights true
        loss.backward ()
        if path = Fused then network.CollectGradients()
        loss.to_type(torch.float64).item<float> (), finals

    /// Mean cross-entropy (nats per token) of a next-token network over up to maxBatches batches of
    /// ids (B streams of T steps), the state carried from batch to batch.
    [<CompiledName("Evaluate")>]
    let evaluate (network: Network) (path: ExecutionPath) (ids: TokenIds) (batch: int) (steps: int) (maxBatches: int) : float =
        use _ = SignalShield.enter ()
        use _ = torch.no_grad ()
        let batch = max 1 (int (min (int64 batch) ((ids.Length - 1L) / int64 steps)))
        if (ids.Length - 1L) / int64 batch < int64 steps then nan
        else
            let batches = Batches(ids, batch, steps)
            let mutable state = network.ZeroState batch
            let mutable total = 0.0
            let n = min maxBatches batches.Count
            for k in 0 .. n - 1 do
                use scope = torch.NewDisposeScope()
                let inputs, targets = batches.Get k
                let logits, finals = network.Forward(path, inputs, state)
                total <- total + (crossEntropy logits targets).to_type(torch.float64).item<float> ()
                state <- finals |> Array.map (fun s -> s.MoveToOuterDisposeScope())
            total / float n

    /// Whether the engine on the derivation trains this network faster than libtorch's fused kernels,
    /// as measured (docs/benchmarks.md): for GRU layers (1.52× the fused path at 1×256), not for LSTM
    /// (1.00× at 1×256, 0.90× at 2×512, where the GEMMs dominate) nor Elman (not measured).
    let private derivedBeatsFused (network: Network) =
        network.Cells |> Array.forall (fun c -> CellKind.ofCell c = Some GruPyTorch)

    /// The path a trainer takes: the one asked for, or the fastest correct one for the network and the
    /// strategy — the engine on the derivation where every layer is a built-in cell and libtorch has no
    /// kernel for them (the lecture's GRU, the multiplicative RNN), for randomized truncation (which the
    /// fused kernels cannot weight) and for GRU layers; libtorch's fused kernels for the other stacks they
    /// cover; otherwise the cells' equations step by step (user-defined cells, decoders with attention).
    [<CompiledName("ChoosePath")>]
    let choosePath (network: Network) (config: TrainingConfig) : ExecutionPath =
        match config.Path, config.Strategy with
        | Some p, _ -> p
        | None, _ when network.HasDerivedPath && (not network.HasFusedPath || derivedBeatsFused network) -> Derived
        | None, Randomized _ -> if network.HasDerivedPath then Derived else Step // the fused kernels cannot scale a gradient inside a sequence
        | None, _ -> network.DefaultPath

/// Trains a network on batches from a source, one batch per Step, with a BPTT strategy.
[<Sealed>]
type Trainer(network: Network, source: IBatchSource, config: TrainingConfig) =
    do
        Check.notNull "network" network
        Check.notNull "source" source
        if not (config.LearningRate > 0.0) || Double.IsInfinity config.LearningRate then
            Check.fail "LearningRate" $"LearningRate: expected a positive finite rate, but got {config.LearningRate}."
        match config.Strategy with
        | Truncated tau when tau < 1 -> Check.fail "Strategy" $"Strategy: expected τ >= 1, but got {tau}."
        | Randomized m when not (m > 1.0) -> Check.fail "Strategy" $"Strategy: expected a mean length > 1, but got {m}."
        | _ -> ()
        match config.Strategy with
        | Truncated _ | Randomized _ when network.IsBidirectional ->
            Check.fail "Strategy" $"Strategy: {config.Strategy} BPTT cuts the gradient through time inside a sequence, but a bidirectional layer reads the whole sequence both ways; use full BPTT."
        | _ -> ()
        match network.Spec.Head, config.Strategy with
        | (OneToOne | OneToMany _ | EncoderDecoder _), (Truncated _ | Randomized _) ->
            Check.fail "Strategy" $"Strategy: {config.Strategy} BPTT applies to heads that read a sequence step by step (PerStep, ManyToOne), not to {network.Spec.Head}; use full BPTT."
        | _ -> ()
    let path = Training.choosePath network config
    do
        match path, config.Strategy with
        | Fused, Randomized _ -> Check.fail "Path" "Path: randomized truncation scales gradients inside a sequence, which the fused kernels cannot; use the derived path (the automatic choice does, for built-in cells) or the step path."
        | Fused, _ when not network.HasFusedPath ->
            Check.fail "Path" "Path: the fused path needs layers that match one libtorch module (elman, gru or lstm of one hidden size, one direction or both concatenated); this network's do not, so use the step path."
        | Derived, _ when not network.HasDerivedPath ->
            Check.fail "Path" "Path: the derived path runs networks whose every recurrent layer is a built-in cell (elman-tanh, elman-relu, gru-pytorch, gru-lecture, lstm, mrnn) and no decoder with attention; this network has another, so use the step path."
        | _ -> ()
    let optimizer = OptimizerKind.create config.Optimizer config.LearningRate network.Parameters
    let rng = SplitMix(config.Seed)
    let carries = source.CarriesState && BpttStrategy.carriesState config.Strategy
    let detachAll (states: torch.Tensor[]) = states |> Array.map (fun s -> s.detach ())
    let mutable state = network.ZeroState source.Rows
    let mutable step = 0
    let mutable position = 0
    let mutable skipped = 0

    /// Trains a next-token network on B streams of a text's ids (config.Batch streams of
    /// config.SequenceLength steps).
    new(network: Network, trainIds: TokenIds, config: TrainingConfig) =
        Check.notNull "trainIds" trainIds
        new Trainer(network, TextStreams(trainIds, config.Batch, config.SequenceLength), config)

    /// Trains a next-token network on B streams of ids held in an array.
    new(network: Network, trainIds: int64[], config: TrainingConfig) =
        Check.notNull "trainIds" trainIds
        new Trainer(network, TextStreams(TokenIds.ofArray trainIds, config.Batch, config.SequenceLength), config)

    /// The network being trained.
    member _.Network = network
    member _.Config = config
    /// Where the batches come from.
    member _.Source = source
    /// The path in use.
    member _.Path = path
    /// Steps taken so far.
    member _.StepCount = step
    /// Updates skipped because the gradient was not finite.
    member _.SkippedUpdates = skipped
    /// Batches in one pass over the data.
    member _.BatchesPerEpoch = source.Count
    /// The optimizer (its state is saved in checkpoints).
    member _.Optimizer = optimizer
    /// The random generator's state (saved in checkpoints).
    member _.RandomState with get () = rng.State and set v = rng.State <- v
    /// The batch index the next step reads.
    member _.Position
        with get () = position
        and set v =
            if v < 0 then Check.fail "Position" $"Position: expected a non-negative batch index, but got {v}."
            position <- v % source.Count
    /// The carried state of every layer and direction (in the order of Network.Cells).
    member _.State
        with get () = state
        and set (v: torch.Tensor[]) =
            Check.notNull "State" v
            if v.Length <> state.Length then Check.fail "State" $"State: expected {state.Length} states, but got {v.Length}."
            state <- v
    /// Restores the step counter (checkpoints).
    member _.SetStepCount(n: int) =
        if n < 0 then Check.fail "n" $"n: expected a non-negative step count, but got {n}."
        step <- n

    /// One step: a batch, a gradient under the strategy, clipping, an update.
    member _.Step() : StepReport =
        use _ = SignalShield.enter ()
        use scope = torch.NewDisposeScope()
        let batch = source.Get position
        let s0 = if carries then state else network.ZeroState source.Rows
        let T =
            match network.Spec.Head with
            | PerStep | ManyToOne _ -> int batch.Inputs.shape[0]
            | _ -> 1
        let weights =
            match network.Spec.Head with
            | PerStep | ManyToOne _ -> Some(BpttStrategy.boundaryWeights config.Strategy T rng)
            | _ -> None
        // Dropout masks and a decoder's scheduled teacher forcing draw from the dropout generator:
        // reseeding it from the run's state makes a resumed run draw what the uninterrupted one would.
        let scheduled = match network.Spec.Head with EncoderDecoder d -> d.TeacherForcing < 1.0 | _ -> false
        if network.Spec.Dropout > 0.0 || scheduled then network.ReseedDropout(rng.NextUInt64())
        let loss, finals = Training.gradient network path batch (Some s0) weights
        let norm = Clipping.apply config.Clipping network.Parameters.grad
        let lr = Schedule.rate config.Schedule config.LearningRate step
        let applied = Double.IsFinite norm && Double.IsFinite loss
        if applied then
            OptimizerKind.setRate optimizer lr
            optimizer.step () |> ignore
        else
            skipped <- skipped + 1
        if carries then
            let carried = detachAll finals |> Array.map (fun s -> s.MoveToOuterDisposeScope())
            for s in state do s.Dispose()
            state <- carried
        position <- (position + 1) % source.Count
        step <- step + 1
        let items =
            match batch.Lengths, network.Spec.Head with
            | Some ls, (PerStep | ManyToOne _) -> int (Array.sum ls)
            | None, (PerStep | ManyToOne _) -> int batch.Inputs.shape[0] * int batch.Inputs.shape[1]
            | _ -> source.Rows
        { Step = step; Loss = loss; GradientNorm = norm; Applied = applied; LearningRate = lr
          Characters = items }

    interface IDisposable with
        member _.Dispose() =
            optimizer.Dispose()
            for s in state do s.Dispose()
