/// Sequence to sequence as values and pipelines, for F# scripts:
///
///   let pairs = [ for w in words -> Translator.chars w, Translator.chars (String(Array.rev (w.ToCharArray()))) ]
///   use model =
///       { Translator.configOf pairs with Hidden = 24; MaxLength = 12 }
///       |> Translator.create 1
///       |> Translator.fit 300 { TrainingConfig.Default with Strategy = Full; Batch = 32; LearningRate = 1e-2 } pairs
///   model |> Translator.translate [ Translator.chars "abc" ]
///
/// A Translator is a seq2seq network with its two token vocabularies; the functions take it last.
/// Everything here is a short translation onto SeqNets' Seq2Seq, Heads, Trainer and Checkpoint.
namespace SeqNets.FSharp

open System
open SeqNets

/// A seq2seq network with its source and target vocabularies (dispose it: it owns the network).
[<NoComparison; NoEquality>]
type Translator =
    { /// The encoder–decoder.
      Network: Network
      /// The vocabulary of the sources.
      Source: TokenVocabulary
      /// The vocabulary of the targets.
      Target: TokenVocabulary }
    /// The longest target it produces and trains on, <eos> included.
    member t.MaxLength = match t.Network.Spec.Head with EncoderDecoder d -> d.MaxLength | _ -> 0
    interface IDisposable with
        member t.Dispose() = (t.Network :> IDisposable).Dispose()

[<RequireQualifiedAccess>]
module Translator =
    /// A text as tokens of one character (Unicode scalar value) each.
    [<CompiledName("Chars")>]
    let chars (text: string) : string list = TokenVocabulary.characters text

    /// The default configuration (Seq2SeqConfig.Create) over the tokens the pairs use, each side its own.
    [<CompiledName("ConfigOf")>]
    let configOf (pairs: (string list * string list) list) : Seq2SeqConfig =
        Args.notNull (nameof pairs) pairs
        if pairs.IsEmpty then Args.fail (nameof pairs) "pairs: expected at least one (source, target) pair, but got none."
        Seq2SeqConfig.Create(TokenVocabulary.ofTokens (List.collect fst pairs), TokenVocabulary.ofTokens (List.collect snd pairs))

    /// A float32 model of the configuration, its parameters drawn from the seed.
    [<CompiledName("Create")>]
    let create (seed: int) (config: Seq2SeqConfig) : Translator =
        let spec = Seq2Seq.spec config
        { Network = new Network(spec, TorchSharp.torch.float32, uint64 seed); Source = config.Source; Target = config.Target }

    /// Trains for steps steps on batches of config.Batch pairs drawn (with replacement, seeded by
    /// config.Seed and the step) from pairs, and returns the model. ArgumentException naming the pair
    /// for an empty source, an unknown token or a target too long for the model.
    [<CompiledName("Fit")>]
    let fit (steps: int) (config: TrainingConfig) (pairs: (string list * string list) list) (t: Translator) : Translator =
        Args.positive (nameof steps) steps
        Args.notNull (nameof pairs) pairs
        let rows = Array.ofList pairs
        // Every pair is checked once, up front, so a bad one is named before any step.
        let whole = Seq2Seq.batch t.Source t.Target t.MaxLength pairs
        whole.Inputs.Dispose()
        whole.Targets.Dispose()
        let make (k: int) =
            let rng = SplitMix(config.Seed * 0x9E3779B97F4A7C15UL + uint64 k)
            Seq2Seq.batch t.Source t.Target t.MaxLength [ for _ in 1 .. config.Batch -> rows[int (rng.NextUInt64() % uint64 rows.Length)] ]
        use trainer = new Trainer(t.Network, GeneratedBatches(1_000_000, config.Batch, make), config)
        for _ in 1 .. steps do trainer.Step() |> ignore
        t

    /// Greedy translations of sources, each with its attention weights [output step; source token].
    [<CompiledName("Translate")>]
    let translate (sources: string list list) (t: Translator) : (string list * float[][]) list =
        Args.notNull (nameof sources) sources
        if sources.IsEmpty then [] else Seq2Seq.translate t.Network t.Source t.Target sources

    /// Beam search for one source: (output tokens, hypothesis) best first.
    [<CompiledName("Beam")>]
    let beam (options: BeamOptions) (source: string list) (t: Translator) : (string list * Hypothesis) list =
        [ for h in Seq2Seq.beam t.Network t.Source source options -> TokenVocabulary.decode t.Target h.Tokens, h ]

    /// The share of pairs whose greedy translation is exactly the target.
    [<CompiledName("ExactMatch")>]
    let exactMatch (pairs: (string list * string list) list) (t: Translator) : float =
        Args.notNull (nameof pairs) pairs
        if pairs.IsEmpty then Args.fail (nameof pairs) "pairs: expected at least one (source, target) pair, but got none."
        List.map2 (fun (_, target) (output, _) -> if output = target then 1.0 else 0.0) pairs (translate (List.map fst pairs) t)
        |> List.average

    /// Saves the model with both vocabularies to path, atomically, and returns it.
    [<CompiledName("Save")>]
    let save (path: string) (t: Translator) : Translator =
        Seq2Seq.save path t.Network t.Source t.Target
        t

    /// Loads a model saved with its vocabularies; CheckpointException for a file that cannot be used.
    [<CompiledName("Load")>]
    let load (path: string) : Translator =
        let network, source, target = Seq2Seq.load path
        { Network = network; Source = source; Target = target }
