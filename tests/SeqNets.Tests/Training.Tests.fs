/// Training: the lecture's "hell" example, BPTT strategies against the closed form, clipping,
/// optimizers, reproducibility, sampling and memory.
module SeqNets.Tests.TrainingTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open SeqNets
open SeqNets.Tests.Common

let private config kind V H = { Kind = kind; VocabularySize = V; HiddenSize = H; Layers = 1 }

/// The flat gradient [θ; w_o] that the closed form gives for one batch under boundary weights.
let closedFormGradient (model: Network) (inputs: torch.Tensor) (targets: torch.Tensor) (s0: torch.Tensor) (weights: float[]) =
    let cell = model.Cells[0]
    let theta, wo = model.LayerParameters(0).detach (), model.ReadoutParameters.detach ()
    let xs = torch.nn.functional.one_hot(inputs, int64 model.Spec.Output).to_type model.DType // [T; B; V]
    let states = Recurrence.unroll cell theta xs s0
    let j = Bptt.jacobians cell theta xs states
    let a = Bptt.byWeightedSum (BpttStrategy.termWeight weights) j
    let g = Bptt.lossGradient cell model.Readout CrossEntropy wo states j a targets
    torch.cat([| g.Cell; g.Output |], 0L)

/// Inputs, targets and a random carried state for a single-layer model.
let private batchFor (model: Network) (s: CaseSpec) =
    let g = generator s.Seed
    let V = int64 model.Spec.Output
    let inputs = torch.randint(V, [| int64 s.Steps; int64 s.Batch |], generator = g)
    let targets = torch.randint(V, [| int64 s.Steps; int64 s.Batch |], generator = g)
    let s0 = torch.randn([| int64 s.Batch; int64 model.Cells[0].StateSize |], dtype = torch.float64, generator = g) * 0.5
    inputs, targets, s0

let private kinds = [ ElmanTanh; GruPyTorch; GruLecture; Lstm; MultiplicativeRnn 5 ]

/// A batch of token ids and next-token targets with every step real.
let textBatch (inputs: torch.Tensor) (targets: torch.Tensor) = { Inputs = inputs; Lengths = None; Targets = targets; TargetLengths = None }

let private gradientOf (model: Network) path inputs targets (s0: torch.Tensor) weights =
    Training.gradient model path (textBatch inputs targets) (Some [| s0 |]) (Some weights) |> ignore
    model.Parameters.grad.detach().clone ()

