(**
# Getting started from F#

This page is an F# script: `docs/getting-started-fsharp.fsx` is the source and CI runs it, so every
line below compiles and every claim is checked. Run it yourself from the repository root:

```sh
dotnet build SeqNets.slnx -c Release
dotnet fsi docs/getting-started-fsharp.fsx
```

It walks through cells as values, one unroll, the three routes to $\partial s_t / \partial \theta$ and
the identity that ties them together, the derivative helpers of SeqNets.FSharp, and a small
character model trained on a short text and sampled.

## Referencing SeqNets

A script references the built assemblies. `SeqNets.FSharp`'s output folder holds everything: its own
assembly, `SeqNets.Core`, TorchSharp and the native libtorch files under `runtimes/`.
*)
#r "../SeqNets.FSharp/bin/Release/net10.0/TorchSharp.dll"
#r "../SeqNets.FSharp/bin/Release/net10.0/SeqNets.Core.dll"
#r "../SeqNets.FSharp/bin/Release/net10.0/SeqNets.FSharp.dll"

(**
Load libtorch before anything else touches TorchSharp. Every SeqNets entry point does this too, but
TorchSharp remembers a failed start for the life of the process, so a script that calls `torch.*`
first must call `Native.ensure ()` first (see [engine.md](engine.md)).
*)
SeqNets.Native.ensure ()

open TorchSharp
open SeqNets
open SeqNets.FSharp

(**
Each claim of this page is checked by `check`, which stops the script with exit code 1 when one does
not hold.
*)
/// Prints the claim when it holds; otherwise reports it and stops the script with exit code 1.
let check (claim: string) (holds: bool) =
    if holds then printfn "ok: %s" claim
    else
        eprintfn "FAILED: %s" claim
        exit 1

/// Largest relative disagreement allowed between two routes to the same derivative (float64).
let tolerance = 1e-9

(**
## Cells are values

A cell is a record: its sizes, the layout of its flat parameter vector $\theta$ and pure functions of
$(\theta, x_t, s_{t-1})$. It holds no tensors. Sizes here are all different — $T \ne B \ne I \ne H$ — so
that a swapped axis cannot go unnoticed.
*)
let T, B, I, H = 6, 2, 3, 4

let cell = Cells.Lstm.create I H // I = 3, H = 4; state s = [h; c], S = 8
printfn "%O" cell
printfn "%O" cell.Layout
check "an LSTM's state is [h; c], S = 2H" (cell.StateSize = 2 * H)
check "an LSTM has P = 4H(I + H) + 8H parameters" (cell.ParameterCount = int64 (4 * H * (I + H) + 8 * H))

(**
$\theta$ is one vector `[P]` whose named blocks are PyTorch's `weight_ih`, `weight_hh`, `bias_ih` and
`bias_hh`; `cell.Layout.View` gives each as a view.
*)
let g = new torch.Generator(42UL)
let theta = Cell.initParameters cell torch.float64 g // [P]
let Whh = cell.Layout.View(theta, "weight_hh") // [4H; H]
check "weight_hh is a [4H; H] view of θ" (Whh.shape = [| 4L * int64 H; int64 H |])

(**
## One step, one unroll

`Cell.step` is one step, input → state → output × state. `Recurrence.unroll` runs it over a
sequence `xs` of shape $[T;B;I]$ (time first) and returns every state, $s_0$ first: $[T{+}1;B;S]$.
*)
let xs = torch.randn([| int64 T; int64 B; int64 I |], dtype = torch.float64, generator = g) // [T; B; I]
let s0 = torch.zeros([| int64 B; int64 cell.StateSize |], dtype = torch.float64) // [B; S]
let states = Recurrence.unroll cell theta xs s0 // [T+1; B; S]
check "unroll returns [T+1; B; S]" (states.shape = [| int64 T + 1L; int64 B; int64 cell.StateSize |])

let h1, s1 = Cell.step cell theta xs[0L] s0 // [B; H], [B; S]
check "the unroll's first state is one step from s_0" (Tensors.relativeError states[1L] s1 = 0.0)
check "the output h_t is the first H entries of s_t" (Tensors.relativeError (Cell.output cell s1) h1 = 0.0)

(**
## Three routes to ∂s_t/∂θ

Each cell carries its hand-derived local Jacobians $c_t = \partial f / \partial s_{t-1}$ ($[B;S;S]$) and
$b_t = \partial f / \partial \theta$ ($[B;S;P]$); the derivations are in [derivations.md](derivations.md).
Along a trajectory they give $a_t = \partial s_t / \partial \theta$ by the recurrence
$a_t = b_t + c_t a_{t-1}$ or by the closed form
$a_t = b_t + \sum_{i<t} \big(\prod_{j=i+1}^{t} c_j\big) b_i$; reverse-mode autodiff through the unrolled graph
gives it a third way. All three are $[T;B;S;P]$.
*)
let j = Bptt.jacobians cell theta xs states // c: [T; B; S; S], b: [T; B; S; P]
let byRecurrence = Bptt.byRecurrence j
let byClosedForm = Bptt.byClosedForm j
let byAutodiff = Bptt.byAutodiff cell theta xs s0

