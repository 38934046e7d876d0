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
    let draw (options: SamplingOptions) (rng: SplitMix) (logits: float[]) : int =
        let scaled = logits |> Array.map (fun l -> l / options.Temperature)
        let keep =
            if options.TopK > 0 && options.TopK < scaled.Length then
                let threshold = (Array.sortDescending scaled)[options.TopK - 1]
                fun i -> scaled[i] >= threshold
            else fun _ -> true
        let m = scaled |> Array.max
        let weights = scaled |> Array.mapi (fun i l -> if keep i then exp (l - m) else 0.0)
        let total = Array.sum weights
        let u = rng.NextDouble() * total
        let mutable acc = 0.0
        let mutable pick = -1
        for i in 0 .. weights.Length - 1 do
            if pick < 0 && weights[i] > 0.0 then
                acc <- acc + weights[i]
                if u < acc then pick <- i
        if pick >= 0 then pick else Array.findIndexBack (fun w -> w > 0.0) weights

    /// Primes the model with `prime` (empty: a newline, or the first character if the vocabulary
    /// has none) and then draws `length` characters. Unknown characters in the prime are an
    /// ArgumentException naming them.
    [<CompiledName("Generate")>]
    let generate (model: CharModel) (vocabulary: Vocabulary) (prime: string) (length: int) (options: SamplingOptions) : string =
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
        let path = model.DefaultPath
        use _ = torch.no_grad ()
        let out = Text.StringBuilder(length)
        let readLogits (logits: torch.Tensor) = // [1; 1; V] → float[]
            (use l = logits[-1L, 0L].to_type torch.float64 in l.data<float>().ToArray())
        let mutable state, logits =
            use scope = torch.NewDisposeScope()
            let logits, finals = model.Forward(path, torch.tensor(ids).reshape(int64 ids.Length, 1L), model.ZeroState 1)
            finals |> Array.map (fun s -> s.MoveToOuterDisposeScope()), readLogits logits
        for _ in 1 .. length do
            let next = draw options rng logits
            out.Append(vocabulary.Char next) |> ignore
            use scope = torch.NewDisposeScope()
            let l, finals = model.Forward(path, torch.tensor([| int64 next |]).reshape(1L, 1L), state)
            for s in state do s.Dispose()
            state <- finals |> Array.map (fun s -> s.MoveToOuterDisposeScope())
            logits <- readLogits l
        for s in state do s.Dispose()
        out.ToString()