[<Tests>]
let tests =
    testList "Training" [
        testList "the lecture's example: after training on \"hell\" → \"ello\" the argmax continues it" [
            for kind in [ ElmanTanh; GruPyTorch; Lstm ] ->
                test $"{kind}" {
                    use _ = torch.NewDisposeScope()
                    let corpus = Corpus.split 1.0 "hello"
                    use model = CharModel.create (config kind 4 12) torch.float32 3UL
                    let cfg = { TrainingConfig.Default with Strategy = Full; Batch = 1; SequenceLength = 4; LearningRate = 0.05; Clipping = ByNorm 5.0 }
                    use trainer = new Trainer(model, corpus.Train, cfg)
                    for _ in 1 .. 300 do trainer.Step() |> ignore
                    use _ = torch.no_grad ()
                    let ids = torch.tensor(Vocabulary.encode corpus.Vocabulary "hell").reshape(4L, 1L)
                    let logits, _ = model.Forward(model.DefaultPath, ids, model.ZeroState 1)
                    let predicted = Vocabulary.decode corpus.Vocabulary (logits.argmax(2L).reshape(-1L).data<int64>().ToArray())
                    Expect.equal predicted "ello" "e after h, l after he, l after hel, o after hell"
                }
        ]

        testList "the training gradient equals the closed form with the strategy's weights" [
            for kind in kinds ->
                property $"{kind}: truncated BPTT" (fun s ->
                    use _ = torch.NewDisposeScope()
                    use model = CharModel.create (config kind s.Input s.Hidden) torch.float64 (uint64 s.Seed)
                    let inputs, targets, s0 = batchFor model s
                    let tau = 1 + s.Seed % 7
                    let weights = BpttStrategy.boundaryWeights (Truncated tau) s.Steps (SplitMix 0UL)
                    close $"{kind}, τ = {tau}, {s}" exact (gradientOf model Step inputs targets s0 weights) (closedFormGradient model inputs targets s0 weights))
            yield property "lstm: randomized truncation's compensated weights" (fun s ->
                use _ = torch.NewDisposeScope()
                use model = CharModel.create (config Lstm s.Input s.Hidden) torch.float64 (uint64 s.Seed)
                let inputs, targets, s0 = batchFor model s
                let weights = BpttStrategy.boundaryWeights (Randomized 4.0) s.Steps (SplitMix(uint64 s.Seed))
                close $"{s}" exact (gradientOf model Step inputs targets s0 weights) (closedFormGradient model inputs targets s0 weights))
            yield property "at the end of each τ-chunk the weights keep exactly the last τ terms" (fun s ->
                use _ = torch.NewDisposeScope()
                let tau = 1 + s.Seed % 5
                let weights = BpttStrategy.boundaryWeights (Truncated tau) s.Steps (SplitMix 0UL)
                let w = BpttStrategy.termWeight weights
                for t in 1 .. s.Steps do
                    if t % tau = 0 then
                        for i in 1 .. t do
                            Expect.equal (w t i) (if t - i < tau then 1.0 else 0.0) $"w({t}, {i}), τ = {tau}")
        ]

        testList "the fused kernels and the lecture's equations are one model" [
            for kind in [ ElmanTanh; GruPyTorch; Lstm ] ->
                property $"{kind}: same logits and gradients on both paths" (fun s ->
                    use _ = torch.NewDisposeScope()
                    use model = CharModel.create (config kind s.Input s.Hidden) torch.float64 (uint64 s.Seed)
                    let inputs, targets, s0 = batchFor model s
                    let weights = BpttStrategy.boundaryWeights (Truncated (1 + s.Seed % 6)) s.Steps (SplitMix 0UL)
                    let step = gradientOf model Step inputs targets s0 weights
                    let fused = gradientOf model Fused inputs targets s0 weights
                    close $"{kind} gradient, {s}" 1e-10 fused step
                    use _ = torch.no_grad ()
                    let ls, _ = model.Forward(Step, inputs, [| s0 |])
                    let lf, _ = model.Forward(Fused, inputs, [| s0 |])
                    close $"{kind} logits, {s}" 1e-12 lf ls)
        ]

        test "randomized truncation is unbiased: its exact expectation over all truncation patterns is the full gradient" {
            use _ = torch.NewDisposeScope()
            let T, meanLength = 6, 3.0
            let c = 1.0 / meanLength
            let s = { Steps = T; Batch = 2; Input = 4; Hidden = 5; Regime = Moderate; Seed = 17 }
            use model = CharModel.create (config Lstm 4 5) torch.float64 17UL
            let inputs, targets, s0 = batchFor model s
            let full = gradientOf model Step inputs targets s0 (BpttStrategy.boundaryWeights Full T (SplitMix 0UL))
            let mutable expectation = torch.zeros_like full
            let mutable totalProbability = 0.0
            // Every pattern of cuts before steps 2..T, with its probability.
            for pattern in 0 .. (1 <<< (T - 1)) - 1 do
                let cut j = (pattern >>> (j - 1)) &&& 1 = 1
                let weights = Array.init T (fun t -> if t = 0 then 0.0 elif cut t then 0.0 else 1.0 / (1.0 - c))
                let probability = Seq.fold (fun p j -> p * (if cut j then c else 1.0 - c)) 1.0 (seq { 1 .. T - 1 })
                totalProbability <- totalProbability + probability
                expectation <- expectation + gradientOf model Step inputs targets s0 weights * probability
            Expect.floatClose Accuracy.veryHigh totalProbability 1.0 "the patterns cover the distribution"
            close "E[randomized gradient] = full gradient" 1e-12 expectation full
            let truncated = gradientOf model Step inputs targets s0 (BpttStrategy.boundaryWeights (Truncated 2) T (SplitMix 0UL))
            Expect.isGreaterThan (Tensors.relativeError truncated full) 1e-3 "while plain truncation is biased"
        }

        testList "the automatic path is the fastest correct one (Training.choosePath)" [
            let chosen (kind: CellKind) (layers: int) (strategy: BpttStrategy) =
                use model = CharModel.create { (config kind 5 6) with Layers = layers } torch.float32 1UL
                Training.choosePath model { TrainingConfig.Default with Strategy = strategy }
            yield test "LSTM stacks: libtorch's fused kernels" {
                Expect.equal (chosen Lstm 1 Full) Fused "LSTM 1 layer"
                Expect.equal (chosen Lstm 2 (Truncated 4)) Fused "LSTM 2 layers, truncated"
                Expect.equal (chosen ElmanTanh 1 Full) Fused "Elman"
            }
            yield test "GRU layers, the cells libtorch has no kernel for, randomized truncation: the engine on the derivation" {
                Expect.equal (chosen GruPyTorch 1 Full) Derived "GRU, where the engine is measured faster"
                Expect.equal (chosen GruLecture 1 Full) Derived "the lecture's GRU"
                Expect.equal (chosen (MultiplicativeRnn 3) 2 Full) Derived "the multiplicative RNN"
                Expect.equal (chosen Lstm 1 (Randomized 4.0)) Derived "randomized truncation, which the fused kernels cannot weight"
            }
            yield test "a path asked for is taken" {
                use model = CharModel.create (config GruPyTorch 5 6) torch.float32 1UL
                for p in [ Fused; Step; Derived ] do
                    Expect.equal (Training.choosePath model { TrainingConfig.Default with Path = Some p }) p $"{p}"
            }
        ]

        testList "gradient clipping" [
            testProperty "by norm: norm after ≤ τ, direction kept; untouched below τ" (fun (seed: int) (threshold: PositiveInt) ->
                use _ = torch.NewDisposeScope()
                let tau = float threshold.Get / 10.0
                let g = torch.randn([| 50L |], dtype = torch.float64, generator = generator seed) * (float (seed % 7 + 1))
                let before = g.clone ()
                let norm = Clipping.apply (ByNorm tau) g
                Expect.floatClose Accuracy.veryHigh norm (before.norm().item<float> ()) "reports the norm before"
                let after = g.norm().item<float> ()
                if norm <= tau then close "untouched" 0.0 g before
                else
                    Expect.isLessThanOrEqual after (tau * (1.0 + 1e-12)) "norm after ≤ τ"
                    let cosine = (g * before).sum().item<float> () / (after * norm)
                    Expect.floatClose Accuracy.veryHigh cosine 1.0 "same direction")
            test "by value: every entry within [−v, v]" {
                let g = torch.tensor([| -3.0; -0.5; 0.2; 7.0 |])
                Clipping.apply (ByValue 1.0) g |> ignore
                Expect.sequenceEqual (g.data<float>().ToArray()) [| -1.0; -0.5; 0.2; 1.0 |] "clamped"
            }
            test "a non-finite gradient is reported and the update skipped" {
                use _ = torch.NewDisposeScope()
                let corpus = Corpus.split 1.0 "hello hello hello"
                use model = CharModel.create (config Lstm corpus.Vocabulary.Size 6) torch.float32 1UL
                do
                    use _ = torch.no_grad ()
                    model.Parameters[0L] <- torch.tensor(nan, dtype = torch.float32)
                use trainer = new Trainer(model, corpus.Train, { TrainingConfig.Default with Batch = 2; SequenceLength = 3 })
                let before = model.Parameters.detach().clone ()
                let r = trainer.Step()
                Expect.isFalse r.Applied "not applied"
                Expect.isFalse (Double.IsFinite r.GradientNorm) "reported as non-finite"
                Expect.equal trainer.SkippedUpdates 1 "counted"
                close "parameters unchanged" 0.0 (model.Parameters.detach().nan_to_num()) (before.nan_to_num())
            }
        ]

        testList "optimizers" [
            for name, kind, lr in [ "sgd with momentum", Sgd 0.9, 0.1; "adagrad", Adagrad, 0.1; "rmsprop", RmsProp 0.95, 0.01; "adam", Adam, 0.01 ] ->
                test $"{name} lowers the training loss" {
                    use _ = torch.NewDisposeScope()
                    let corpus = Corpus.split 1.0 (String.replicate 20 "the cat sat on the mat. ")
                    use model = CharModel.create (config GruPyTorch corpus.Vocabulary.Size 16) torch.float32 5UL
                    use trainer = new Trainer(model, corpus.Train, { TrainingConfig.Default with Optimizer = kind; LearningRate = lr; Batch = 4; SequenceLength = 16 })
                    let losses = [ for _ in 1 .. 150 -> trainer.Step().Loss ]
                    let first, last = List.average losses[.. 9], List.average losses[140 ..]
                    Expect.isLessThan last (first * 0.8) $"from {first:F3} to {last:F3}"
                }
            yield test "the schedule: step decay and cosine" {
                Expect.floatClose Accuracy.veryHigh (Schedule.rate (StepDecay(10, 0.5)) 1.0 25) 0.25 "two halvings"
                Expect.floatClose Accuracy.veryHigh (Schedule.rate (Cosine(100, 0.1)) 1.0 0) 1.0 "starts at the base"
                Expect.floatClose Accuracy.veryHigh (Schedule.rate (Cosine(100, 0.1)) 1.0 100) 0.1 "ends at the floor"
            }
        ]

        test "the same seed on the same machine gives the same losses" {
            let run () =
                use _ = torch.NewDisposeScope()
                let corpus = Corpus.split 1.0 (String.replicate 10 "to be or not to be, ")
                use model = CharModel.create (config Lstm corpus.Vocabulary.Size 10) torch.float32 9UL
                use trainer = new Trainer(model, corpus.Train, { TrainingConfig.Default with Strategy = Randomized 4.0; Path = Some Step; Batch = 3; SequenceLength = 12; Seed = 9UL })
                [ for _ in 1 .. 25 -> trainer.Step().Loss ]
            let a, b = run (), run ()
            Expect.sequenceEqual a b "identical losses"
        }

        testList "sampling" [
            let setup () =
                let corpus = Corpus.split 1.0 "abcabcabcabcabcabc"
                let model = CharModel.create (config Lstm corpus.Vocabulary.Size 8) torch.float32 2UL
                corpus, model
            yield test "seeded: the same seed gives the same text, another seed another text" {
                let corpus, model = setup ()
                use _ = model
                let gen seed = Sampling.generate model corpus.Vocabulary "ab" 60 { SamplingOptions.Default with Temperature = 1.5; Seed = seed }
                Expect.equal (gen 1UL) (gen 1UL) "reproducible"
                Expect.notEqual (gen 1UL) (gen 2UL) "seed matters"
                Expect.equal (gen 1UL).Length 60 "length"
            }
            yield test "the per-character sampler runs the same model as Forward, for stacked and step-only cells" {
                for kind in [ Lstm; GruLecture; MultiplicativeRnn 4 ] do
                    use _ = torch.NewDisposeScope()
                    let corpus = Corpus.split 1.0 "the quick brown fox jumps over the lazy dog"
                    use model = CharModel.create ({ Kind = kind; VocabularySize = corpus.Vocabulary.Size; HiddenSize = 9; Layers = 2 }) torch.float64 8UL
                    let greedy = { Temperature = 1.0; TopK = 1; Seed = 0UL }
                    let sampled = Sampling.generate model corpus.Vocabulary "the " 30 greedy
                    // Reference: the whole text so far through Forward, argmax of the last logits.
                    use _ = torch.no_grad ()
                    let mutable text = "the "
                    for _ in 1 .. 30 do
                        let ids = torch.tensor(Vocabulary.encode corpus.Vocabulary text).reshape(-1L, 1L)
                        let logits, _ = model.Forward(Step, ids, model.ZeroState 1)
                        let next = logits[-1L, 0L].argmax().item<int64> ()
                        text <- text + corpus.Vocabulary.TextOf(int next)
                    Expect.equal sampled text[4 ..] $"{kind}: greedy text"
            }
            yield test "the float32 sampler in .NET arrays gives Forward's logits, for every cell kind, two layers" {
                for kind in [ ElmanTanh; ElmanRelu; GruPyTorch; GruLecture; Lstm; MultiplicativeRnn 7 ] do
                    use _ = torch.NewDisposeScope()
                    let corpus = Corpus.split 1.0 "the quick brown fox jumps over the lazy dog"
                    use model = CharModel.create ({ Kind = kind; VocabularySize = corpus.Vocabulary.Size; HiddenSize = 11; Layers = 2 }) torch.float32 12UL
                    use _ = torch.no_grad ()
                    let ids = Vocabulary.encode corpus.Vocabulary "the lazy dog jumps"
                    let fast = FastSampler.Create model
                    fast.SetState(model.ZeroState 1)
                    let reference, _ = model.Forward(Step, torch.tensor(ids).reshape(-1L, 1L), model.ZeroState 1) // [T; 1; V]
                    for t in 0 .. ids.Length - 1 do
                        let ours = torch.tensor(fast.Step(int ids[t]))
                        close $"{kind}, step {t}" 1e-5 ours reference[int64 t, 0L]
            }
            yield test "top-k = 1 is the argmax" {
                let logits = [| 0.1; 2.0; -1.0; 1.9 |]
                for seed in 1UL .. 20UL do
                    Expect.equal (Sampling.draw { Temperature = 1.0; TopK = 1; Seed = 0UL } (SplitMix seed) logits) 1 "argmax"
            }
            yield test "temperature sharpens: low temperature almost always picks the argmax" {
                let logits = [| 0.0; 1.0; 0.5 |]
                let rng = SplitMix 3UL
                let picks = [ for _ in 1 .. 200 -> Sampling.draw { Temperature = 0.05; TopK = 0; Seed = 0UL } rng logits ]
                Expect.isGreaterThan (picks |> List.filter ((=) 1) |> List.length) 195 "argmax dominates"
                let rng = SplitMix 3UL
                let hot = [ for _ in 1 .. 600 -> Sampling.draw { Temperature = 1.0; TopK = 0; Seed = 0UL } rng logits ]
                Expect.isGreaterThan (hot |> List.filter ((=) 0) |> List.length) 100 "temperature 1 spreads"
            }
            yield test "an unknown character in the prime is an ArgumentException naming it" {
                let corpus, model = setup ()
                use _ = model
                let e = Expect.throwsC (fun () -> Sampling.generate model corpus.Vocabulary "abz" 5 SamplingOptions.Default |> ignore) id
                Expect.stringContains e.Message "'z'" "names it"
            }
            yield test "a non-positive temperature is an ArgumentException" {
                let corpus, model = setup ()
                use _ = model
                Expect.throwsT<ArgumentException> (fun () -> Sampling.generate model corpus.Vocabulary "a" 5 { SamplingOptions.Default with Temperature = 0.0 } |> ignore) "rejected"
            }
        ]

        // Sequenced: Expecto runs these alone, after the parallel tests, so that the global
        // live-tensor count and the resident size are this test's own.
        testSequenced <| testList "10,000 training steps leave no live tensors behind and keep resident memory flat" [
            for path in [ Step; Derived ] ->
                test $"{path} path" {
                    let corpus = Corpus.split 1.0 (String.replicate 20 "memory stays flat. ")
                    use model = CharModel.create (config Lstm corpus.Vocabulary.Size 8) torch.float32 4UL
                    use trainer = new Trainer(model, corpus.Train, { TrainingConfig.Default with Batch = 2; SequenceLength = 6; Path = Some path })
                    let rss () = (Diagnostics.Process.GetCurrentProcess().Refresh(); Diagnostics.Process.GetCurrentProcess().WorkingSet64)
                    for _ in 1 .. 500 do trainer.Step() |> ignore // warm up allocators and the optimizer state
                    GC.Collect(); GC.WaitForPendingFinalizers()
                    let tensors0, rss0 = torch.Tensor.TotalCount, rss ()
                    for _ in 1 .. 10_000 do trainer.Step() |> ignore
                    GC.Collect(); GC.WaitForPendingFinalizers()
                    let tensors1, rss1 = torch.Tensor.TotalCount, rss ()
                    Expect.equal tensors1 tensors0 $"live tensors: {tensors0} before, {tensors1} after"
                    Expect.isLessThan (float (rss1 - rss0)) (64.0 * 1024.0 * 1024.0) $"resident memory grew by {(rss1 - rss0) / 1024L / 1024L} MiB"
                }
        ]
    ]
