/// Sequence to sequence: batches of (source, target) pairs over token vocabularies (TokenVocabulary,
/// in Text.fs), the Sutskever encoder–decoder with or without attention as a network spec, saving and
/// loading a model with its two vocabularies, and the tasks it must solve (reversal, date
/// normalisation, addition), generated in code.
/// Legend: S source steps, T target steps, B batch, V vocabulary, E embedding, H hidden.
namespace SeqNets

open System
open System.Collections.Generic
open System.Diagnostics
open TorchSharp

/// The shape of an encoder–decoder.
type Seq2SeqConfig =
    { Source: TokenVocabulary
      Target: TokenVocabulary
      /// E: the width of both token embeddings.
      Embedding: int
      /// H: hidden units of every recurrent layer (a bidirectional encoder layer has H per direction).
      Hidden: int
      /// Recurrent layers of the encoder and of the decoder.
      Layers: int
      /// The cell family of every layer.
      Kind: CellKind
      BidirectionalEncoder: bool
      /// None: the plain Sutskever decoder, started from the bridged final state only.
      Attention: (AttentionStyle * Score) option
      /// The longest target, <eos> included.
      MaxLength: int
      TeacherForcing: float
      ReverseSource: bool }
    /// An LSTM encoder–decoder, E = 32, H = 64, one layer, bidirectional encoder, Luong attention
    /// (general score, input feeding), targets up to 32 tokens.
    static member Create(source: TokenVocabulary, target: TokenVocabulary) =
        { Source = source; Target = target; Embedding = 32; Hidden = 64; Layers = 1; Kind = Lstm
          BidirectionalEncoder = true; Attention = Some(Luong true, General); MaxLength = 32
          TeacherForcing = 1.0; ReverseSource = false }

