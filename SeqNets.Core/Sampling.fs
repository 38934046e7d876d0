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
    let generate (model: CharModel) (vocabulary: Vocabulary) (prime: string) (length: int) (options: SamplingOptions) : string =
        use _ = SignalShield.enter ()
        Check.notNull "model" model
        Check.notNull "vocabulary" vocabulary
        checkOptions options
        if length < 0 then Check.fail "length" $"length: expected a non-negative count, but got {length}."
        if vocabulary.Size <> model.Config.VocabularySize then
            Check.fail "vocabulary" $"vocabulary: expected {model.Config.VocabularySize} characters to match the model, but got {vocabulary.Size}."
        let prime =
            match prime with
            | null | "" -> if vocabulary.Contains '\n' then "\n" else string vocabulary.Characters[0]
            | p -> p
        let ids = Vocabulary.encode vocabulary prime
        let rng = SplitMix(options.Seed)
        use _ = torch.no_grad ()
        let out = Text.StringBuilder(length)
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
        if staged && model.DType = torch.float32 then
            // float32: the whole step in .NET arrays (FastSampler), no libtorch call per character.
            let fast = FastSampler.Create model
            fast.SetState state
            for _ in 1 .. length do
                let next = draw options rng logits
                out.Append(vocabulary.Char next) |> ignore
                let l = fast.Step next
                for k in 0 .. l.Length - 1 do logits[k] <- float l[k]
        elif staged then
            // Per character: a row of the first layer's input table, one projected step per layer,
            // the output layer — the views and the table are made once.
            let V = int64 model.Config.VocabularySize
            let table = cells[0].InputProjection.Value (model.CellParameters 0) (torch.eye(V, dtype = model.DType)) // [V; G]
            let steps = cells |> Array.mapi (fun l c -> c.ProjectedTransition.Value (model.CellParameters l))
            let projections = cells |> Array.mapi (fun l c -> c.InputProjection.Value (model.CellParameters l))
            let wo = model.OutputParameters
            for _ in 1 .. length do
                let next = draw options rng logits
                out.Append(vocabulary.Char next) |> ignore
                use scope = torch.NewDisposeScope()
                let mutable px = table.narrow(0L, int64 next, 1L) // [1; G]
                let finals = Array.zeroCreate cells.Length
                for l in 0 .. cells.Length - 1 do
                    let s = steps[l] px state[l]
                    finals[l] <- s
                    let h = Cell.output cells[l] s // [1; H]
                    if l + 1 < cells.Length then px <- projections[l + 1] h
                    else logits <- readLogits (OutputLayer.apply model.Output wo h)
                for s in state do s.Dispose()
                state <- finals |> Array.map (fun s -> s.MoveToOuterDisposeScope())
            table.Dispose()
        else
            for _ in 1 .. length do
                let next = draw options rng logits
                out.Append(vocabulary.Char next) |> ignore
                use scope = torch.NewDisposeScope()
                let l, finals = model.Forward(Step, torch.tensor([| int64 next |]).reshape(1L, 1L), state)
                for s in state do s.Dispose()
                state <- finals |> Array.map (fun s -> s.MoveToOuterDisposeScope())
                logits <- readLogits l
        for s in state do s.Dispose()
        out.ToString()
