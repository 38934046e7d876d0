/// Generating text one character at a time from a primed state (Karpathy's char-rnn sampling):
/// softmax(y_t / temperature), optionally restricted to the k most likely characters, drawn
/// with a seeded generator.
namespace SeqNets

open System
open TorchSharp

/// How characters are drawn.
type SamplingOptions =
    { /// Divides the logits: < 1 sharper, > 1 flatter; must be positive.
      Temperature: float
      /// Keep only the k most likely characters (0: all).
      TopK: int
      Seed: uint64 }
    static member Default = { Temperature = 0.8; TopK = 0; Seed = 1UL }

[<RequireQualifiedAccess>]
module Sampling =
    /// The most characters one call generates (a .NET string's length limit, rounded down).
    [<Literal>]
    let MaxLength = 1_000_000_000

    let internal checkOptions (o: SamplingOptions) =
        if not (o.Temperature > 0.0) || Double.IsInfinity o.Temperature then
            Check.fail "Temperature" $"Temperature: expected a positive finite value, but got {o.Temperature}."
        if o.TopK < 0 then Check.fail "TopK" $"TopK: expected 0 (all) or a positive count, but got {o.TopK}."

    /// Draws an index from logits with temperature and top-k.
    [<CompiledName("Draw")>]
    [<System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let draw (options: SamplingOptions) (rng: SplitMix) (logits: float[]) : int =
        // Plain loops, no closures: this runs once per character and should be optimised code
        // from the first call.
        let n = logits.Length
        let threshold =
            if options.TopK > 0 && options.TopK < n then (Array.sortDescending logits)[options.TopK - 1]
            else Double.NegativeInfinity
        let mutable m = Double.NegativeInfinity
        for i in 0 .. n - 1 do
            if logits[i] > m then m <- logits[i]
        let weights = Array.zeroCreate<float> n
        let mutable total = 0.0
        for i in 0 .. n - 1 do
            if logits[i] >= threshold then
                weights[i] <- exp ((logits[i] - m) / options.Temperature) // softmax(y / temperature), unnormalised
                total <- total + weights[i]
        let u = rng.NextDouble() * total
        let mutable acc = 0.0
        let mutable pick = -1
        let mutable last = -1
        for i in 0 .. n - 1 do
            if weights[i] > 0.0 then
                last <- i
                if pick < 0 then
                    acc <- acc + weights[i]
                    if u < acc then pick <- i
        if pick >= 0 then pick else last

    /// Primes the model with `prime` (empty: a newline, or the first character if the vocabulary
    /// has none) and then draws `length` characters. Unknown characters in the prime are an
    /// ArgumentException naming them.
    [<CompiledName("Generate")>]
    [<System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)>]
    let generate (model: Network) (vocabulary: Vocabulary) (prime: string) (length: int) (options: SamplingOptions) : string =
        use _ = SignalShield.enter ()
        Check.notNull "model" model
        Check.notNull "vocabulary" vocabulary
        checkOptions options
        if length < 0 then Check.fail "length" $"length: expected a non-negative count, but got {length}."
        if length > MaxLength then
            Check.fail "length" $"length: expected at most {MaxLength} characters (what one .NET string holds), but got {length}."
        let spec = model.Spec
        let V =
            match InputLayer.vocabulary spec.Input, spec.Head, spec.Loss with
            | Some v, PerStep, CrossEntropy when spec.Output = v && not model.IsBidirectional -> v
            | _ ->
                Check.fail "model"
                    $"model: sampling feeds each drawn token back in, so it needs a next-token network (token input of V tokens, layers reading left to right, a per-step readout of V, cross-entropy), but got: {model.Describe()}."
        if vocabulary.Size <> V then
            Check.fail "vocabulary" $"vocabulary: expected {V} characters to match the model, but got {vocabulary.Size}."
        let prime =
            match prime with
            | null | "" -> if vocabulary.Contains '\n' then "\n" else vocabulary.TextOf 0
            | p -> p
        let ids = Vocabulary.encode vocabulary prime
        let nonFinite =
            use _ = torch.no_grad ()
            use bad = model.Parameters.isfinite().logical_not().sum()
            bad.item<int64> ()
        if nonFinite > 0L then
            Check.fail "model" $"model: expected finite parameters to sample from, but {nonFinite} of {model.ParameterCount} are NaN or infinite (training diverged; load an earlier checkpoint or lower the learning rate)."
        let rng = SplitMix(options.Seed)
        use _ = torch.no_grad ()
        let out = Text.StringBuilder(min length 65536)
        let readLogits (logits: torch.Tensor) = // [.., V] → the last row as float[]
            let V = logits.shape[int (logits.dim ()) - 1]
            use rows = logits.reshape(-1L, V)
            use last = rows[rows.shape[0] - 1L].to_type torch.float64
            last.data<float>().ToArray()
        // Prime with one pass over the prime text (the fastest path), then step one character at a time.
        let mutable state, logits =
            use scope = torch.NewDisposeScope()
            let logits, finals = model.Forward(model.DefaultPath, torch.tensor(ids).reshape(int64 ids.Length, 1L), model.ZeroState 1)
            finals |> Array.map (fun s -> s.MoveToOuterDisposeScope()), readLogits logits
        let cells = model.Cells
        let staged = cells |> Array.forall (fun c -> c.InputProjection.IsSome && c.ProjectedTransition.IsSome)
        if FastSampler.Supports model && model.DType = torch.float32 then
            // float32: the whole step in .NET arrays (FastSampler), no libtorch call per character.
            let fast = FastSampler.Create model
            fast.SetState state
            for _ in 1 .. length do
                let next = draw options rng logits
                out.Append(vocabulary.TextOf next) |> ignore
                let l = fast.Step next
                for k in 0 .. l.Length - 1 do logits[k] <- float l[k]
        elif staged then
            // Per character: a row of the first layer's input table, one projected step per layer,
            // the output layer — the views and the table are made once.
            let tokens =
                match spec.Input with
                | Embedding _ -> model.View "input.weight" // [V; E]
                | _ -> torch.eye(int64 V, dtype = model.DType) // [V; V]
            let table = cells[0].InputProjection.Value (model.LayerParameters 0) tokens // [V; G]
            let steps = cells |> Array.mapi (fun l c -> c.ProjectedTransition.Value (model.LayerParameters l))
            let projections = cells |> Array.mapi (fun l c -> c.InputProjection.Value (model.LayerParameters l))
            for _ in 1 .. length do
                let next = draw options rng logits
                out.Append(vocabulary.TextOf next) |> ignore
                use scope = torch.NewDisposeScope()
                let mutable px = table.narrow(0L, int64 next, 1L) // [1; G]
                let finals = Array.zeroCreate cells.Length
                for l in 0 .. cells.Length - 1 do
                    let s = steps[l] px state[l]
                    finals[l] <- s
                    let h = Cell.output cells[l] s // [1; H]
                    if l + 1 < cells.Length then px <- projections[l + 1] h
                    else logits <- readLogits (model.ApplyReadout h)
                for s in state do s.Dispose()
                state <- finals |> Array.map (fun s -> s.MoveToOuterDisposeScope())
            table.Dispose()
        else
            for _ in 1 .. length do
                let next = draw options rng logits
                out.Append(vocabulary.TextOf next) |> ignore
                use scope = torch.NewDisposeScope()
                let l, finals = model.Forward(Step, torch.tensor([| int64 next |]).reshape(1L, 1L), state)
                for s in state do s.Dispose()
                state <- finals |> Array.map (fun s -> s.MoveToOuterDisposeScope())
                logits <- readLogits l
        for s in state do s.Dispose()
        out.ToString()
