/// Text as Unicode: vocabulary over scalar values, UTF-8 decoding with named offsets, compact ids,
/// split and batches; and the round trip of any Unicode text through training, checkpoints and
/// sampling.
module SeqNets.Tests.TextTests

open System
open System.IO
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open SeqNets

let private runes (s: string) = [ for r in s.EnumerateRunes() -> r ]

let private withFile (bytes: byte[]) (f: string -> unit) =
    let d = Directory.CreateTempSubdirectory "seqnets-text-"
    try
        let p = Path.Combine(d.FullName, "text.txt")
        File.WriteAllBytes(p, bytes)
        f p
    finally d.Delete true

/// Characters that break code which treats text as UTF-16 code units or as printable: astral
/// characters (emoji, a CJK extension, the last plane), combining marks, NUL and other controls,
/// bidirectional marks and overrides, a zero-width joiner, the byte-order mark and U+FFFD.
let private awkward =
    [ 0x1F600; 0x1F468; 0x200D; 0x1F469; 0x20000; 0x10FFFD; 0x10000 // astral, ZWJ
      0x0301; 0x0308; 0x20DD; 0x1AB0 // combining marks
      0x0000; 0x0007; 0x000A; 0x000D; 0x007F; 0x0085 // NUL, controls, newlines
      0x200E; 0x200F; 0x202E; 0x2066; 0x061C // LRM, RLM, RLO, LRI, ALM
      0xFEFF; 0xFFFD; 0xFFFF; 0xE000; 0xD7FF ] // BOM, replacement, a noncharacter, private use, below the surrogates

/// Scalar values: mostly ASCII letters (so that texts repeat characters), the awkward ones, and any
/// scalar value of the BMP or the astral planes.
let private scalar =
    Gen.frequency
        [ 4, Gen.choose (int 'a', int 'f')
          3, Gen.elements awkward
          1, Gen.choose (0, 0xD7FF)
          1, Gen.choose (0x10000, 0x10FFFF) ]

/// Unicode strings of 8 to 60 characters (enough for a batch of B = 2 streams of T = 3 steps).
let private unicodeText =
    gen {
        let! n = Gen.choose (8, 60)
        let! values = Gen.listOfLength n scalar
        return String.Concat(values |> List.map (fun v -> Rune(v).ToString()))
    }

