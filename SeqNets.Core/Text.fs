/// Text for character-level language models. A character is a Unicode scalar value
/// (System.Text.Rune: U+0000 … U+10FFFF less the surrogates), never a lone UTF-16 code unit, so an
/// emoji outside the Basic Multilingual Plane is one character, as it is in the file's UTF-8. Text
/// is read as UTF-8 in one streaming pass per use; bytes that are not UTF-8 are an error naming their
/// byte offset, or U+FFFD when asked (InvalidText.Replace). The vocabulary is deterministic; the
/// ids of a corpus are stored in the narrowest integer type that holds them (one byte per character
/// up to 256 distinct characters); the split is contiguous; batches are [T; B], cut from B parallel
/// streams so that the state of row b at the end of one batch is the right initial state for row b
/// of the next. A TokenVocabulary is the vocabulary of one side of a translation: whole tokens, with
/// <pad>, <bos> and <eos> first.
/// Legend: T time, B batch (streams), N characters.
namespace SeqNets

open System
open System.Buffers
open System.Collections
open System.Collections.Generic
open System.IO
open System.Text
open TorchSharp

/// What to do with text that is not valid Unicode: bytes that are not UTF-8, or a .NET string with
/// a lone surrogate.
type InvalidText =
    /// An InvalidTextException naming the byte offset (or UTF-16 index) of the first invalid sequence.
    | Reject
    /// Each maximal invalid sequence becomes U+FFFD, the replacement character (the Unicode
    /// standard's substitution of maximal subparts, as .NET's UTF8Encoding does).
    | Replace

/// Text that is not valid UTF-8 (or, for a .NET string, UTF-16), with the position of the first
/// invalid sequence.
type InvalidTextException(argument: string, offset: int64, message: string) =
    inherit ArgumentException(message, argument)
    /// The byte offset (UTF-8) or UTF-16 index of the first invalid sequence.
    member _.Offset = offset

