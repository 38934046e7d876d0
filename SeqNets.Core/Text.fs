/// Text for character-level language models: a deterministic vocabulary, a contiguous
/// train/validation split, and [T; B] batches cut from B parallel streams so that the state of
/// row b at the end of one batch is the right initial state for row b of the next.
/// Legend: T time, B batch (streams), N characters.
namespace SeqNets

open System
open System.Collections.Generic
open TorchSharp

/// The characters a model knows, sorted by code point: the same text always gives the same ids.
[<Sealed>]
type Vocabulary(chars: char[]) =
    let chars = Array.copy chars
    let index =
        let d = Dictionary<char, int>()
        chars |> Array.iteri (fun i c ->
            if d.ContainsKey c then invalidArg "chars" $"chars: expected distinct characters, but '{c}' repeats."
            d[c] <- i)
        d
    /// The characters, in id order.
    member _.Characters: IReadOnlyList<char> = chars :> _
    /// Number of characters V.
    member _.Size = chars.Length
    /// Whether the vocabulary has the character.
    member _.Contains(c: char) = index.ContainsKey c
    /// The id of a character; ArgumentException naming it if unknown.
    member _.Id(c: char) =
        match index.TryGetValue c with
        | true, i -> i
        | _ -> raise (ArgumentException($"text: the character {Vocabulary.Show c} is not in the vocabulary of {chars.Length} characters.", "text"))
    /// The character of an id.
    member _.Char(id: int) =
        if id < 0 || id >= chars.Length then
            raise (ArgumentOutOfRangeException("id", $"id: expected 0 <= id < {chars.Length}, but got {id}."))
        chars[id]
    static member internal Show(c: char) =
        if Char.IsControl c || Char.IsWhiteSpace c then $"U+{int c:X4}" else $"'{c}' (U+{int c:X4})"
    override _.Equals(o) =
        match o with
        | :? Vocabulary as v -> v.Characters.Count = chars.Length && Seq.forall2 (=) v.Characters chars
        | _ -> false
    override _.GetHashCode() = String(chars).GetHashCode()
    override _.ToString() = $"Vocabulary ({chars.Length} characters)"

[<RequireQualifiedAccess>]
module Vocabulary =
    /// The distinct characters of a text, sorted by code point.
    [<CompiledName("OfText")>]
    let ofText (text: string) =
        Check.notNull "text" text
        if text.Length = 0 then Check.fail "text" "text: expected at least one character, but got an empty text."
        Vocabulary(text |> Seq.distinct |> Seq.sort |> Array.ofSeq)

    /// The ids of a text's characters; ArgumentException naming the first unknown character and
    /// its position.
    [<CompiledName("Encode")>]
    let encode (vocabulary: Vocabulary) (text: string) : int64[] =
        Check.notNull "text" text
        text
        |> Seq.mapi (fun pos c ->
            if not (vocabulary.Contains c) then
                Check.fail "text" $"text: the character {Vocabulary.Show c} at position {pos} is not in the vocabulary of {vocabulary.Size} characters."
            int64 (vocabulary.Id c))
        |> Array.ofSeq

    /// The text of a sequence of ids.
    [<CompiledName("Decode")>]
    let decode (vocabulary: Vocabulary) (ids: seq<int64>) : string =
        String(ids |> Seq.map (fun i -> vocabulary.Char(int i)) |> Array.ofSeq)

/// A text cut into a training part and a validation part.
type Corpus =
    { Vocabulary: Vocabulary
      Train: int64[]
      Validation: int64[] }

[<RequireQualifiedAccess>]
module Corpus =
    /// The vocabulary of the whole text; the first trainFraction of it (contiguous) for training,
    /// the rest for validation. trainFraction = 0.9 is the usual choice.
    [<CompiledName("Split")>]
    let split (trainFraction: float) (text: string) : Corpus =
        if not (trainFraction > 0.0 && trainFraction <= 1.0) then
            Check.fail "trainFraction" $"trainFraction: expected a value in (0, 1], but got {trainFraction}."
        let vocabulary = Vocabulary.ofText text
        let ids = Vocabulary.encode vocabulary text
        let n = int (float ids.Length * trainFraction)
        if n < 2 then Check.fail "text" $"text: expected at least 2 training characters, but {text.Length} characters at fraction {trainFraction} give {n}."
        { Vocabulary = vocabulary; Train = ids[.. n - 1]; Validation = ids[n ..] }

/// B parallel streams over a sequence of ids, read T steps at a time.
[<Sealed>]
type Batches(ids: int64[], batch: int, steps: int) =
    do
        Check.positive "batch" batch
        Check.positive "steps" steps
    let perStream = (ids.Length - 1) / batch
    do
        if perStream < steps then
            Check.fail "ids" $"ids: expected at least B·T + 1 = {batch * steps + 1} characters for B = {batch} streams of T = {steps} steps, but got {ids.Length}."
    // Stream b covers ids[b·L .. b·L + L] (one extra for the last target).
    let streams = Array.init batch (fun b -> ids[b * perStream .. b * perStream + perStream])
    /// Number of streams B.
    member _.Batch = batch
    /// Steps per batch T.
    member _.Steps = steps
    /// Batches in one pass over the streams.
    member _.Count = perStream / steps
    /// Batch k: inputs [T; B] and targets [T; B] (the next character), int64.
    member _.Get(k: int) : torch.Tensor * torch.Tensor =
        if k < 0 || k >= perStream / steps then
            raise (ArgumentOutOfRangeException("k", $"k: expected 0 <= k < {perStream / steps}, but got {k}."))
        let take offset = Array.init (steps * batch) (fun i -> streams[i % batch][k * steps + i / batch + offset])
        torch.tensor(take 0).reshape(int64 steps, int64 batch), torch.tensor(take 1).reshape(int64 steps, int64 batch)
