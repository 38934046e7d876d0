(**
# SeqNets documentation

| page | contents |
| --- | --- |
| [getting-started-fsharp.md](getting-started-fsharp.md) | an F# walkthrough: cells as values, one unroll, the three routes to $\partial s_t / \partial \theta$, the derivative helpers, a character model trained and sampled (a script CI runs, every claim checked) |
| [getting-started-csharp.md](getting-started-csharp.md) | a C# developer's walkthrough: cells, unroll, the identity check, training with progress and cancellation, sampling, save and load (every block compiled and run by the C# tests) |
| [api.md](api.md) | every public name of the three packages, in compile order |
| [cells.md](cells.md) | every built-in cell: equations in the lecture's and PyTorch's notation, state layout, parameter count $P$, which GRU form to use, multiplicative modules and the mRNN |
| [derivations.md](derivations.md) | $c_t = \partial s_t / \partial s_{t-1}$ and $b_t = \partial s_t / \partial \theta$ of every cell, derived by rules from its equations (made by `seqnets derive`); the identity $a_t = b_t + c_t a_{t-1}$ and its closed form; one step at scale; the autodiff reference; $\partial L / \partial \theta$ |
| [symbolic.md](symbolic.md) | cells written as equations: a user's cell (an MGU) from F#, its derivation, the identity checked, bad equations, C# |
| [bptt.md](bptt.md) | the lecture's gradient analysis: vanishing and exploding gradients, truncated and randomized truncated BPTT, gradient clipping |
| [gradient-flow.md](gradient-flow.md) | vanishing and exploding gradients made visible: per-lag norms of $\prod c_j$ and of the closed form's terms, the loss gradient by lag, what truncation at every $\tau$ throws away, the spectrum of $c_t$, pictures; clipping and truncation on an exploding configuration; the adding and copy tasks for Elman, GRU and LSTM |
| [networks.md](networks.md) | networks from layers: input layers, any cell stacked or bidirectional, padded batches, the five heads, the two paths, stacks as cells, training any network |
| [custom-cells.md](custom-cells.md) | your own cell (an MGU) defined, verified by the closed form, trained on text, saved, resumed, sampled and exported — the same API as an LSTM ([C# version](custom-cells-csharp.md)) |
| [tasks.md](tasks.md) | generated tasks, one per shape: balanced brackets beside the stack check, depth tagging, spelling numbers, one direction against both — the table and the command for each row |
| [seq2seq.md](seq2seq.md) | sequence to sequence: the encoder–decoder, Bahdanau and Luong attention (dot, general, additive), teacher forcing, source reversal, greedy and beam search, attention heatmaps, the reverse / dates / addition tasks |
| [training.md](training.md) | character models: data, the two execution paths, BPTT strategies, optimizers, clipping, sampling, checkpoints, the command line |
| [interop.md](interop.md) | moving Elman, GRU and LSTM weights and whole character models between PyTorch `.pt` state dicts and SeqNets |
| [engine.md](engine.md) | loading libtorch: the `GLIBCXX_3.4.32` fix, `Native.ensure ()`, the errors you may see |
| [benchmarks.md](benchmarks.md) | speed against PyTorch |

Every F# block of these pages is part of an F# script (`docs/<page>.fsx`) that CI runs and that checks
what the page says; the page is made from the script.

## Conventions

* **Time first.** Sequences are $[T;B;\dots]$: inputs `xs` $[T;B;I]$, outputs $[T;B;H]$, targets $[T;B]$ (class
  indices) or $[T;B;O]$. One step sees $x_t$ $[B;I]$.
* **Flat state.** The state is one vector per batch row, $s_t$ $[B;S]$; the output $h_t$ is its first $H$ entries.
  For an LSTM $s = [h; c]$, $S = 2H$; for the other built-in cells $s = h$. `Recurrence.unroll` returns every
  state, $s_0$ first: $[T{+}1;B;S]$. Hence $c_t$ is always $[B;S;S]$.
* **Flat parameters.** A cell's parameters are one vector $\theta$ $[P]$ whose named blocks
  (`cell.Layout`, `cell.Layout.View(θ, name)`) are PyTorch's `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`
  for the Elman, GRU and LSTM cells. Hence $b_t$ is always $[B;S;P]$ and $a_t = \partial s_t / \partial \theta$ along a
  sequence is $[T;B;S;P]$. The output layer has its own flat $w_o$ = [`weight` $[O;H]$; `bias` $[O]$].
* **Indices.** Time is 1-based in formulas ($x_1 \dots x_T$, $s_0$ the initial state) and 0-based in tensors:
  `xs[t-1]` is $x_t$, `states[t]` is $s_t$, index $t-1$ of a $[T;\dots]$ result holds step $t$.
* **Errors.** Bad input raises `ArgumentException` naming the argument, what was expected and what arrived.
*)
(*** hide ***)
#r "../SeqNets.FSharp/bin/Release/net10.0/TorchSharp.dll"
#r "../SeqNets.FSharp/bin/Release/net10.0/SeqNets.Core.dll"
SeqNets.Native.ensure ()

/// Stops the script with exit code 1 when a claim of the page does not hold.
let check (claim: string) (holds: bool) =
    if not holds then
        eprintfn "FAILED: %s" claim
        exit 1

let shape (t: TorchSharp.torch.Tensor) = List.ofArray t.shape
(**
## The lecture's five shapes

The lecture (after Karpathy) distinguishes five input/output arrangements. `Network` gives each as a head
over layers of any cell ([networks.md](networks.md)); underneath, each is one or two calls of
`Recurrence.unroll` with an `OutputLayer` ($y_t = V h_t + c^o$), as this section shows. Common setup:
*)
open TorchSharp
open SeqNets

let I, H, O, T, B = 3, 4, 7, 6, 2
let g = new torch.Generator(1UL)
let cell = Cells.Gru.create Cells.PyTorch I H
let theta = Cell.initParameters cell torch.float64 g
let out = OutputLayer.create cell.HiddenSize O
let wo = OutputLayer.initParameters out torch.float64 g
let s0 = torch.zeros([| int64 B; int64 cell.StateSize |], dtype = torch.float64)   // [B; S]
let readout states = OutputLayer.apply out wo (Recurrence.outputs cell states)      // [T+1; B; S] → [T; B; O]
(*** hide ***)
let i, h, o, t, b = int64 I, int64 H, int64 O, int64 T, int64 B
check "w_o = [weight [O;H]; bias [O]]" (shape wo = [ o * h + o ])
;;
(**
**(1) One-to-one** (image classification). No recurrence: a single step, $T = 1$.
*)
let x = torch.randn([| 1L; int64 B; int64 I |], dtype = torch.float64, generator = g)   // [1; B; I]
let y = readout (Recurrence.unroll cell theta x s0)                                   // [1; B; O]
(*** hide ***)
check "one-to-one: y is [1; B; O]" (shape y = [ 1L; b; o ])
let oneStep = (Recurrence.unroll cell theta x s0).[1L]
check "one-to-one: a single step" (Tensors.relativeError oneStep (snd (Cell.step cell theta x[0L] s0)) = 0.0)
;;
(**
**(2) One-to-many** (image captioning). One input, a sequence out: feed $x$ at $t = 1$ and zeros after (or
encode $x$ into $s_0$), read every step.
*)
let x1 = torch.randn([| 1L; int64 B; int64 I |], dtype = torch.float64, generator = g)
let xs = torch.cat([| x1; torch.zeros([| int64 T - 1L; int64 B; int64 I |], dtype = torch.float64) |], 0L)
let ys = readout (Recurrence.unroll cell theta xs s0)                                 // [T; B; O]
(*** hide ***)
check "one-to-many: ys is [T; B; O]" (shape ys = [ t; b; o ])
;;
(**
Feeding each output back as the next input (sampling) needs $y_{t-1}$ before step $t$: loop over
`Cell.step cell theta x s`, since `unroll` takes the whole input sequence up front.

**(3) Many-to-one** (sentiment). A sequence in, one output from the last state:
*)
let xs = torch.randn([| int64 T; int64 B; int64 I |], dtype = torch.float64, generator = g)
let states = Recurrence.unroll cell theta xs s0
let yLast = OutputLayer.apply out wo (Cell.output cell states[-1L])                    // [B; O]
(*** hide ***)
check "many-to-one: yLast is [B; O]" (shape yLast = [ b; o ])
check "many-to-one: yLast is the last row of the synced readout" (Tensors.relativeError yLast (readout states).[-1L] = 0.0)
// The gradient of the single loss ℓ(y_T, o_T) is ∂ℓ/∂s_T · a_T, with a_T the last row of a route's a.
let oT = torch.randint(o, [| 1L; b |], generator = g)                                       // [1; B]
let lastLoss (th: Tensor) =
    let sT = (Recurrence.unroll cell th xs s0)[-1L]                                          // [B; S]
    Loss.sequence CrossEntropy ((OutputLayer.apply out wo (Cell.output cell sT)).unsqueeze 0L) oT
let byReverse =
    let th = theta.detach().requires_grad_ true
    List.head (Autodiff.grad [ lastLoss th ] [ th ])                                          // [P]
let aT = (Bptt.byClosedForm (Bptt.jacobians cell theta xs states))[-1L]                     // [B; S; P]
let deltaT = Loss.outputGradient CrossEntropy (yLast.unsqueeze 0L) oT                    // [1; B; O]
let dsT = deltaT[0L].matmul (out.Layout.View(wo, "weight"))                                 // [B; H], S = H
check "many-to-one: ∂ℓ/∂θ = ∂ℓ/∂s_T · a_T" (Tensors.relativeError (torch.einsum("bs,bsp->p", dsT, aT)) byReverse <= 1e-9)
;;
(**
Its loss is a single $\ell(y_T, o_T)$: its gradient is $\partial \ell / \partial s_T \cdot a_T$ with $a_T$ the last row of any
route's $a$ (`Bptt.lossGradient` assumes a loss at every step, $L = \frac{1}{T}\sum_t \ell_t$).

**(4) Many-to-many** (translation). An encoder reads the source; its last state starts a decoder that
produces the target sequence (here fed with the previous target tokens, as in teacher forcing):
*)
let encoder, decoder = Cells.Lstm.create I H, Cells.Lstm.create 5 H                   // same S = 2H
let thetaE, thetaD = Cell.initParameters encoder torch.float64 g, Cell.initParameters decoder torch.float64 g
let source = torch.randn([| int64 T; int64 B; int64 I |], dtype = torch.float64, generator = g)
let shifted = torch.randn([| 4L; int64 B; 5L |], dtype = torch.float64, generator = g)    // decoder inputs [T'; B; 5]
let enc = Recurrence.unroll encoder thetaE source (torch.zeros([| int64 B; int64 encoder.StateSize |], dtype = torch.float64))
let dec = Recurrence.unroll decoder thetaD shifted enc[-1L]                            // s_0 of the decoder = s_T of the encoder
let ys = OutputLayer.apply out wo (Recurrence.outputs decoder dec)                     // [T'; B; O]
(*** hide ***)
check "many-to-many: encoder and decoder states have the same S = 2H" (encoder.StateSize = 2 * H && decoder.StateSize = 2 * H)
check "many-to-many: ys is [T'; B; O]" (shape ys = [ 4L; b; o ])
check "many-to-many: the decoder starts from the encoder's last state" (Tensors.relativeError dec[0L] enc[-1L] = 0.0)
;;
(**
`Bptt` analyses one unroll; gradients through both go by reverse mode (TorchSharp's autograd, or
`Autodiff.gradWith`).

**(5) Synced many-to-many** (labelling every video frame). One output per input step:
*)
let xs = torch.randn([| int64 T; int64 B; int64 I |], dtype = torch.float64, generator = g)
let states = Recurrence.unroll cell theta xs s0
let ys = readout states                                                              // [T; B; O]
let targets = torch.randint(int64 O, [| int64 T; int64 B |], generator = g)
let L = Loss.sequence CrossEntropy ys targets                                        // 1/T Σ_t ℓ(y_t, o_t)
let j = Bptt.jacobians cell theta xs states
let grad = Bptt.lossGradient cell out CrossEntropy wo states j (Bptt.byRecurrence j) targets
(*** hide ***)
check "synced: ys is [T; B; O]" (shape ys = [ t; b; o ])
let gTheta, gWo, gS0 = Autodiff.lossGradient cell out CrossEntropy theta wo xs s0 targets
check "synced: ∂L/∂θ from the recurrence = reverse mode" (Tensors.relativeError grad.Cell gTheta <= 1e-9)
check "synced: ∂L/∂w_o = reverse mode" (Tensors.relativeError grad.Output gWo <= 1e-9)
check "synced: ∂L/∂s_0 = reverse mode" (Tensors.relativeError grad.InitialState gS0 <= 1e-9)
check "synced: L = 1/T Σ_t ℓ(y_t, o_t)" (Tensors.relativeError L ((Loss.perStep CrossEntropy ys targets).sum() / float T) <= 1e-12)
;;
(**
This is the lecture's $L = \frac{1}{T}\sum_t \ell(y_t, o_t)$ exactly, and the case `Bptt.lossGradient` computes.

The lecture's Enc → $g$ → Dec form, $h(t) = \mathrm{Enc}(x(t))$, $z(t) = g(h(t), z(t-1), w)$, $y(t) = \mathrm{Dec}(z(t))$, is
`Recurrence.encodeRecurDecode encode cell decode w xs z0`, returning $y$ and the states $z$ $[T{+}1;B;S]$.
*)
(*** hide ***)
let raw = torch.randn([| int64 T; int64 B; 2L |], dtype = torch.float64, generator = g)  // [T; B; I'], I' = 2
let encodeW = torch.randn([| int64 I; 2L |], dtype = torch.float64, generator = g)
let yEnc, z = Recurrence.encodeRecurDecode (fun x -> x.matmul(encodeW.t())) cell (OutputLayer.apply out wo) theta raw s0
check "encodeRecurDecode returns y [T; B; O] and z [T+1; B; S]" (shape yEnc = [ t; b; o ] && shape z = [ t + 1L; b; int64 cell.StateSize ])
check "encodeRecurDecode = unroll over the encoded inputs" (Tensors.relativeError z (Recurrence.unroll cell theta (raw.matmul(encodeW.t())) s0) <= 1e-12)