/// Reading scalar values out of strings and UTF-8 streams.
module internal Unicode =
    /// The largest scalar value + 1.
    [<Literal>]
    let Limit = 0x110000

    [<Literal>]
    let ReplacementCharacter = 0xFFFD

    /// A character for a message: U+000A for controls and spaces, 'é' (U+00E9) otherwise.
    let show (value: int) =
        let r = Rune value
        if Rune.IsControl r || Rune.IsWhiteSpace r || Rune.GetUnicodeCategory r = Globalization.UnicodeCategory.Format then
            $"U+{value:X4}"
        else $"'{r}' (U+{value:X4})"

    /// Calls visit on the scalar value of every character of s, in order; a lone surrogate is an
    /// InvalidTextException (Reject) or U+FFFD (Replace).
    let iterString (policy: InvalidText) (argument: string) (s: string) (visit: int -> unit) =
        let mutable i = 0
        while i < s.Length do
            let c = s[i]
            if not (Char.IsSurrogate c) then
                visit (int c)
                i <- i + 1
            elif Char.IsHighSurrogate c && i + 1 < s.Length && Char.IsLowSurrogate s[i + 1] then
                visit (Char.ConvertToUtf32(c, s[i + 1]))
                i <- i + 2
            else
                match policy with
                | Reject ->
                    raise (InvalidTextException(argument, int64 i,
                        $"{argument}: expected Unicode text, but UTF-16 index {i} holds a lone surrogate U+{int c:X4} "
                        + "(half of a character outside the Basic Multilingual Plane); InvalidText.Replace reads it as U+FFFD."))
                | Replace ->
                    visit ReplacementCharacter
                    i <- i + 1

    /// Reads the scalar values of UTF-8 bytes from a stream, 64 KiB at a time; skips a leading
    /// byte-order mark as File.ReadAllText does. `source` names the stream in messages.
    [<Sealed>]
    type Utf8Reader(stream: Stream, policy: InvalidText, argument: string, source: string) =
        let buffer = Array.zeroCreate<byte> 65536
        let mutable filled = 0
        let mutable pos = 0
        /// Offset in the stream of buffer[0].
        let mutable origin = 0L
        let mutable eof = false
        let mutable started = false
        let mutable line = 1L

        let fill () =
            let rest = filled - pos
            if rest > 0 then Buffer.BlockCopy(buffer, pos, buffer, 0, rest)
            origin <- origin + int64 pos
            pos <- 0
            filled <- rest
            while filled < buffer.Length && not eof do
                let n = stream.Read(buffer, filled, buffer.Length - filled)
                if n = 0 then eof <- true else filled <- filled + n
            if not started then
                started <- true
                if filled >= 3 && buffer[0] = 0xEFuy && buffer[1] = 0xBBuy && buffer[2] = 0xBFuy then pos <- 3

        let invalid (length: int) =
            let offset = origin + int64 pos
            let bytes = String.Join(" ", [| for k in 0 .. max 1 length - 1 -> buffer[pos + k].ToString("X2") |])
            let hint =
                if offset = 0L && filled >= 2 && ((buffer[0] = 0xFFuy && buffer[1] = 0xFEuy) || (buffer[0] = 0xFEuy && buffer[1] = 0xFFuy)) then
                    " — it starts with a UTF-16 byte-order mark: save it as UTF-8"
                elif eof && pos + length >= filled then " — the text ends inside a character"
                else ""
            let plural = if length > 1 then "s" else ""
            raise (InvalidTextException(argument, offset,
                $"{argument}: expected UTF-8 text, but {source} has the byte{plural} {bytes} "
                + $"at byte offset {offset:N0} (line {line:N0}), which is not UTF-8{hint}; "
                + "InvalidText.Replace reads invalid bytes as U+FFFD."))

        /// Bytes read so far.
        member _.Offset = origin + int64 pos

        /// The next scalar value, or −1 at the end of the stream.
        member _.Next() : int =
            if filled - pos < 4 && not eof then fill ()
            if pos >= filled then -1
            else
                let b = buffer[pos]
                if b < 0x80uy then
                    pos <- pos + 1
                    if b = 10uy then line <- line + 1L
                    int b
                else
                    let mutable rune = Rune()
                    let mutable n = 0
                    match Rune.DecodeFromUtf8(ReadOnlySpan(buffer, pos, filled - pos), &rune, &n) with
                    | OperationStatus.Done ->
                        pos <- pos + n
                        rune.Value
                    | _ ->
                        // InvalidData, or NeedMoreData at the end of the stream: n is the length of
                        // the maximal invalid subsequence.
                        match policy with
                        | Reject -> invalid (max 1 n)
                        | Replace ->
                            pos <- pos + max 1 n
                            ReplacementCharacter

    /// Calls visit on every scalar value of the stream's UTF-8, in order.
    let iterStream (policy: InvalidText) (argument: string) (source: string) (stream: Stream) (visit: int -> unit) =
        let reader = Utf8Reader(stream, policy, argument, source)
        let mutable v = reader.Next()
        while v >= 0 do
            visit v
            v <- reader.Next()