[<RequireQualifiedAccess>]
module Seq2Seq =
    /// The network spec of a configuration: embedded source tokens → the encoder's layers → the
    /// decoder (embedded target tokens, attention if asked for) → a readout over the target tokens.
    [<CompiledName("Spec")>]
    let spec (c: Seq2SeqConfig) : NetworkSpec =
        Check.notNull "Source" c.Source
        Check.notNull "Target" c.Target
        Check.positive "Embedding" c.Embedding
        Check.positive "Hidden" c.Hidden
        Check.positive "Layers" c.Layers
        let direction = if c.BidirectionalEncoder then Bidirectional Concat else Forward
        let encoder = Layer.stack c.Layers direction c.Embedding (fun w -> CellKind.cell c.Kind w c.Hidden)
        let E = (List.last encoder).OutputWidth
        let first =
            match c.Attention with
            | None | Some(Luong false, _) -> c.Embedding
            | Some(Bahdanau, _) -> c.Embedding + E
            | Some(Luong true, _) -> c.Embedding + c.Hidden
        let decoderLayers = [ for l in 0 .. c.Layers - 1 -> Layer.recurrent (CellKind.cell c.Kind (if l = 0 then first else c.Hidden) c.Hidden) ]
        { Input = Embedding(c.Source.Size, c.Embedding)
          Layers = encoder
          Dropout = 0.0
          Head =
            EncoderDecoder
                { Input = Embedding(c.Target.Size, c.Embedding)
                  Layers = decoderLayers
                  Bridge = Projection
                  Bos = int TokenVocabulary.Bos
                  Eos = int TokenVocabulary.Eos
                  MaxLength = c.MaxLength
                  Attention = c.Attention
                  TeacherForcing = c.TeacherForcing
                  ReverseSource = c.ReverseSource }
          Output = c.Target.Size
          Loss = CrossEntropy }

    /// A batch of (source tokens, target tokens) pairs: sources padded with <pad> and their lengths,
    /// targets with <eos> appended, padded, and their lengths. ArgumentException for an empty
    /// source, an unknown token, or a target longer than maxLength (with <eos>).
    [<CompiledName("Batch")>]
    let batch (source: TokenVocabulary) (target: TokenVocabulary) (maxLength: int) (pairs: (string list * string list) list) : Batch =
        Check.notNull "pairs" pairs
        if pairs.IsEmpty then Check.fail "pairs" "pairs: expected at least one (source, target) pair, but got none."
        let rows =
            pairs |> List.mapi (fun i (s, t) ->
                if s.IsEmpty then Check.fail "pairs" $"pairs: expected a non-empty source, but pair {i} has none."
                if t.Length + 1 > maxLength then
                    Check.fail "pairs" $"pairs: expected targets of at most {maxLength - 1} tokens (MaxLength {maxLength} with <eos>), but pair {i} has {t.Length}."
                TokenVocabulary.encode source s, Array.append (TokenVocabulary.encode target t) [| TokenVocabulary.Eos |])
            |> Array.ofList
        let pad (xs: int64[][]) =
            let T, B = xs |> Array.map Array.length |> Array.max, xs.Length
            let data = Array.create (T * B) TokenVocabulary.Pad
            xs |> Array.iteri (fun b r -> r |> Array.iteri (fun t v -> data[t * B + b] <- v))
            torch.tensor(data).reshape(int64 T, int64 B), xs |> Array.map (fun r -> int64 r.Length)
        let s, sl = pad (rows |> Array.map fst)
        let t, tl = pad (rows |> Array.map snd)
        { Inputs = s; Lengths = Some sl; Targets = t; TargetLengths = Some tl }

    /// Greedy translations of sources (token lists), with the attention weights of every output
    /// token over the source tokens ([output; source] per row, empty without attention).
    [<CompiledName("Translate")>]
    let translate (net: Network) (source: TokenVocabulary) (target: TokenVocabulary) (sources: string list list) : (string list * float[][]) list =
        use _ = SignalShield.enter ()
        use _ = torch.no_grad ()
        use scope = torch.NewDisposeScope()
        let b = batch source target Int32.MaxValue [ for s in sources -> s, [] ]
        let p = Heads.predict net net.DefaultPath b.Inputs b.Lengths None
        let ids = p.Values // [T'; B]
        let B = int ids.shape[1]
        let alpha = p.Attention |> Option.map (fun a -> a.to_type(torch.float64))
        [ for r in 0 .. B - 1 ->
              let row = ids.select(1L, int64 r).data<int64>().ToArray()
              let tokens = TokenVocabulary.decode target row
              let n = int p.Lengths.Value[r]
              let S = int b.Lengths.Value[r]
              let weights =
                  match alpha with
                  | Some a -> [| for t in 0 .. n - 1 -> a[int64 t, int64 r].narrow(0L, 0L, int64 S).data<float>().ToArray() |]
                  | None -> [||]
              tokens, weights ]

    /// Beam search over one source (tokens) with the options: the hypotheses, best first; their
    /// Tokens are target ids (TokenVocabulary.decode gives the tokens). ArgumentException for an
    /// empty source, an unknown token or invalid options.
    [<CompiledName("Beam")>]
    let beam (net: Network) (source: TokenVocabulary) (sourceTokens: string list) (options: BeamOptions) : Hypothesis[] =
        use _ = SignalShield.enter ()
        Check.notNull "net" net
        Check.notNull "source" source
        Check.notNull "sourceTokens" sourceTokens
        if sourceTokens.IsEmpty then Check.fail "sourceTokens" "sourceTokens: expected a non-empty source, but got none."
        use scope = torch.NewDisposeScope()
        let ids = TokenVocabulary.encode source sourceTokens
        let inputs = torch.tensor(ids).reshape(int64 ids.Length, 1L) // [S; 1]
        (Heads.beam net net.DefaultPath inputs None options)[0]

    /// Saves a seq2seq network with its source and target vocabularies to path, atomically, so that
    /// Seq2Seq.load gives a model that translates the same. ArgumentException when the vocabularies
    /// do not fit the network; CheckpointWriteException when the file cannot be written.
    [<CompiledName("Save")>]
    let save (path: string) (net: Network) (source: TokenVocabulary) (target: TokenVocabulary) =
        Checkpoint.saveSeq2SeqNetwork path net source target

    /// Loads a seq2seq network and its (source, target) vocabularies from a checkpoint written by
    /// Seq2Seq.save (or saved with its token vocabularies by a trainer or session). A file without
    /// them, or one that cannot be used, raises CheckpointException naming the file and the problem.
    [<CompiledName("Load")>]
    let load (path: string) : Network * TokenVocabulary * TokenVocabulary =
        let c = Checkpoint.load path
        for s in c.State do s.Dispose()
        match c.Tokens with
        | Some(source, target) -> c.Network, source, target
        | None ->
            (c.Network :> IDisposable).Dispose()
            raise (CheckpointException(path, "holds no token vocabularies: it is not a sequence-to-sequence model saved with them (Seq2Seq.save)"))

/// A seq2seq task's measured line.
type Seq2SeqRow =
    { Model: string
      Data: string
      Measure: string
      Value: float }

/// What a seq2seq task run measured, with one example's attention weights for a heatmap.
type Seq2SeqReport =
    { Task: string
      Rows: Seq2SeqRow list
      Claim: string
      Holds: bool
      Steps: int
      Seed: uint64
      Elapsed: TimeSpan
      /// Examples (source tokens, output tokens, weights [output; source]) of the attention model.
      Examples: (string list * string list * float[][]) list }