printfn "recurrence vs closed form: %.2g" (Tensors.relativeError byRecurrence byClosedForm)
printfn "closed form vs autodiff:   %.2g" (Tensors.relativeError byClosedForm byAutodiff)
check "the recurrence equals the closed form" (Tensors.relativeError byRecurrence byClosedForm <= tolerance)
check "the closed form equals autodiff" (Tensors.relativeError byClosedForm byAutodiff <= tolerance)

(**
The hand-derived $c_t$ and $b_t$ themselves agree with autodiff's, step by step:
*)
let ja = Bptt.jacobiansByAutodiff cell theta xs states
check "hand-derived c_t = autodiff's" (Tensors.relativeError j.State ja.State <= tolerance)
check "hand-derived b_t = autodiff's" (Tensors.relativeError j.Parameters ja.Parameters <= tolerance)

(**
Truncated BPTT keeps only the last $\tau$ terms of the closed form; with $\tau \ge T$ nothing is cut.
*)
let truncated = Bptt.byTruncatedSum 2 j
check "truncation to τ = T is the closed form" (Tensors.relativeError (Bptt.byTruncatedSum T j) byClosedForm <= tolerance)
check "truncation to τ = 2 < T drops terms" (Tensors.relativeError truncated byClosedForm > tolerance)

(**
The sequence loss $L = \frac{1}{T}\sum_t \ell(y_t, o_t)$ with $y_t = V h_t + c$: its gradient assembled in
closed form from any route's $a_t$ equals reverse mode through the whole graph.
*)
let O = 5
let out = OutputLayer.create H O
let wo = OutputLayer.initParameters out torch.float64 g // [O·H + O]
let targets = torch.randint(int64 O, [| int64 T; int64 B |], generator = g) // [T; B] class indices
let grad = Bptt.lossGradient cell out CrossEntropy wo states j byClosedForm targets
let gTheta, gWo, gS0 = Autodiff.lossGradient cell out CrossEntropy theta wo xs s0 targets
check "∂L/∂θ in closed form = autodiff" (Tensors.relativeError grad.Cell gTheta <= tolerance)
check "∂L/∂w_o in closed form = autodiff" (Tensors.relativeError grad.Output gWo <= tolerance)
check "∂L/∂s_0 in closed form = autodiff" (Tensors.relativeError grad.InitialState gS0 <= tolerance)

(**
## The F# face: networks as pipelines

`SeqNets.FSharp` pairs a cell with its parameters as a `CellModel` and takes the model last, so that
an analysis reads as a pipeline. `Rnn.identity` runs every route and reports how far apart they are.
*)
let net = Rnn.lstm I H |> Rnn.init 42 // float64, seed 42
printfn "%O" net
let report = net |> Rnn.identity xs
printfn "worst disagreement %.2g, |∂s/∂θ| up to %.3g" report.WorstError report.Magnitude
check "Rnn.identity: every route agrees" (report.WorstError <= tolerance)

let viaPipeline = net |> Rnn.dsdθ ByClosedForm xs // [T; B; S; P]
check "Rnn.dsdθ ByClosedForm = ByAutodiff" (Tensors.relativeError viaPipeline (net |> Rnn.dsdθ ByAutodiff xs) <= tolerance)

(**
Scaling $\theta$ pushes the products $\prod c_j$ to vanish or explode. `Rnn.closedFormTerms t` returns the
terms of $a_t$ by lag $k = t - i$; with small weights old steps contribute almost nothing.
*)
let terms = Rnn.elman I H |> Rnn.initWith { Rnn.defaults with Seed = 1; Scale = 0.25 } |> Rnn.closedFormTerms T xs // [T; B; S; P]
let sizes = [ for k in 0 .. T - 1 -> Tensors.maxAbs terms[int64 k] ]
printfn "max |term| by lag: %s" (sizes |> List.map (sprintf "%.2g") |> String.concat " ")
check "small weights: the oldest term is far smaller than the newest" (sizes[T - 1] < 1e-3 * sizes[0])

(**
## Derivative helpers

`AD.grad`, `AD.jacobian`, `AD.jvp`, `AD.vjp`, `AD.diff` and `AD.hessian` differentiate any tensor
function at a point, never touch the point itself, and give zeros where the function does not depend
on it. Here each is checked against a derivative worked out by hand.
*)
let vec (xs: float list) = torch.tensor(Array.ofList xs, dtype = torch.float64)