/// The characters a model knows: Unicode scalar values, in id order (sorted by code point when made
/// from a text, so the same text always gives the same ids).
[<Sealed; AllowNullLiteral>]
type Vocabulary(characters: Rune[]) =
    do if isNull characters then nullArg "characters"
    let characters = Array.copy characters
    let texts = characters |> Array.map (fun r -> r.ToString())
    // The id of every scalar value, −1 for those not in the vocabulary; a dictionary beyond the BMP.
    let bmp = Array.create 0x10000 -1
    let astral = Dictionary<int, int>()
    do
        characters |> Array.iteri (fun i r ->
            let v = r.Value
            let known = if v < 0x10000 then bmp[v] >= 0 else astral.ContainsKey v
            if known then invalidArg "characters" $"characters: expected distinct characters, but {Unicode.show v} repeats."
            if v < 0x10000 then bmp[v] <- i else astral[v] <- i)

    /// The id of a scalar value, or −1.
    member internal _.TryId(value: int) =
        if value >= 0 && value < 0x10000 then bmp[value]
        else
            match astral.TryGetValue value with
            | true, i -> i
            | _ -> -1
    /// The characters (Unicode scalar values), in id order.
    member _.Characters: IReadOnlyList<Rune> = characters :> _
    /// Number of characters V.
    member _.Size = characters.Length
    /// Whether the vocabulary has the character.
    member v.Contains(c: Rune) = v.TryId c.Value >= 0
    /// Whether the vocabulary has the UTF-16 code unit as a character (never for a surrogate, which
    /// is half of a character).
    member v.Contains(c: char) = not (Char.IsSurrogate c) && v.TryId(int c) >= 0
    /// The id of a character; ArgumentException naming it if unknown.
    member v.Id(c: Rune) =
        match v.TryId c.Value with
        | -1 -> raise (ArgumentException($"text: the character {Unicode.show c.Value} is not in the vocabulary of {characters.Length} characters.", "text"))
        | i -> i
    /// The character of an id.
    member _.Character(id: int) : Rune =
        if id < 0 || id >= characters.Length then
            raise (ArgumentOutOfRangeException("id", $"id: expected 0 <= id < {characters.Length}, but got {id}."))
        characters[id]
    /// The character of an id as a string (one or two UTF-16 code units).
    member _.TextOf(id: int) : string =
        if id < 0 || id >= characters.Length then
            raise (ArgumentOutOfRangeException("id", $"id: expected 0 <= id < {characters.Length}, but got {id}."))
        texts[id]
    /// All characters in id order, as one string (Vocabulary.ofCharacters reads it back).
    member _.Text = String.Concat texts
    override _.Equals(o) =
        match o with
        | :? Vocabulary as v -> v.Characters.Count = characters.Length && Seq.forall2 (=) v.Characters characters
        | _ -> false
    override _.GetHashCode() = String.Concat(texts).GetHashCode()
    override _.ToString() = $"Vocabulary ({characters.Length} characters)"

[<RequireQualifiedAccess>]
module Vocabulary =
    let private fromSeen (seen: bool[]) =
        Vocabulary([| for v in 0 .. seen.Length - 1 do if seen[v] then yield Rune v |])

    /// The distinct characters (scalar values) of a text, sorted by code point. A lone surrogate is
    /// an InvalidTextException naming its index.
    [<CompiledName("OfText")>]
    let ofText (text: string) =
        Check.notNull "text" text
        if text.Length = 0 then Check.fail "text" "text: expected at least one character, but got an empty text."
        let seen = Array.zeroCreate<bool> Unicode.Limit
        Unicode.iterString Reject "text" text (fun v -> seen[v] <- true)
        fromSeen seen

    /// The vocabulary whose characters, in id order, are those of `characters` (what
    /// Vocabulary.Text writes); ArgumentException for a repeated character or a lone surrogate.
    [<CompiledName("OfCharacters")>]
    let ofCharacters (characters: string) =
        Check.notNull "characters" characters
        let runes = ResizeArray<Rune>()
        Unicode.iterString Reject "characters" characters (fun v -> runes.Add(Rune v))
        Vocabulary(runes.ToArray())

    /// The ids of a text's characters; ArgumentException naming the first unknown character and its
    /// position (counted in characters, with the UTF-16 index when it differs).
    [<CompiledName("Encode")>]
    let encode (vocabulary: Vocabulary) (text: string) : int64[] =
        Check.notNull "vocabulary" vocabulary
        Check.notNull "text" text
        let ids = ResizeArray<int64>(text.Length)
        let mutable utf16 = 0
        Unicode.iterString Reject "text" text (fun v ->
            match vocabulary.TryId v with
            | -1 ->
                let where = if utf16 = ids.Count then $"position {ids.Count}" else $"position {ids.Count} (UTF-16 index {utf16})"
                Check.fail "text" $"text: the character {Unicode.show v} at {where} is not in the vocabulary of {vocabulary.Size} characters."
            | i ->
                ids.Add(int64 i)
                utf16 <- utf16 + (if v >= 0x10000 then 2 else 1))
        ids.ToArray()

    /// The text of a sequence of ids.
    [<CompiledName("Decode")>]
    let decode (vocabulary: Vocabulary) (ids: seq<int64>) : string =
        Check.notNull "vocabulary" vocabulary
        Check.notNull "ids" ids
        let out = StringBuilder()
        for i in ids do
            if i < 0L || i >= int64 vocabulary.Size then
                raise (ArgumentOutOfRangeException("ids", $"ids: expected 0 <= id < {vocabulary.Size}, but got {i}."))
            out.Append(vocabulary.TextOf(int i)) |> ignore
        out.ToString()

