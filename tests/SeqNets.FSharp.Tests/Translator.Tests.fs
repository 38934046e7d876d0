/// Sequence to sequence from the F# face: a pipeline that learns to reverse, greedy against beam
/// width 1, a checkpoint round trip, and the messages of bad input.
module SeqNets.FSharp.Tests.TranslatorTests

open System
open System.IO
open Expecto
open SeqNets
open SeqNets.FSharp

let private reversal (s: string) = Translator.chars s, Translator.chars (String(Array.rev (s.ToCharArray())))

/// Sources of 3–6 letters from five, seeded.
let private words (seed: int) (count: int) =
    let rng = Random(seed)
    [ for _ in 1 .. count -> String(Array.init (rng.Next(3, 7)) (fun _ -> char (int 'a' + rng.Next 5))) ]

[<Tests>]
let tests =
    testList "Sequence to sequence" [
        test "a pipeline learns to reverse held-out words, greedy decoding is beam width 1, and a saved model translates the same" {
            let heldOut = words 21 300 |> List.distinct |> List.truncate 100
            let excluded = set heldOut
            let pairs = words 22 3000 |> List.filter (excluded.Contains >> not) |> List.map reversal
            let training = { TrainingConfig.Default with Strategy = Full; Batch = 20; LearningRate = 1e-2; Seed = 4UL }
            use model =
                { Translator.configOf pairs with Embedding = 10; Hidden = 18; MaxLength = 8 }
                |> Translator.create 2
                |> Translator.fit 200 training pairs
            let test = heldOut |> List.map reversal
            let exact = model |> Translator.exactMatch test
            Expect.isGreaterThanOrEqual exact 0.9 $"exact match on {test.Length} held-out words after 200 steps: {exact:P1} (bar 90%%)"
            let sources = test |> List.truncate 20 |> List.map fst
            let greedy = model |> Translator.translate sources
            for source, (tokens, weights) in List.zip sources greedy do
                match model |> Translator.beam { BeamOptions.Default with Width = 1; NBest = 1; Normalization = NoNormalization } source with
                | [ beamTokens, h ] ->
                    Expect.equal beamTokens tokens "beam width 1 is greedy"
                    Expect.equal h.Attention.Length weights.Length "one attention row per step"
                | other -> failtest $"expected one hypothesis, got {other.Length}"
            let path = Path.Combine(Path.GetTempPath(), $"seqnets-fs-translator-{Guid.NewGuid():N}.ckpt")
            try
                model |> Translator.save path |> ignore
                use back = Translator.load path
                Expect.sequenceEqual back.Target.Tokens model.Target.Tokens "the target vocabulary"
                Expect.equal (back |> Translator.translate sources) greedy "the same translations and attention"
            finally
                File.Delete path
        }
        test "bad input names the argument" {
            let pairs = [ reversal "abc"; reversal "ba" ]
            use model = { Translator.configOf pairs with Embedding = 3; Hidden = 4; MaxLength = 4 } |> Translator.create 1
            let names (name: string) (fragment: string) (f: unit -> unit) =
                let e = Expect.throwsC f id
                match e with
                | :? ArgumentException as a ->
                    Expect.equal a.ParamName name "names the argument"
                    Expect.stringContains a.Message fragment "says what arrived"
                | other -> failtest $"expected ArgumentException, got {other.GetType().Name}"
            names "tokens" "'z' at position 1" (fun () -> model |> Translator.translate [ [ "a"; "z" ] ] |> ignore)
            names "pairs" "pair 1 has none" (fun () -> model |> Translator.fit 1 TrainingConfig.Default [ reversal "ab"; [], [ "a" ] ] |> ignore)
            names "pairs" "pair 0 has 4" (fun () -> model |> Translator.fit 1 TrainingConfig.Default [ reversal "abca" ] |> ignore)
            names "options" "Width of at least 1" (fun () -> model |> Translator.beam { BeamOptions.Default with Width = 0 } [ "a" ] |> ignore)
            names "sourceTokens" "non-empty source" (fun () -> model |> Translator.beam BeamOptions.Default [] |> ignore)
            names "pairs" "at least one" (fun () -> Translator.configOf [] |> ignore)
        }
    ]