// f(x, y) = x² y + sin y, ∇f = (2xy, x² + cos y), ∇²f = [[2y, 2x]; [2x, −sin y]]
let f (p: Tensor) = p[0L].square () * p[1L] + p[1L].sin ()
let p = vec [ 0.5; -1.5 ]
let x0, y0 = 0.5, -1.5
check "AD.grad" (Tensors.relativeError (AD.grad f p) (vec [ 2.0 * x0 * y0; x0 * x0 + cos y0 ]) <= 1e-12)
check "AD.hessian"
    (Tensors.relativeError (AD.hessian f p) (torch.tensor(array2D [ [ 2.0 * y0; 2.0 * x0 ]; [ 2.0 * x0; -(sin y0) ] ], dtype = torch.float64)) <= 1e-12)

// polar coordinates (r, φ) ↦ (r cos φ, r sin φ)
let polar (q: Tensor) = torch.stack([| q[0L] * q[1L].cos (); q[0L] * q[1L].sin () |], 0L)
let q = vec [ 2.0; 0.3 ]
let J = torch.tensor(array2D [ [ cos 0.3; -2.0 * sin 0.3 ]; [ sin 0.3; 2.0 * cos 0.3 ] ], dtype = torch.float64)
let u = vec [ 1.0; -2.0 ]
check "AD.jacobian" (Tensors.relativeError (AD.jacobian polar q) J <= 1e-12)
check "AD.jvp is J u" (Tensors.relativeError (AD.jvp polar q u) (J.matmul u) <= 1e-12)
check "AD.vjp is uᵀ J" (Tensors.relativeError (AD.vjp polar q u) (u.matmul J) <= 1e-12)
check "AD.diff tanh" (Tensors.relativeError (AD.diff (fun t -> t.tanh ()) (torch.tensor(0.5, dtype = torch.float64))) (torch.tensor(1.0 - tanh 0.5 ** 2.0, dtype = torch.float64)) <= 1e-12)

(**
`Show.tensor` prints a tensor on one line; `fsi.AddPrinter Show.tensor` makes F# Interactive use it.
*)
printfn "%s" (Show.tensor (AD.jacobian polar q))

(**
## Training a character model

The lecture's running example: one-hot characters → recurrent layers → $y_t = V h_t + c$ → softmax over
the next character. `Corpus.split` builds the vocabulary and cuts the text into a training and a
validation part; `CharModel.create` builds it as a `Network` — one network of layers among others
(see [networks.md](networks.md)) — that keeps all its parameters in one flat tensor; a `Trainer` takes one
batch per `Step ()` under a BPTT strategy, with clipping and an optimizer.
*)
let text =
    String.replicate 12 "Twinkle, twinkle, little star,\nHow I wonder what you are!\nUp above the world so high,\nLike a diamond in the sky.\n"

let corpus = Corpus.split 0.9 text
printfn "%O, %d training and %d validation characters" corpus.Vocabulary corpus.Train.Length corpus.Validation.Length

let model = CharModel.create { Kind = Lstm; VocabularySize = corpus.Vocabulary.Size; HiddenSize = 48; Layers = 1 } torch.float32 1UL
let config =
    { TrainingConfig.Default with
        Strategy = Truncated 16
        LearningRate = 1e-2
        Batch = 8
        SequenceLength = 32 }
let trainer = new Trainer(model, corpus.Train, config)

let before = Training.evaluate model trainer.Path corpus.Validation 4 16 8
let reports = [ for _ in 1 .. 150 -> trainer.Step () ]
let after = Training.evaluate model trainer.Path corpus.Validation 4 16 8
printfn "validation loss: %.3f nats/char before, %.3f after %d steps" before after reports.Length
check "every update was applied (finite gradients)" (reports |> List.forall _.Applied)
check "the training loss fell below half its start" ((List.last reports).Loss < 0.5 * reports.Head.Loss)
check "the model learned the text: validation loss below a third of its start" (after < before / 3.0)

(**
## Sampling

`Sampling.generate` primes the model with a text and draws characters one at a time from
softmax($y_t$ / temperature), with a seeded generator so the same call gives the same text.
*)
let sample = Sampling.generate model corpus.Vocabulary "Twinkle" 80 { SamplingOptions.Default with Temperature = 0.5; Seed = 3UL }
printfn "%s" sample
check "80 characters, all from the vocabulary" (sample.Length = 80 && sample |> Seq.forall corpus.Vocabulary.Contains)
check "the same seed gives the same text" (Sampling.generate model corpus.Vocabulary "Twinkle" 80 { SamplingOptions.Default with Temperature = 0.5; Seed = 3UL } = sample)

(**
`Checkpoint.save` and `Checkpoint.resume` carry a trainer across processes; the `seqnets` command
line (`dotnet run --project SeqNets.Cli -c Release -- --help`) trains, samples and verifies from the
shell. [api.md](api.md) lists the whole API.
*)
(trainer :> System.IDisposable).Dispose ()
(model :> System.IDisposable).Dispose ()
printfn "every claim of this page holds"