/// The storage of token ids: chunks of 2²⁴ ids in the narrowest integer type that holds them.
type internal IdChunks =
    | Bytes of byte[][]
    | Words of uint16[][]
    | Wide of int[][]

/// A sequence of token ids, in one byte per id for vocabularies of up to 256 characters, two up to
/// 65,536, four beyond, stored in chunks so that its length may pass 2³¹. Read-only; Slice shares
/// the storage.
[<Sealed>]
type TokenIds internal (chunks: IdChunks, start: int64, length: int64) =
    static let bits = 24
    static let mask = (1L <<< bits) - 1L

    /// The id at absolute index i of the storage, unchecked.
    member internal _.Raw(i: int64) : int64 =
        let i = start + i
        let c, k = int (i >>> bits), int (i &&& mask)
        match chunks with
        | Bytes a -> int64 (a[c][k])
        | Words a -> int64 (a[c][k])
        | Wide a -> int64 (a[c][k])
    member internal _.Chunks = chunks
    /// Ids per storage chunk.
    static member internal ChunkSize = 1 <<< bits
    /// Number of ids N.
    member _.Length = length
    /// Bytes each id takes: 1, 2 or 4.
    member _.BytesPerId = match chunks with Bytes _ -> 1 | Words _ -> 2 | Wide _ -> 4
    /// The id at position i.
    member t.Item
        with get (i: int64) : int64 =
            if i < 0L || i >= length then
                raise (ArgumentOutOfRangeException("i", $"i: expected 0 <= i < {length}, but got {i}."))
            t.Raw i
    /// The ids from offset on, count of them, sharing this storage.
    member _.Slice(offset: int64, count: int64) : TokenIds =
        if offset < 0L || count < 0L || offset > length - count then
            raise (ArgumentOutOfRangeException("offset", $"offset, count: expected a range within 0 … {length}, but got {offset} + {count}."))
        TokenIds(chunks, start + offset, count)
    /// The ids as an int64 array (for small sequences: tests, prompts).
    member t.ToArray() : int64[] =
        if length > int64 Array.MaxLength then
            raise (InvalidOperationException($"The {length:N0} ids do not fit in one array; read them by index or through Batches."))
        Array.init (int length) (fun i -> t.Raw(int64 i))
    override t.ToString() = $"TokenIds ({length:N0} ids, {t.BytesPerId} byte(s) each)"
    interface IEnumerable<int64> with
        member t.GetEnumerator() : IEnumerator<int64> = (Seq.init (int (min length (int64 Int32.MaxValue))) (fun i -> t.Raw(int64 i))).GetEnumerator()
        member t.GetEnumerator() : IEnumerator = ((t :> IEnumerable<int64>).GetEnumerator()) :> IEnumerator

    /// Storage for length ids below vocabularySize, checked against the machine's memory.
    static member internal Allocate(vocabularySize: int, length: int64) : IdChunks =
        let width = if vocabularySize <= 256 then 1L elif vocabularySize <= 65536 then 2L else 4L
        Memory.check $"the token ids of a {length:N0}-character text" (Memory.multiply "token ids" length width)
        let n = int ((length + mask) >>> bits)
        let size c = int (min (int64 TokenIds.ChunkSize) (length - (int64 c <<< bits)))
        match width with
        | 1L -> Bytes(Array.init n (fun c -> Array.zeroCreate<byte> (size c)))
        | 2L -> Words(Array.init n (fun c -> Array.zeroCreate<uint16> (size c)))
        | _ -> Wide(Array.init n (fun c -> Array.zeroCreate<int> (size c)))

    static member internal Set(chunks: IdChunks, i: int64, id: int) =
        let c, k = int (i >>> bits), int (i &&& mask)
        match chunks with
        | Bytes a -> a[c][k] <- byte id
        | Words a -> a[c][k] <- uint16 id
        | Wide a -> a[c][k] <- id

