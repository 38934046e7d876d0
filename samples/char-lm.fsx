// A character-level language model, the lecture's running example, end to end in a script:
// a vocabulary and a 90/10 split, an LSTM trained with truncated BPTT, validation loss, sampling
// with temperature, and a checkpoint saved, loaded and sampled again. The script exits with 1 if
// the model does not learn or the checkpoint does not reproduce it.
//
// Run from the repository root after `dotnet build SeqNets.slnx -c Release`:
//     dotnet fsi samples/char-lm.fsx
#r "../SeqNets.FSharp/bin/Release/net10.0/TorchSharp.dll"
#r "../SeqNets.FSharp/bin/Release/net10.0/SeqNets.Core.dll"

// Load libtorch before anything touches TorchSharp (TorchSharp remembers a failed start).
SeqNets.Native.ensure ()

open System
open System.IO
open TorchSharp
open SeqNets

let fail (message: string) =
    eprintfn "FAILED: %s" message
    exit 1

// A small text with structure to learn: the lecture's sentences about state, repeated with variations.
let text =
    [ for i in 1 .. 60 ->
        $"state {i % 7} summarises the past; h_t = f(x_t, h_(t-1)) and y_t = g(h_t).\n" ]
    |> String.concat ""

let corpus = Corpus.split 0.9 text
printfn "vocabulary: %d characters; %d training, %d validation" corpus.Vocabulary.Size corpus.Train.Length corpus.Validation.Length

let config = { Kind = Lstm; VocabularySize = corpus.Vocabulary.Size; HiddenSize = 48; Layers = 1 }
use model = CharModel.create config torch.float32 7UL
let training = { TrainingConfig.Default with Strategy = Truncated 16; Batch = 8; SequenceLength = 16; LearningRate = 1e-2; Seed = 7UL }
use trainer = new Trainer(model, corpus.Train, training)

let validation () = Training.evaluate model model.DefaultPath corpus.Validation 4 16 10
let before = validation ()
for step in 1 .. 300 do
    let r = trainer.Step()
    if step % 100 = 0 then printfn "step %d  loss %.3f  gradient norm %.2f" r.Step r.Loss r.GradientNorm
let after = validation ()
printfn "validation loss: %.3f → %.3f nats/char (uniform guessing: %.3f)" before after (log (float corpus.Vocabulary.Size))
if not (after < 0.5 * before) then fail $"the validation loss did not halve ({before:F3} → {after:F3})"

let options = { SamplingOptions.Default with Temperature = 0.5; Seed = 3UL }
let sample = Sampling.generate model corpus.Vocabulary "state " 120 options
printfn "sample: state %s" sample
if not (sample.Contains "h_t") then fail "the sample does not reproduce the corpus' h_t"

// Save, load into a fresh model, and sample the same text.
let path = Path.Combine(Path.GetTempPath(), $"seqnets-char-lm-{Environment.ProcessId}.ckpt")
Checkpoint.save path trainer (Some corpus.Vocabulary)
let loaded = Checkpoint.load path
File.Delete path
use _ = loaded.Network
let again = Sampling.generate loaded.Network loaded.Vocabulary.Value "state " 120 options
if again <> sample then fail "the loaded checkpoint samples a different text"
printfn "checkpoint round trip: the loaded model samples the same text"