/// How a seq2seq task trains.
type Seq2SeqOptions =
    { Steps: int
      Batch: int
      Hidden: int
      Seed: uint64
      /// Adam's learning rate at the first step; it decays along a cosine to 2% of it at the last.
      LearningRate: float
      /// The exact-match share the attention model must reach on held-out pairs for the claim to hold.
      Bar: float
      /// Called after every step with (model, step, loss); may be null.
      Progress: Action<string, int, float>
      /// Where the trained attention model is saved (Seq2Seq.save; Seq2Seq.load reads it back), or null.
      SavePath: string }
    /// 1,000 steps of 64 pairs, H = 64, Adam 5e-3 (cosine decay to 2% of it), seed 1, the bar at 99%;
    /// nothing saved.
    static member Default =
        { Steps = 1000; Batch = 64; Hidden = 64; Seed = 1UL; LearningRate = 5e-3; Bar = 0.99; Progress = null; SavePath = null }

[<RequireQualifiedAccess>]
module Seq2SeqTasks =
    /// The task names.
    let names = [ "reverse"; "dates"; "addition" ]

    /// The options docs/seq2seq.md reports for a task (seed 1, the bar at 99%): reverse 1,000 steps
    /// and dates 400, each at H = 64, batch 64, Adam 5e-3; addition, which must carry digits across the
    /// whole sum, 3,000 steps at H = 128, batch 128, Adam 3e-3.
    [<CompiledName("DefaultsFor")>]
    let defaultsFor (task: string) : Seq2SeqOptions =
        let d = Seq2SeqOptions.Default
        match task with
        | "reverse" -> d
        | "dates" -> { d with Steps = 400 }
        | "addition" -> { d with Steps = 3000; Hidden = 128; Batch = 128; LearningRate = 3e-3 }
        | _ -> Check.fail "task" $"""task: expected one of {String.Join(", ", names)}, but got '{task}'."""

    /// The training steps per model that docs/seq2seq.md reports for a task.
    [<CompiledName("DefaultSteps")>]
    let defaultSteps (task: string) = (defaultsFor task).Steps

    let private between (rng: SplitMix) (lo: int) (hi: int) = lo + int (rng.NextUInt64() % uint64 (hi - lo + 1))

    let private months = [| "January"; "February"; "March"; "April"; "May"; "June"; "July"; "August"; "September"; "October"; "November"; "December" |]
    let private days = [| "Monday"; "Tuesday"; "Wednesday"; "Thursday"; "Friday"; "Saturday"; "Sunday" |]

    /// A date in one of the human formats, and its ISO form.
    let date (rng: SplitMix) =
        let d = DateTime(1950, 1, 1).AddDays(float (between rng 0 36524)) // 1950 – 2049
        let m = months[d.Month - 1]
        let weekday = days[(int d.DayOfWeek + 6) % 7]
        let text =
            match between rng 0 6 with
            | 0 -> $"{d.Day} {m} {d.Year}"
            | 1 -> $"{d.Month:D2}/{d.Day:D2}/{d.Year % 100:D2}"
            | 2 -> $"{m.Substring(0, 3)} {d.Day}, {d.Year}"
            | 3 -> $"{d.Day:D2}.{d.Month:D2}.{d.Year}"
            | 4 -> $"{weekday}, {d.Day} {m.Substring(0, 3)} {d.Year}"
            | 5 -> $"{d.Day} {m.Substring(0, 3).ToLowerInvariant()} {d.Year}"
            | _ -> $"{m} {d.Day}, {d.Year}"
        text, d.ToString("yyyy-MM-dd", Globalization.CultureInfo.InvariantCulture)

    /// (source, target) pairs of a task, seeded.
    let pairs (task: string) (rng: SplitMix) (count: int) : (string * string) list =
        [ for _ in 1 .. count ->
              match task with
              | "reverse" ->
                  let s = String(Array.init (between rng 5 15) (fun _ -> char (int 'a' + between rng 0 11)))
                  s, String(Array.rev (s.ToCharArray()))
              | "dates" -> date rng
              | _ ->
                  let a, b = between rng 0 999, between rng 0 999
                  $"{a}+{b}", string (a + b) ]

    let private alphabet (task: string) =
        match task with
        | "reverse" -> [ for c in 'a' .. 'l' -> string c ], [ for c in 'a' .. 'l' -> string c ]
        | "dates" ->
            let source = (" ,./-0123456789" + String.concat "" months + String.concat "" days) |> Seq.distinct |> Seq.map string |> List.ofSeq
            let source = source @ [ for c in 'a' .. 'z' -> string c ] |> List.distinct
            source, [ for c in "-0123456789" -> string c ]
        | _ -> [ for c in "+0123456789" -> string c ], [ for c in "0123456789" -> string c ]

    /// Trains and measures a task: an attention model and (for reverse) the plain seq2seq beside it,
    /// exact match on held-out pairs never seen in training.
    [<CompiledName("Run")>]
    let run (task: string) (options: Seq2SeqOptions) : Seq2SeqReport =
        use _ = SignalShield.enter ()
        Native.ensure ()
        if not (List.contains task names) then Check.fail "task" $"""task: expected one of {String.Join(", ", names)}, but got '{task}'."""
        Check.positive "Steps" options.Steps
        Check.positive "Batch" options.Batch
        Check.positive "Hidden" options.Hidden
        if not (options.LearningRate > 0.0 && Double.IsFinite options.LearningRate) then
            Check.fail "LearningRate" $"LearningRate: expected a positive finite rate, but got {options.LearningRate}."
        let sw = Stopwatch.StartNew()
        let sourceTokens, targetTokens = alphabet task
        let sv, tv = TokenVocabulary.ofTokens sourceTokens, TokenVocabulary.ofTokens targetTokens
        // Held-out pairs first; training never draws one of their sources.
        let heldOut = pairs task (SplitMix(options.Seed ^^^ 0xABCDEFUL)) 1000 |> List.distinctBy fst
        let excluded = HashSet<string>(heldOut |> List.map fst)
        let trainingBatch (k: int) =
            let rng = SplitMix(options.Seed * 7919UL + uint64 k)
            let rows = pairs task rng (options.Batch * 2) |> List.filter (fun (s, _) -> not (excluded.Contains s)) |> List.truncate options.Batch
            Seq2Seq.batch sv tv 32 [ for s, t in rows -> TokenVocabulary.characters s, TokenVocabulary.characters t ]
        let configFor attention =
            { Seq2SeqConfig.Create(sv, tv) with
                Hidden = options.Hidden; Embedding = 32; Attention = attention
                BidirectionalEncoder = true; MaxLength = 32 }
        let trainModel (attention: (AttentionStyle * Score) option) =
            let net = new Network(Seq2Seq.spec (configFor attention), torch.float32, options.Seed)
            let config = { TrainingConfig.Default with Strategy = Full; LearningRate = options.LearningRate; Schedule = Cosine(options.Steps, 0.02); Batch = options.Batch; Seed = options.Seed }
            use trainer = new Trainer(net, GeneratedBatches(1_000_000, options.Batch, trainingBatch), config)
            let name = net.Describe()
            for _ in 1 .. options.Steps do
                let r = trainer.Step()
                if not (isNull options.Progress) then options.Progress.Invoke(name, r.Step, r.Loss)
            net
        let exact (net: Network) (subset: (string * string) list) =
            subset
            |> List.chunkBySize 250
            |> List.collect (fun chunk ->
                let outs = Seq2Seq.translate net sv tv [ for s, _ in chunk -> TokenVocabulary.characters s ]
                List.map2 (fun (_, t) (o: string list * float[][]) -> if String.concat "" (fst o) = t then 1.0 else 0.0) chunk outs)
            |> List.average
        let attention = Some(Luong true, General)
        use attended = trainModel attention
        if not (String.IsNullOrEmpty options.SavePath) then Seq2Seq.save options.SavePath attended sv tv
        let rows =
            [ yield { Model = attended.Describe(); Data = $"{heldOut.Length} held-out pairs"; Measure = "exact match"; Value = exact attended heldOut }
              if task = "reverse" then
                  use plain = trainModel None
                  yield { Model = plain.Describe(); Data = $"{heldOut.Length} held-out pairs"; Measure = "exact match"; Value = exact plain heldOut }
                  for lo, hi in [ 5, 7; 8, 10; 11, 13; 14, 15 ] do
                      let subset = heldOut |> List.filter (fun (s, _) -> s.Length >= lo && s.Length <= hi)
                      yield { Model = "plain seq2seq (no attention)"; Data = $"held-out, lengths {lo}–{hi}"; Measure = "exact match"; Value = exact plain subset }
                      yield { Model = "with attention"; Data = $"held-out, lengths {lo}–{hi}"; Measure = "exact match"; Value = exact attended subset } ]
        let examples =
            let shown = heldOut |> List.truncate 3
            Seq2Seq.translate attended sv tv [ for s, _ in shown -> TokenVocabulary.characters s ]
            |> List.map2 (fun (s, _) (o, w) -> TokenVocabulary.characters s, o, w) shown
        let bar = options.Bar
        let claim = $"the attention model gets at least {bar:P0} of held-out pairs exactly right"
        { Task = task; Rows = rows; Claim = claim; Holds = rows.Head.Value >= bar; Steps = options.Steps; Seed = options.Seed
          Elapsed = sw.Elapsed; Examples = examples }