[<RequireQualifiedAccess>]
module TokenIds =
    /// Ids from an array, stored in the narrowest type that holds its largest id; ArgumentException
    /// for a negative id or one past Int32.MaxValue.
    [<CompiledName("OfArray")>]
    let ofArray (ids: int64[]) : TokenIds =
        Check.notNull "ids" ids
        let mutable top = 0L
        ids |> Array.iteri (fun i id ->
            if id < 0L || id > int64 Int32.MaxValue then Check.fail "ids" $"ids: expected ids in 0 … {Int32.MaxValue}, but ids[{i}] = {id}."
            if id > top then top <- id)
        let chunks = TokenIds.Allocate(int (min (top + 1L) (int64 Int32.MaxValue)), int64 ids.Length)
        ids |> Array.iteri (fun i id -> TokenIds.Set(chunks, int64 i, int id))
        TokenIds(chunks, 0L, int64 ids.Length)

/// A text cut into a training part and a validation part, its ids in compact storage (the two parts
/// share it).
type Corpus =
    { Vocabulary: Vocabulary
      Train: TokenIds
      Validation: TokenIds }

[<RequireQualifiedAccess>]
module Corpus =
    let private checkFraction (trainFraction: float) =
        if not (trainFraction > 0.0 && trainFraction <= 1.0) then
            Check.fail "trainFraction" $"trainFraction: expected a value in (0, 1], but got {trainFraction}."

    /// Two passes of `read` over a text: the distinct characters and their count, then the ids.
    let private build (argument: string) (trainFraction: float) (read: (int -> unit) -> unit) : Corpus =
        checkFraction trainFraction
        let seen = Array.zeroCreate<bool> Unicode.Limit
        let mutable count = 0L
        read (fun v ->
            seen[v] <- true
            count <- count + 1L)
        if count = 0L then Check.fail argument $"{argument}: expected at least one character, but got an empty text."
        let vocabulary = Vocabulary([| for v in 0 .. seen.Length - 1 do if seen[v] then yield Rune v |])
        let idOf = Array.create Unicode.Limit -1
        for i in 0 .. vocabulary.Size - 1 do idOf[vocabulary.Characters[i].Value] <- i
        let chunks = TokenIds.Allocate(vocabulary.Size, count)
        let mutable i = 0L
        read (fun v ->
            let id = idOf[v]
            if id < 0 || i >= count then raise (IOException($"{argument}: the text changed while it was read."))
            TokenIds.Set(chunks, i, id)
            i <- i + 1L)
        if i <> count then raise (IOException($"{argument}: the text changed while it was read."))
        let n = int64 (float count * trainFraction)
        if n < 2L then
            Check.fail argument $"{argument}: expected at least 2 training characters, but {count} characters at fraction {trainFraction} give {n}."
        { Vocabulary = vocabulary
          Train = TokenIds(chunks, 0L, n)
          Validation = TokenIds(chunks, n, count - n) }

    /// The vocabulary of the whole text; the first trainFraction of it (contiguous) for training,
    /// the rest for validation. A lone surrogate is read as `invalid` says.
    [<CompiledName("SplitWith")>]
    let splitWith (invalid: InvalidText) (trainFraction: float) (text: string) : Corpus =
        Check.notNull "text" text
        build "text" trainFraction (Unicode.iterString invalid "text" text)

    /// The vocabulary of the whole text; the first trainFraction of it (contiguous) for training,
    /// the rest for validation. trainFraction = 0.9 is the usual choice. A lone surrogate is an
    /// InvalidTextException.
    [<CompiledName("Split")>]
    let split (trainFraction: float) (text: string) : Corpus = splitWith Reject trainFraction text

    /// A corpus of UTF-8 bytes, as Corpus.split makes one of a string; bytes that are not UTF-8 are
    /// read as `invalid` says (Reject: an InvalidTextException naming the byte offset).
    [<CompiledName("OfUtf8")>]
    let ofUtf8 (invalid: InvalidText) (trainFraction: float) (bytes: byte[]) : Corpus =
        Check.notNull "bytes" bytes
        build "bytes" trainFraction (fun visit ->
            use s = new MemoryStream(bytes, false)
            Unicode.iterStream invalid "bytes" "the bytes" s visit)

    /// A corpus of a UTF-8 text file, read streaming twice (the characters, then the ids): the file
    /// is never held in memory as a whole, only its ids in compact storage. Bytes that are not UTF-8
    /// are read as `invalid` says (Reject: an InvalidTextException naming the byte offset).
    [<CompiledName("OfFile")>]
    let ofFile (invalid: InvalidText) (trainFraction: float) (path: string) : Corpus =
        Check.notNull "path" path
        checkFraction trainFraction
        if Directory.Exists path then Check.fail "path" $"path: expected a text file, but '{path}' is a directory."
        if not (File.Exists path) then raise (FileNotFoundException($"path: no such file '{path}'.", path))
        build "path" trainFraction (fun visit ->
            use s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan)
            Unicode.iterStream invalid "path" $"'{path}'" s visit)