[<Tests>]
let tests =
    testList "Text" [
        test "the vocabulary is the sorted distinct characters, whatever their order in the text" {
            let v1, v2 = Vocabulary.ofText "hello", Vocabulary.ofText "olleh"
            Expect.sequenceEqual v1.Characters (runes "ehlo") "sorted"
            Expect.equal v1 v2 "same vocabulary"
            Expect.equal (Vocabulary.decode v1 (Vocabulary.encode v1 "hello")) "hello" "round trip"
        }
        test "an unknown character is an ArgumentException naming it and its position" {
            let v = Vocabulary.ofText "hello"
            let e = Expect.throwsC (fun () -> Vocabulary.encode v "help" |> ignore) id
            Expect.stringContains e.Message "'p'" "names the character"
            Expect.stringContains e.Message "position 3" "names the position"
        }
        test "a character outside the BMP is one character: one id, one entry, sorted by code point" {
            let text = "a😀b😀é\U0001F468\u200D\U0001F469"
            let v = Vocabulary.ofText text
            Expect.equal v.Size 7 "a, b, é, ZWJ, 😀, 👨, 👩"
            Expect.sequenceEqual (v.Characters |> Seq.map _.Value) [ 0x61; 0x62; 0xE9; 0x200D; 0x1F468; 0x1F469; 0x1F600 ] "by code point, not by UTF-16 unit"
            let ids = Vocabulary.encode v text
            Expect.equal ids.Length 8 "one id per scalar value"
            Expect.equal (Vocabulary.decode v ids) text "decodes to the same string"
            Expect.isTrue (v.Contains(Rune 0x1F600)) "has the emoji"
            Expect.isFalse (v.Contains '\uD83D') "a surrogate half is never a character"
            let e = Expect.throwsC (fun () -> Vocabulary.encode v "a😀x" |> ignore) id
            Expect.stringContains e.Message "position 2 (UTF-16 index 3)" "a position past an astral character names both counts"
        }
        test "a lone surrogate in a string is an InvalidTextException naming its index; Replace reads it as U+FFFD" {
            let bad = String([| 'a'; 'b'; char 0xD83D; 'c'; 'd' |])
            let e = Expect.throwsC (fun () -> Corpus.split 1.0 bad |> ignore) id
            match e with
            | :? InvalidTextException as e ->
                Expect.equal e.Offset 2L "the UTF-16 index"
                Expect.stringContains e.Message "U+D83D" "names the code unit"
            | e -> failtest $"expected InvalidTextException, got {e.GetType().Name}: {e.Message}"
            let c = Corpus.splitWith Replace 1.0 bad
            Expect.equal (Vocabulary.decode c.Vocabulary c.Train) "ab\uFFFDcd" "replaced"
        }
        test "bytes that are not UTF-8 are an error naming the byte offset and the line" {
            let bytes = Array.concat [ Encoding.UTF8.GetBytes "héllo\nwörld\n"; [| 0xC3uy; 0x28uy |]; Encoding.UTF8.GetBytes "rest" ]
            let e = Expect.throwsC (fun () -> Corpus.ofUtf8 Reject 1.0 bytes |> ignore) id
            match e with
            | :? InvalidTextException as e ->
                Expect.equal e.Offset 14L "offset of the bad lead byte C3 (two 2-byte characters before it)"
                Expect.stringContains e.Message "C3" "names the byte"
                Expect.stringContains e.Message "byte offset 14" "names the offset"
                Expect.stringContains e.Message "line 3" "names the line"
                Expect.stringContains e.Message "Replace" "says how to read it anyway"
            | e -> failtest $"expected InvalidTextException, got {e.GetType().Name}: {e.Message}"
        }
        test "Replace reads each maximal invalid sequence as one U+FFFD, as .NET's UTF8Encoding does" {
            let bytes = [| 0x61uy; 0xFFuy; 0x62uy; 0xE2uy; 0x82uy; 0x63uy; 0xF0uy; 0x9Fuy; 0x98uy; 0x80uy; 0xEDuy; 0xA0uy; 0x80uy; 0xF4uy |]
            let c = Corpus.ofUtf8 Replace 1.0 bytes
            let expected = UTF8Encoding(false, false).GetString bytes
            Expect.equal (Vocabulary.decode c.Vocabulary c.Train) expected "same decoding as the framework's"
        }
        test "a file read streaming gives the corpus of its text; a UTF-8 BOM is skipped, a UTF-16 one is named" {
            let text = String.replicate 5000 "state 😀 summarises the past; ünïcödé\n"
            withFile (Array.append [| 0xEFuy; 0xBBuy; 0xBFuy |] (Encoding.UTF8.GetBytes text)) (fun p ->
                let fromFile, fromString = Corpus.ofFile Reject 0.9 p, Corpus.split 0.9 text
                Expect.equal fromFile.Vocabulary fromString.Vocabulary "same vocabulary"
                Expect.sequenceEqual (fromFile.Train.ToArray()) (fromString.Train.ToArray()) "same training ids"
                Expect.sequenceEqual (fromFile.Validation.ToArray()) (fromString.Validation.ToArray()) "same validation ids")
            withFile (Array.append (Encoding.Unicode.GetPreamble()) (Encoding.Unicode.GetBytes "hello")) (fun p ->
                let e = Expect.throwsC (fun () -> Corpus.ofFile Reject 0.9 p |> ignore) id
                Expect.stringContains e.Message "UTF-16" "says it looks like UTF-16")
            let d = Directory.CreateTempSubdirectory "seqnets-text-"
            try
                let e = Expect.throwsC (fun () -> Corpus.ofFile Reject 0.9 d.FullName |> ignore) id
                Expect.stringContains e.Message "is a directory" "a directory is named as one"
            finally d.Delete()
        }
        test "ids take one byte each up to 256 characters, two up to 65,536, four beyond" {
            // n distinct scalar values from U+0020 on, the surrogates skipped.
            let text (n: int) = String.Concat(Seq.init n (fun i -> Rune(if i < 0xD7E0 then 0x20 + i else 0x10000 + i - 0xD7E0).ToString()))
            Expect.equal (Corpus.split 1.0 (String.replicate 3 "abc")).Train.BytesPerId 1 "3 characters"
            Expect.equal (Corpus.split 1.0 (text 256)).Train.BytesPerId 1 "256 characters"
            Expect.equal (Corpus.split 1.0 (text 257)).Train.BytesPerId 2 "257 characters"
            let wide = Corpus.split 1.0 (text 70000)
            Expect.isGreaterThan wide.Vocabulary.Size 65536 "more than 65,536 characters"
            Expect.equal wide.Train.BytesPerId 4 "then four bytes"
            Expect.equal (Vocabulary.decode wide.Vocabulary wide.Train) (text 70000) "and the ids still decode"
        }
        test "the split is contiguous, 90/10 by default" {
            let letters = "abcdefghij"
            let text = String.init 1000 (fun i -> string letters.[i % 10])
            let c = Corpus.split 0.9 text
            Expect.equal c.Train.Length 900L "90%"
            Expect.equal c.Validation.Length 100L "10%"
            Expect.equal (Vocabulary.decode c.Vocabulary (Seq.append c.Train c.Validation)) text "contiguous, nothing lost"
        }
        test "batches read B parallel streams, T steps at a time, targets shifted by one" {
            let ids = Array.init 101 int64 // streams of (101 − 1) / 4 = 25
            let b = Batches(ids, 4, 5) // B = 4, T = 5
            Expect.equal b.Count 5 "25 / 5 batches"
            let x0, y0 = b.Get 0
            let x1, _ = b.Get 1
            Expect.sequenceEqual x0.shape [| 5L; 4L |] "[T; B]"
            for row in 0L .. 3L do
                for t in 0L .. 4L do
                    Expect.equal (x0[t, row].item<int64> ()) (row * 25L + t) "stream row starts at row·L"
                    Expect.equal (y0[t, row].item<int64> ()) (row * 25L + t + 1L) "target is the next id"
                Expect.equal (x1[0L, row].item<int64> ()) (x0[4L, row].item<int64> () + 1L) "the next batch continues the stream"
        }
        test "batches over compact ids equal those over the same ids in an int64 array" {
            let c = Corpus.split 0.8 (String.replicate 40 "the cat sat on the mat. ")
            let compact, wide = Batches(c.Train, 3, 7), Batches(c.Train.ToArray(), 3, 7)
            Expect.equal compact.Count wide.Count "same count"
            for k in 0 .. compact.Count - 1 do
                let (x, y), (x', y') = compact.Get k, wide.Get k
                let data (t: torch.Tensor) = t.data<int64>().ToArray()
                Expect.sequenceEqual (Array.append (data x) (data y)) (Array.append (data x') (data y')) $"batch {k}"
        }
        test "too little text for one batch is an ArgumentException" {
            Expect.throwsT<ArgumentException> (fun () -> Batches(Array.init 10 int64, 4, 5) |> ignore) "needs B·T + 1"
        }
        testPropertyWithConfig Common.config "the vocabulary's characters, written as text, read back as the same vocabulary" <|
            Prop.forAll (Arb.fromGen unicodeText) (fun text ->
                let v = Vocabulary.ofText text
                Expect.equal (Vocabulary.ofCharacters v.Text) v "same vocabulary"
                Expect.equal (Vocabulary.decode v (Vocabulary.encode v text)) text "encode then decode is the identity")
        testPropertyWithConfig Common.config "any Unicode text trains a step, saves, loads, samples the same and primes with each of its characters" <|
            Prop.forAll (Arb.fromGen unicodeText) (fun text ->
                let corpus = Corpus.split 1.0 text
                let V = corpus.Vocabulary.Size
                use model = CharModel.create { Kind = Lstm; VocabularySize = V; HiddenSize = 5; Layers = 1 } torch.float32 3UL
                use trainer = new Trainer(model, corpus.Train, { TrainingConfig.Default with Batch = 2; SequenceLength = 3 })
                trainer.Step() |> ignore
                let d = Directory.CreateTempSubdirectory "seqnets-unicode-"
                try
                    let path = Path.Combine(d.FullName, "m.ckpt")
                    Checkpoint.save path trainer (Some corpus.Vocabulary)
                    let c = Checkpoint.load path
                    use loaded = c.Network
                    let vocabulary = c.Vocabulary.Value
                    for s in c.State do s.Dispose()
                    Expect.equal vocabulary corpus.Vocabulary "the same vocabulary"
                    Expect.sequenceEqual (loaded.Parameters.data<float32>().ToArray()) (model.Parameters.data<float32>().ToArray()) "the same parameters"
                    let options = { SamplingOptions.Default with Seed = 7UL }
                    let sample = Sampling.generate model corpus.Vocabulary "" 12 options
                    Expect.equal (Sampling.generate loaded vocabulary "" 12 options) sample "the same seeded sample"
                    Expect.equal (runes sample).Length 12 "12 characters (scalar values)"
                    Expect.all (runes sample) vocabulary.Contains "every sampled character is in the vocabulary"
                    for r in vocabulary.Characters do
                        let s = Sampling.generate loaded vocabulary (r.ToString()) 1 options
                        Expect.isTrue (vocabulary.Contains(Rune.GetRuneAt(s, 0))) $"primed with U+{r.Value:X4}"
                finally d.Delete true)
    ]
