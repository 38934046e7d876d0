/// Training a character model: BPTT strategies (full, truncated, randomized), gradient clipping,
/// optimizers and a learning-rate schedule, with reproducible randomness.
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
    /// CharModel.Forward): w_1 = 0 always (the batch boundary), then per strategy.
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
      /// B: parallel streams per batch.
      Batch: int
      /// T: steps per batch.
      SequenceLength: int
      /// None: the model's fastest path.
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
      /// Characters consumed (T · B).
      Characters: int }

[<RequireQualifiedAccess>]
module Training =
    /// L = mean cross-entropy of logits [T; B; V] against targets [T; B].
    let crossEntropy (logits: torch.Tensor) (targets: torch.Tensor) =
        let V = logits.shape[2]
        torch.nn.functional.cross_entropy(logits.reshape(-1L, V), targets.reshape(-1L))

    /// One forward and backward pass: leaves ∂L/∂(all parameters) in model.Parameters.grad
    /// (overwritten, not accumulated) and returns L and the final states (still attached).
    [<CompiledName("Gradient")>]
    let gradient (model: CharModel) (path: ExecutionPath) (inputs: torch.Tensor) (targets: torch.Tensor)
                 (states: torch.Tensor[]) (weights: float[]) : float * torch.Tensor[] =
        use _ = SignalShield.enter ()
        let p = model.Parameters
        if not (isNull p.grad) && not p.grad.IsInvalid then p.grad.zero_ () |> ignore
        let logits, finals = model.Forward(path, inputs, states, weights)
        let loss = crossEntropy logits targets
        loss.backward ()
        if path = Fused then model.CollectGradients()
        loss.to_type(torch.float64).item<float> (), finals

    /// Mean cross-entropy (nats per character) over up to maxBatches batches of ids, state carried.
    [<CompiledName("Evaluate")>]
    let evaluate (model: CharModel) (path: ExecutionPath) (ids: int64[]) (batch: int) (steps: int) (maxBatches: int) : float =
        use _ = SignalShield.enter ()
        use _ = torch.no_grad ()
        let batch = max 1 (min batch ((ids.Length - 1) / steps))
        if (ids.Length - 1) / batch < steps then nan
        else
            let batches = Batches(ids, batch, steps)
            let mutable state = model.ZeroState batch
            let mutable total = 0.0
            let n = min maxBatches batches.Count
            for k in 0 .. n - 1 do
                use scope = torch.NewDisposeScope()
                let inputs, targets = batches.Get k
                let logits, finals = model.Forward(path, inputs, state)
                total <- total + (crossEntropy logits targets).to_type(torch.float64).item<float> ()
                state <- finals |> Array.map (fun s -> s.MoveToOuterDisposeScope())
            total / float n

/// Trains a model on a sequence of character ids, one batch per Step.
[<Sealed>]
type Trainer(model: CharModel, trainIds: int64[], config: TrainingConfig) =
    do
        Check.notNull "model" model
        Check.notNull "trainIds" trainIds
        if not (config.LearningRate > 0.0) then
            Check.fail "LearningRate" $"LearningRate: expected a positive rate, but got {config.LearningRate}."
        match config.Strategy with
        | Truncated tau when tau < 1 -> Check.fail "Strategy" $"Strategy: expected τ >= 1, but got {tau}."
        | Randomized m when not (m > 1.0) -> Check.fail "Strategy" $"Strategy: expected a mean length > 1, but got {m}."
        | _ -> ()
    let path = defaultArg config.Path model.DefaultPath
    do
        match path, config.Strategy with
        | Fused, Randomized _ -> Check.fail "Path" "Path: randomized truncation scales gradients inside a sequence, which the fused kernels cannot; use the step path."
        | Fused, _ when not model.HasFusedPath -> Check.fail "Path" $"Path: the fused path needs elman, gru or lstm, but the model is {model.Config.Kind}."
        | _ -> ()
    let batches = Batches(trainIds, config.Batch, config.SequenceLength)
    let optimizer = OptimizerKind.create config.Optimizer config.LearningRate model.Parameters
    let rng = SplitMix(config.Seed)
    let detachAll (states: torch.Tensor[]) = states |> Array.map (fun s -> s.detach ())
    let mutable state = model.ZeroState config.Batch
    let mutable step = 0
    let mutable position = 0
    let mutable skipped = 0

    /// The model being trained.
    member _.Model = model
    member _.Config = config
    /// The path in use.
    member _.Path = path
    /// Steps taken so far.
    member _.StepCount = step
    /// Updates skipped because the gradient was not finite.
    member _.SkippedUpdates = skipped
    /// Batches in one pass over the training text.
    member _.BatchesPerEpoch = batches.Count
    /// The optimizer (its state is saved in checkpoints).
    member _.Optimizer = optimizer
    /// The random generator's state (saved in checkpoints).
    member _.RandomState with get () = rng.State and set v = rng.State <- v
    /// The batch index the next step reads.
    member _.Position with get () = position and set v = position <- v % batches.Count
    /// The carried state of every layer.
    member _.State with get () = state and set (v: torch.Tensor[]) = state <- v
    /// Restores the step counter (checkpoints).
    member _.SetStepCount(n: int) = step <- n

    /// One step: a batch, a gradient under the strategy, clipping, an update.
    member _.Step() : StepReport =
        use _ = SignalShield.enter ()
        use scope = torch.NewDisposeScope()
        let inputs, targets = batches.Get position
        let s0 = if BpttStrategy.carriesState config.Strategy then state else model.ZeroState config.Batch
        let weights = BpttStrategy.boundaryWeights config.Strategy config.SequenceLength rng
        let loss, finals = Training.gradient model path inputs targets s0 weights
        let norm = Clipping.apply config.Clipping model.Parameters.grad
        let lr = Schedule.rate config.Schedule config.LearningRate step
        let applied = Double.IsFinite norm && Double.IsFinite loss
        if applied then
            OptimizerKind.setRate optimizer lr
            optimizer.step () |> ignore
        else
            skipped <- skipped + 1
        let carried = detachAll finals |> Array.map (fun s -> s.MoveToOuterDisposeScope())
        for s in state do s.Dispose()
        state <- carried
        position <- (position + 1) % batches.Count
        step <- step + 1
        { Step = step; Loss = loss; GradientNorm = norm; Applied = applied; LearningRate = lr
          Characters = config.Batch * config.SequenceLength }

    interface IDisposable with
        member _.Dispose() =
            optimizer.Dispose()
            for s in state do s.Dispose()