/// B parallel streams over a sequence of ids, read T steps at a time: stream b covers the ids
/// [b·L, b·L + L] with L = ⌊(N − 1) / B⌋ (one extra for the last target).
[<Sealed>]
type Batches(ids: TokenIds, batch: int, steps: int) =
    do
        Check.notNull "ids" ids
        Check.positive "batch" batch
        Check.positive "steps" steps
    let perStream = (ids.Length - 1L) / int64 batch
    do
        if perStream < int64 steps then
            Check.fail "ids" $"ids: expected at least B·T + 1 = {int64 batch * int64 steps + 1L} characters for B = {batch} streams of T = {steps} steps, but got {ids.Length}."
    let count = int (min (perStream / int64 steps) (int64 Int32.MaxValue))
    do
        let rows = Memory.multiply "batch" (int64 batch) (int64 steps)
        if rows > int64 Array.MaxLength then
            Check.fail "batch" $"batch: expected B·T <= {Array.MaxLength} ids per batch, but B = {batch} and T = {steps} make {rows}."
    /// Batches over ids held in an array.
    new(ids: int64[], batch: int, steps: int) = Batches(TokenIds.ofArray ids, batch, steps)
    /// Number of streams B.
    member _.Batch = batch
    /// Steps per batch T.
    member _.Steps = steps
    /// Batches in one pass over the streams (at most Int32.MaxValue).
    member _.Count = count
    /// Batch k: inputs [T; B] and targets [T; B] (the next character), int64.
    member _.Get(k: int) : torch.Tensor * torch.Tensor =
        if k < 0 || k >= count then
            raise (ArgumentOutOfRangeException("k", $"k: expected 0 <= k < {count}, but got {k}."))
        let inputs = Array.zeroCreate<int64> (steps * batch)
        let targets = Array.zeroCreate<int64> (steps * batch)
        for t in 0 .. steps - 1 do
            for b in 0 .. batch - 1 do
                let p = int64 b * perStream + int64 k * int64 steps + int64 t
                inputs[t * batch + b] <- ids.Raw p
                targets[t * batch + b] <- ids.Raw(p + 1L)
        torch.tensor(inputs).reshape(int64 steps, int64 batch), torch.tensor(targets).reshape(int64 steps, int64 batch) // [T; B] each

