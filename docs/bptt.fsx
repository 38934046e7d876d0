(**
# Backpropagation through time

The lecture's gradient analysis, in SeqNets' terms. Derivations of the pieces per cell:
[derivations.md](derivations.md).

## Notation

| lecture | SeqNets | shape (per batch row) |
| --- | --- | --- |
| $h_t$ (hidden state) | $s_t$ (flat state; $h_t$ = its first $H$ entries) | $S$ |
| $w_h$ (stacked $w_{hx}$, $w_{hh}$) | $\theta$ | $P$ |
| $w_o$, $o_t = g(h_t, w_o)$ (output) | `OutputLayer` $w_o = [V; c^o]$, $y_t = V h_t + c^o$ | $O$ |
| $y_t$ (target), $\ell(y_t, o_t)$ | $o_t$ (target), $\ell(y_t, o_t)$ | |
| $\partial f / \partial h_{t-1}$, $\partial f / \partial w_h$ | $c_t$, $b_t$ | $S\times S$, $S \times P$ |

In the gradient-analysis slides the lecture writes $o_t$ for the output and $y_t$ for the target; SeqNets
follows the lecture's first slides ($y_t = g(h_t)$) and calls the target $o_t$. The formulas are the same.

## The gradient

For a sequence of length $T$,

$$
L = \frac{1}{T} \sum_{t=1}^{T} \ell(y_t, o_t), \qquad
\frac{\partial L}{\partial \theta} = \frac{1}{T} \sum_{t=1}^{T}
\frac{\partial \ell_t}{\partial y_t}\, \frac{\partial y_t}{\partial h_t}\, \frac{\partial h_t}{\partial \theta} .
$$

The first two factors are local: $\partial \ell_t / \partial y_t = \delta_t$, $\partial y_t / \partial h_t = V$ (the lecture
writes $\partial g(h_t, w_h)/\partial h_t$ here; $g$ depends on $w_o$). $\partial L / \partial w_o$ is equally local.
The third factor is the tricky one: $h_t$ depends on $\theta$ directly **and** through $h_{t-1}$, which
depends on $\theta$ too:

$$
a_t := \frac{\partial s_t}{\partial \theta} = \underbrace{\frac{\partial f(x_t, s_{t-1}, \theta)}{\partial \theta}}_{b_t}
+ \underbrace{\frac{\partial f(x_t, s_{t-1}, \theta)}{\partial s_{t-1}}}_{c_t}\, a_{t-1}, \qquad a_0 = 0,
$$

whose solution is the closed form

$$
a_t = b_t + \sum_{i=1}^{t-1} \Big( \prod_{j=i+1}^{t} c_j \Big) b_i, \qquad \prod_{j=i+1}^{t} c_j = c_t c_{t-1} \cdots c_{i+1}
$$

(proof: [derivations.md](derivations.md#the-bptt-identity)). Term $i$ is the effect of $\theta$ at step $i$
carried forward to step $t$ by $t - i$ Jacobians.

In code, for a `cell` with parameters `theta`, inputs `xs` $[T;B;I]$, an initial state `s0` $[B;S]$, an
`output` layer with parameters `wo`, a `loss` (`CrossEntropy` or `MeanSquared`) and `targets`:
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

open TorchSharp
open SeqNets

// The names the page uses: an LSTM (S = 2H ≠ H), an output layer, a sequence and its targets.
let T, B, I, H, O = 5, 2, 3, 4, 6
let gen = new torch.Generator(7UL)
let cell = Cells.Lstm.create I H
let theta = Cell.initParameters cell torch.float64 gen                                       // [P]
let output = OutputLayer.create H O
let wo = OutputLayer.initParameters output torch.float64 gen                                 // [O·H + O]
let loss = CrossEntropy
let xs = torch.randn([| int64 T; int64 B; int64 I |], dtype = torch.float64, generator = gen)  // [T; B; I]
let s0 = torch.randn([| int64 B; int64 cell.StateSize |], dtype = torch.float64, generator = gen) // [B; S]
let targets = torch.randint(int64 O, [| int64 T; int64 B |], generator = gen)                // [T; B]
let S, P = int64 cell.StateSize, int64 cell.ParameterCount
(**
*)
let states = Recurrence.unroll cell theta xs s0            // [T+1; B; S]
let j = Bptt.jacobians cell theta xs states               // c_t [T; B; S; S], b_t [T; B; S; P]
let a = Bptt.byRecurrence j                               // or Bptt.byClosedForm j, Bptt.byAutodiff cell theta xs s0
let g = Bptt.lossGradient cell output loss wo states j a targets   // ∂L/∂θ, ∂L/∂w_o, ∂L/∂s_0
(*** hide ***)
check "c_t is [T; B; S; S], b_t is [T; B; S; P]" (j.State.shape = [| int64 T; int64 B; S; S |] && j.Parameters.shape = [| int64 T; int64 B; S; P |])
let closedForm = Bptt.byClosedForm j
check "the recurrence = the closed form" (Tensors.relativeError a closedForm <= 1e-9)
check "the closed form = reverse mode" (Tensors.relativeError closedForm (Bptt.byAutodiff cell theta xs s0) <= 1e-9)
let gTheta, gWo, gS0 = Autodiff.lossGradient cell output loss theta wo xs s0 targets
check "∂L/∂θ, ∂L/∂w_o, ∂L/∂s_0 = reverse mode"
    (Tensors.relativeError g.Cell gTheta <= 1e-9 && Tensors.relativeError g.Output gWo <= 1e-9
     && Tensors.relativeError g.InitialState gS0 <= 1e-9)
// g.InitialState = 1/T Σ_t ∂ℓ_t/∂s_t Π_{j≤t} c_j, with ∂ℓ_t/∂s_t = [δ_t V, 0]
let ys = OutputLayer.apply output wo (Recurrence.outputs cell states)                        // [T; B; O]
let dh = (Loss.outputGradient loss ys targets).matmul (output.Layout.View(wo, "weight"))     // [T; B; H]
let ds = torch.cat([| dh; torch.zeros_like dh |], 2L)                                        // [T; B; S], S = 2H
let viaProducts = torch.einsum("tbs,tbsk->bk", ds, Bptt.initialStateSensitivity j) / float T  // [B; S]
check "g.InitialState = 1/T Σ_t ∂ℓ_t/∂s_t Π c_j" (Tensors.relativeError g.InitialState viaProducts <= 1e-9)
check "g.Cell = 1/T Σ_t Σ_b ∂ℓ_t/∂s_t a_t" (Tensors.relativeError g.Cell (torch.einsum("tbs,tbsp->p", ds, a) / float T) <= 1e-9)
(**

`g.Cell` is $\frac{1}{T}\sum_t \sum_b \frac{\partial \ell_t}{\partial s_t}\, a_t$ with
$\frac{\partial \ell_t}{\partial s_t} = [\delta_t V, 0]$; `g.InitialState` is
$\frac{1}{T}\sum_t \frac{\partial \ell_t}{\partial s_t} \prod_{j=1}^{t} c_j$ (details:
[derivations.md](derivations.md#assembling-lθ)).

## Vanishing and exploding gradients

Term $i$ of $a_t$ is bounded by the product of norms:

$$
\Big\| \Big(\prod_{j=i+1}^{t} c_j\Big) b_i \Big\| \le \Big(\prod_{j=i+1}^{t} \|c_j\|\Big)\, \|b_i\| .
$$

If $\|c_j\| \le \gamma < 1$ along the trajectory, the contribution of step $i$ decays like $\gamma^{t-i}$:
distant steps cannot influence the gradient (**vanishing**). If the $c_j$ expand some direction
consistently (norm, or spectral radius of the product, $> 1$), the terms grow geometrically in $t - i$
(**exploding**). For large $t$ either happens unless the $c_j$ stay close to norm-preserving.

Per cell ([derivations.md](derivations.md)):

* Elman tanh: $c_t = \mathrm{diag}(1 - h_t^2)\, U$, so $\|c_t\| \le \|U\|_2$; $\|U\|_2 < 1$ always vanishes, and
  saturated units ($h \to \pm 1$) shrink $c_t$ further. ReLU: $c_t = \mathrm{diag}(\mathbb{1}[a>0])\, U$, no
  saturation, so $\|U\|_2 > 1$ can explode.
* GRU: $c_t = \mathrm{diag}(z_t) + (\dots)$. With $z_t \to 1$ the step copies $h_{t-1}$ and $c_t \to I$: a path
  along which the product neither vanishes nor explodes.
* LSTM: the $c \to c$ block of the state Jacobian is $\mathrm{diag}(f_t)$; with $f_t \to 1$ the memory carries
  gradient across many steps (the lecture's "memory cell").

`Verify.randomCase` draws cases in three regimes — `Vanishing` ($\theta \times 0.1$), `Moderate` (the default
initialisation) and `Exploding` ($\theta \times 3$) — and `Verify.identity` reports, with the disagreements
between routes, `Magnitude`, the largest $|\partial s_t / \partial \theta|$ of the case. `Bptt.initialStateSensitivity j`
gives the products $\prod_{j=1}^{t} c_j$ $[T;B;S;S]$ themselves, to inspect how fast they shrink or grow.

## Truncated BPTT

Truncated BPTT (Jaeger 2002) lets gradient flow back at most $\tau$ steps. In the recurrence it replaces
$a_{t-\tau}$ by $0$ after unrolling $\tau$ times; in the closed form it keeps the last $\tau$ terms:

$$
\tilde a_t^{(\tau)} = \sum_{i=\max(1,\,t-\tau+1)}^{t} \Big(\prod_{j=i+1}^{t} c_j\Big) b_i
= \sum_{i=1}^{t} \mathbb{1}[\,t - i < \tau\,] \Big(\prod_{j=i+1}^{t} c_j\Big) b_i .
$$

Cost and memory per step are $O(\tau)$ instead of $O(t)$, and the long-range terms the truncation drops are
exactly those that vanish or explode; the price is a **biased** gradient: dependencies longer than $\tau$
steps are not learned from directly. `Bptt.byTruncatedSum tau j` computes $\tilde a^{(\tau)}$ ($\tau = 1$:
$b_t$ alone; $\tau \ge T$: the full sum). Truncation with weights is the general
`Bptt.byWeightedSum w j`, $\sum_{i=1}^{t} w(t,i) (\prod_{j=i+1}^{t} c_j) b_i$.

In training, truncation is usually realised by running the sequence in chunks of $\tau$ steps and
detaching the state between chunks; within a chunk starting after step $t_0$ that gives
$w(t, i) = \mathbb{1}[\,i > t_0\,]$, which keeps one term at the chunk's first step and $\tau$ at its last.
Both are weights on the same sum. That is SeqNets' `Truncated tau` strategy (Williams & Peng's BPTT($\tau$, $\tau$)):
the state is carried from batch to batch, and the gradient is cut at every batch start and every $\tau$ steps;
at the last step of each chunk the weights keep exactly the last $\tau$ terms, $\tilde a^{(\tau)}_t$.

## Randomized truncation

Tallec & Ollivier (2017, "Unbiasing truncated backpropagation through time", ARTBP) make truncation
unbiased: truncation points are random, and every term that survives is divided by the probability that
it survives.

Precisely: at every step $j$ draw an independent $\varepsilon_j \in \{0, 1\}$ with $P(\varepsilon_j = 1) = p_j$
("truncate at $j$", i.e. cut the link $s_{j-1} \to s_j$), $0 \le p_j < 1$. The backward pass from $t$ to $i$ crosses
the links $j = i+1, \dots, t$; it survives if none is cut, and when it crosses an uncut link it is multiplied by
the compensation factor $1/(1 - p_j)$. The term weights are

$$
w(t, i) = \prod_{j=i+1}^{t} \frac{1 - \varepsilon_j}{1 - p_j}, \qquad
\mathbb{E}\,[w(t,i)] = \prod_{j=i+1}^{t} \frac{1 - p_j}{1 - p_j} = 1 ,
$$

by independence. Hence for any fixed trajectory

$$
\hat a_t = \sum_{i=1}^{t} w(t,i) \Big(\prod_{j=i+1}^{t} c_j\Big) b_i, \qquad \mathbb{E}[\hat a_t] = a_t, \qquad
\mathbb{E}\Big[\frac{1}{T}\sum_t \frac{\partial \ell_t}{\partial s_t} \hat a_t\Big] = \frac{\partial L}{\partial \theta} .
$$

The expected truncation length is set by the $p_j$ (constant $p$: geometric, mean about $1/p$ steps). The
price of unbiasedness is variance: a surviving term $t - i$ steps long is scaled by $\prod (1-p_j)^{-1}$, which
grows with its length; the choice of the $p_j$ trades computation against variance. The same recipe holds for any
random truncation length $\tau$: keep term $i$ when $t - i < \tau$ and weight it by $1 / P(\tau > t - i)$.

In training, `Randomized meanLength` (a `BpttStrategy`) realises this with constant $p = 1/\text{meanLength}$:
`BpttStrategy.boundaryWeights` draws, before every step of a batch after the first, the weight $0$ (cut) with
probability $p$ and $1/(1-p)$ otherwise, and `CharModel.Forward` applies it to the gradient flowing through
the state ($s \mapsto \bar s + w\,(s - \bar s)$ with $\bar s$ the detached state: the same value, a scaled gradient).
`BpttStrategy.termWeight` turns those boundary weights into $w(t,i)$, so the training gradient is
`Bptt.byWeightedSum (BpttStrategy.termWeight weights) j` — a test checks exactly that, and another enumerates
all $2^{T-1}$ truncation patterns of a batch with their probabilities and checks that the expected training
gradient equals the full gradient (and that plain truncation's does not). By hand:
*)
let p = 0.2                                                  // truncation probability per step
let rng = System.Random 1
let cut = Array.init (T + 1) (fun _ -> rng.NextDouble() < p)  // cut[j]: the link s_{j−1} → s_j is cut
let w t i =                                                  // 1-based t, i
    seq { i + 1 .. t } |> Seq.fold (fun acc k -> if cut[k] then 0.0 else acc / (1.0 - p)) 1.0
let aHat = Bptt.byWeightedSum w j                             // [T; B; S; P], E[aHat] = a
(*** hide ***)
check "aHat is [T; B; S; P]" (aHat.shape = [| int64 T; int64 B; S; P |])
// E[aHat] = a exactly: the links j = 2..T are cut independently with probability p (cut[0] and
// cut[1] are never read); average the weighted sums over all 2^(T−1) patterns with their probabilities.
let expectation =
    [ for pattern in 0 .. (1 <<< (T - 1)) - 1 ->
        let cutAt k = (pattern >>> (k - 2)) &&& 1 = 1                                     // k = 2..T
        let probability = [ 2 .. T ] |> List.fold (fun acc k -> acc * (if cutAt k then p else 1.0 - p)) 1.0
        let wPattern t i = seq { i + 1 .. t } |> Seq.fold (fun acc k -> if cutAt k then 0.0 else acc / (1.0 - p)) 1.0
        Bptt.byWeightedSum wPattern j * probability ]
    |> List.reduce (+)
check "E[aHat] = a over every truncation pattern" (Tensors.relativeError expectation closedForm <= 1e-9)
check "truncation τ = 1 keeps b_t alone" (Tensors.relativeError (Bptt.byTruncatedSum 1 j) j.Parameters = 0.0)
check "truncation τ ≥ T is the full sum" (Tensors.relativeError (Bptt.byTruncatedSum T j) closedForm <= 1e-12)
check "plain truncation is biased" (Tensors.relativeError (Bptt.byTruncatedSum 2 j) closedForm > 1e-3)
// Elman tanh: ‖c_t‖₂ ≤ ‖U‖₂
let elman = Cells.Elman.create Cells.Tanh I H
let thetaE = Cell.initParameters elman torch.float64 gen * 3.0
let statesE = Recurrence.unroll elman thetaE xs (torch.zeros([| int64 B; int64 H |], dtype = torch.float64))
let normU = torch.linalg.matrix_norm(elman.Layout.View(thetaE, "weight_hh"), ord = 2.0).item<float> ()
let normsC = torch.linalg.matrix_norm((Bptt.jacobians elman thetaE xs statesE).State, ord = 2.0)   // [T; B]
check "Elman tanh: ‖c_t‖₂ ≤ ‖U‖₂" (normsC.max().item<float> () <= normU * (1.0 + 1e-12))
// LSTM: the c → c block of c_t is diag(f_t), entries in (0, 1)
let cc = j.State.narrow(2L, int64 H, int64 H).narrow(3L, int64 H, int64 H)                     // [T; B; H; H]
let f = cc.diagonal(dim1 = -2L, dim2 = -1L)                                                     // [T; B; H]
check "LSTM: the c → c block is diag(f_t)" (Tensors.relativeError cc (torch.diag_embed f) = 0.0)
check "LSTM: f_t in (0, 1)" (f.min().item<float> () > 0.0 && f.max().item<float> () < 1.0)
(**

## Gradient clipping

Clipping bounds the update when the products above explode (Goodfellow et al., *Deep Learning*, §10.11.1).
For a gradient $g = \partial L / \partial \theta$ and threshold $\kappa > 0$:

* **by norm**: $g \leftarrow g \cdot \min\!\big(1, \kappa / \|g\|_2\big)$ — keeps the direction, bounds the length;
  with several parameter tensors (e.g. $\theta$ and $w_o$) $\|g\|$ is the norm of all of them together;
* **by value**: $g_p \leftarrow \min(\max(g_p, -\kappa), \kappa)$ for every entry — bounds each entry, changes
  the direction.

Clipping does nothing for vanishing gradients; gated cells (GRU, LSTM) address those. `Clipping.apply
(ByNorm κ | ByValue κ) g` clips a flat gradient in place and returns its norm before clipping; the `Trainer`
clips the gradient of all parameters at once (one flat tensor, so the norm is global), and when the
gradient has NaN or infinite entries it skips the update and reports it (`StepReport.Applied = false`,
`Trainer.SkippedUpdates`) instead of applying it.

*)
(*** hide ***)
let byNorm = torch.tensor([| 3.0; -4.0 |], dtype = torch.float64)
let normBefore = Clipping.apply (ByNorm 1.0) byNorm
check "clipping by norm: returns the norm before, keeps the direction, bounds the length"
    (abs (normBefore - 5.0) < 1e-12 && Tensors.relativeError byNorm (torch.tensor([| 0.6; -0.8 |], dtype = torch.float64)) <= 1e-12)
let small = torch.tensor([| 0.3; -0.4 |], dtype = torch.float64)
Clipping.apply (ByNorm 1.0) small |> ignore
check "clipping by norm: untouched below κ" (Tensors.relativeError small (torch.tensor([| 0.3; -0.4 |], dtype = torch.float64)) = 0.0)
let byValue = torch.tensor([| 3.0; -0.5; -4.0 |], dtype = torch.float64)
Clipping.apply (ByValue 1.0) byValue |> ignore
check "clipping by value: every entry in [−κ, κ]" (Tensors.relativeError byValue (torch.tensor([| 1.0; -0.5; -1.0 |], dtype = torch.float64)) = 0.0)
(**
## Where it lives

| concept | function |
| --- | --- |
| $c_t$, $b_t$ along a trajectory, by hand / by autodiff | `Bptt.jacobians`, `Bptt.jacobiansByAutodiff` |
| $a_t$ by recurrence, closed form, reverse mode | `Bptt.byRecurrence`, `Bptt.byClosedForm`, `Bptt.byAutodiff` |
| weighted and truncated sums | `Bptt.byWeightedSum`, `Bptt.byTruncatedSum` |
| $\prod_{j \le t} c_j = \partial s_t / \partial s_0$ | `Bptt.initialStateSensitivity` |
| $\partial L / \partial \theta$, $\partial L / \partial w_o$, $\partial L / \partial s_0$ from any $a$ / by reverse mode | `Bptt.lossGradient` / `Autodiff.lossGradient` |
| $\delta_t$, $\ell_t$, $L$ | `Loss.outputGradient`, `Loss.perStep`, `Loss.sequence` |
| routes compared on one case | `Verify.identity`, `seqnets verify` |
| BPTT strategies in training: full, truncated, randomized | `BpttStrategy` (`Full`, `Truncated τ`, `Randomized m`), `BpttStrategy.boundaryWeights`, `BpttStrategy.termWeight` |
| gradient clipping, non-finite gradients | `Clipping.apply`, `Trainer.Step` → `StepReport.Applied` |
*)