/// The tokens of one side of a translation: id 0 is <pad>, 1 <bos>, 2 <eos>, then the tokens in
/// ordinal order, so the same tokens always give the same ids.
[<Sealed>]
type TokenVocabulary(tokens: string[]) =
    let all = Array.append [| "<pad>"; "<bos>"; "<eos>" |] tokens
    let index =
        let d = Dictionary<string, int>(StringComparer.Ordinal)
        all |> Array.iteri (fun i t ->
            if isNull t then invalidArg "tokens" "tokens: expected tokens, but one is null."
            if d.ContainsKey t then invalidArg "tokens" $"tokens: expected distinct tokens (and none of <pad>, <bos>, <eos>), but '{t}' repeats."
            d[t] <- i)
        d
    /// The id of <pad> (0).
    static member Pad = 0L
    /// The id of <bos> (1).
    static member Bos = 1L
    /// The id of <eos> (2).
    static member Eos = 2L
    /// Every token in id order, the three specials first.
    member _.Tokens: IReadOnlyList<string> = all :> _
    /// V: the number of ids, specials included.
    member _.Size = all.Length
    /// Whether the token is in the vocabulary.
    member _.Contains(token: string) = not (isNull token) && index.ContainsKey token
    /// The id of a token; ArgumentException naming it if unknown.
    member _.Id(token: string) =
        match (if isNull token then None else match index.TryGetValue token with | true, i -> Some i | _ -> None) with
        | Some i -> int64 i
        | None -> raise (ArgumentException($"tokens: the token '{token}' is not in the vocabulary of {all.Length} tokens.", "tokens"))
    /// The token of an id.
    member _.Token(id: int64) =
        if id < 0L || id >= int64 all.Length then
            raise (ArgumentOutOfRangeException("id", $"id: expected 0 <= id < {all.Length}, but got {id}."))
        all[int id]
    override _.ToString() = $"TokenVocabulary ({all.Length} tokens, <pad> <bos> <eos> included)"

[<RequireQualifiedAccess>]
module TokenVocabulary =
    /// The vocabulary of the distinct tokens given (the specials are added).
    [<CompiledName("OfTokens")>]
    let ofTokens (tokens: seq<string>) =
        Check.notNull "tokens" tokens
        TokenVocabulary(tokens |> Seq.distinct |> Seq.filter (fun t -> t <> "<pad>" && t <> "<bos>" && t <> "<eos>") |> Seq.sortWith (fun a b -> String.CompareOrdinal(a, b)) |> Array.ofSeq)

    /// A text as tokens of one Unicode scalar value each.
    [<CompiledName("Characters")>]
    let characters (text: string) : string list =
        Check.notNull "text" text
        [ for r in text.EnumerateRunes() -> r.ToString() ]

    /// The ids of tokens; ArgumentException naming the first unknown token and its position.
    [<CompiledName("Encode")>]
    let encode (vocabulary: TokenVocabulary) (tokens: seq<string>) : int64[] =
        Check.notNull "tokens" tokens
        tokens
        |> Seq.mapi (fun i t ->
            if not (vocabulary.Contains t) then
                Check.fail "tokens" $"tokens: the token '{t}' at position {i} is not in the vocabulary of {vocabulary.Size} tokens."
            vocabulary.Id t)
        |> Array.ofSeq

    /// The tokens of ids up to (without) the first <eos>, skipping <pad> and <bos>.
    [<CompiledName("Decode")>]
    let decode (vocabulary: TokenVocabulary) (ids: seq<int64>) : string list =
        ids
        |> Seq.takeWhile (fun i -> i <> TokenVocabulary.Eos)
        |> Seq.filter (fun i -> i <> TokenVocabulary.Pad && i <> TokenVocabulary.Bos)
        |> Seq.map vocabulary.Token
        |> List.ofSeq
