(**
# Cells

A cell is a value (`Cell`): sizes $I$, $H$, $S$, a `ParameterLayout` of $\theta$ $[P]$, and pure functions of
$(\theta, x_t, s_{t-1})$ — `Transition` ($s_t$) and, for the built-in cells, the hand-derived `Jacobians`
($c_t$, $b_t$; see [derivations.md](derivations.md)). The output $h_t$ is the first $H$ entries of $s_t$
(`Cell.output`). `Cell.step` is one step, `Recurrence.unroll` the loop.

| cell | constructor | name | $S$ | $P$ |
| --- | --- | --- | --- | --- |
| Elman, tanh | `Cells.Elman.create Cells.Tanh I H` | `elman-tanh` | $H$ | $H(I + H + 2)$ |
| Elman, ReLU | `Cells.Elman.create Cells.Relu I H` | `elman-relu` | $H$ | $H(I + H + 2)$ |
| GRU, lecture form | `Cells.Gru.create Cells.Lecture I H` | `gru-lecture` | $H$ | $3H(I + H + 2)$ |
| GRU, PyTorch form | `Cells.Gru.create Cells.PyTorch I H` | `gru-pytorch` | $H$ | $3H(I + H + 2)$ |
| LSTM | `Cells.Lstm.create I H` | `lstm` | $2H$, $s = [h; c]$ | $4H(I + H + 2)$ |
| multiplicative RNN | `Cells.MultiplicativeRnn.create I H F` | `mrnn` | $H$ | $HI + F(I + 2H) + H$ |
| user-defined | `Cell.custom name I H S layout transition` | given | given | `layout.Count` |

Example: $I = 3$, $H = 5$ gives $P = 50$ (Elman), $150$ (GRU), $200$ (LSTM); the mRNN with
$I = 3$, $H = 4$, $F = 5$ has $P = 71$. `string cell` prints sizes and $P$; `string cell.Layout` prints the blocks.
*)
(*** hide ***)
#r "../SeqNets.FSharp/bin/Release/net10.0/TorchSharp.dll"
#r "../SeqNets.FSharp/bin/Release/net10.0/SeqNets.Core.dll"
#r "../SeqNets.FSharp/bin/Release/net10.0/SeqNets.FSharp.dll"
SeqNets.Native.ensure ()

/// Stops the script with exit code 1 when a claim of the page does not hold.
let check (claim: string) (holds: bool) =
    if not holds then
        eprintfn "FAILED: %s" claim
        exit 1
(**
*)
open TorchSharp
open SeqNets

let I, H = 3, 5
let cells =
    [ Cells.Elman.create Cells.Tanh I H; Cells.Elman.create Cells.Relu I H
      Cells.Gru.create Cells.Lecture I H; Cells.Gru.create Cells.PyTorch I H
      Cells.Lstm.create I H; Cells.MultiplicativeRnn.create I 4 5 ]
for cell in cells do
    printfn "%O" cell                         // e.g. lstm (I = 3, H = 5, S = 10, P = 200)
printfn "%O" (Cells.Lstm.create I H).Layout   // P = 200: weight_ih [20; 3], weight_hh [20; 5], bias_ih [20], bias_hh [20]
(*** hide ***)
let expected =
    [ "elman-tanh", H, H * (I + H + 2); "elman-relu", H, H * (I + H + 2)
      "gru-lecture", H, 3 * H * (I + H + 2); "gru-pytorch", H, 3 * H * (I + H + 2)
      "lstm", 2 * H, 4 * H * (I + H + 2); "mrnn", 4, 4 * I + 5 * (I + 2 * 4) + 4 ]
check "the table's names, S and P" (cells |> List.map (fun c -> c.Name, c.StateSize, int c.ParameterCount) = expected)
check "the example's P: 50, 150, 200 and the mRNN's 71" (cells |> List.map _.ParameterCount = [ 50L; 50L; 150L; 150L; 200L; 71L ])
check "string cell" (string cells[4] = "lstm (I = 3, H = 5, S = 10, P = 200)")
check "string cell.Layout" (string cells[4].Layout = "P = 200: weight_ih [20; 3], weight_hh [20; 5], bias_ih [20], bias_hh [20]")
check "SeqNets.FSharp shows the same P" ((string (SeqNets.FSharp.Rnn.lstm 3 5 |> SeqNets.FSharp.Rnn.init 42)).StartsWith "lstm (I = 3, H = 5, S = 10, P = 200), float64")
let gen = new torch.Generator(3UL)
for cell in cells do
    let theta = Cell.initParameters cell torch.float64 gen
    check $"{cell.Name}: θ ~ U(−1/√H, 1/√H)" (Tensors.maxAbs theta <= 1.0 / sqrt (float cell.HiddenSize))
(**

Every built-in cell initialises $\theta \sim U(-1/\sqrt{H}, 1/\sqrt{H})$ (`Cell.initParameters`, PyTorch's
default for recurrent layers). Elman, PyTorch-form GRU and LSTM use PyTorch's names and order
(`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`); the tests load the same $\theta$ into TorchSharp's
`nn.RNN`, `nn.GRU` and `nn.LSTM` and get the same outputs.

## Elman

| lecture | SeqNets / PyTorch |
| --- | --- |
| $h_t = f(x_t, h_{t-1}, w_h)$, $w_h = [w_{hh} \;\, w_{hx}]$ acting on $[h_{t-1}; x_t]$ | $h_t = \varphi(W x_t + b_{ih} + U h_{t-1} + b_{hh})$, $\varphi \in \{\tanh, \mathrm{ReLU}\}$ |
| $w_{hx}$ | `weight_ih` $W$ $[H;I]$ |
| $w_{hh}$ | `weight_hh` $U$ $[H;H]$ |
| one bias | `bias_ih` + `bias_hh` $[H]$ each |

ReLU avoids saturation but is unbounded: with $\|U\| > 1$ states and gradients can grow without limit.

## GRU

Gate rows in $\theta$: $(r, z, n)$, $H$ rows each, in `weight_ih` $[3H;I]$, `weight_hh` $[3H;H]$,
`bias_ih` $[3H]$, `bias_hh` $[3H]$.

| lecture (Cho 2014) — `Lecture` form | PyTorch (`nn.GRU`, cuDNN) — `PyTorch` form |
| --- | --- |
| $z_t = \sigma_g(W_z x_t + U_z h_{t-1} + b_z)$ | $z_t = \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz})$ |
| $r_t = \sigma_g(W_r x_t + U_r h_{t-1} + b_r)$ | $r_t = \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr})$ |
| $\tilde h_t = \phi_h(W_h x_t + U_h (r_t \odot h_{t-1}) + b_h)$ | $n_t = \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))$ |
| $h_t = z_t \odot h_{t-1} + (1 - z_t) \odot \tilde h_t$ | $h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}$ |

Mapping: $W_r, W_z, W_h$ = rows $0..H$, $H..2H$, $2H..3H$ of `weight_ih` ($W_{ir}, W_{iz}, W_{in}$);
$U_r, U_z, U_h$ the same rows of `weight_hh`; $b_r = b_{ir} + b_{hr}$, $b_z = b_{iz} + b_{hz}$, and in the
lecture form $b_h = b_{in} + b_{hn}$. $\sigma_g = \sigma$, $\phi_h = \tanh$. Both forms use the same
convention for $z$: $z_t \to 1$ keeps $h_{t-1}$.

The two forms share $\theta$ and $P$ but are different functions (tested): they differ only in where
$r_t$ acts.

**Which form.**
* `PyTorch` — to exchange weights with PyTorch or TorchSharp (`nn.GRU`) and get the same outputs, and
  for speed: $U h_{t-1} + b_{hh}$ for all three gates is one matrix product computed before $r_t$ is known;
  $r_t$'s Jacobian is diagonal, and $c_t = \mathrm{diag}(z) + J_{gh}\,$`weight_hh` is one product.
* `Lecture` — to follow the lecture and Cho et al. (2014) exactly: $r_t$ gates $h_{t-1}$ itself, before
  $U_h$. (In the PyTorch form it gates $U_h h_{t-1} + b_{hn}$, so it also scales $b_{hn}$.) Here $b_{in}$ and
  $b_{hn}$ act only through their sum; $U_h$ has to wait for $r_t$, and $r_t$'s Jacobian is a full $H\times H$ matrix.

## LSTM

Gate rows in $\theta$: $(i, f, g, o)$ in `weight_ih` $[4H;I]$, `weight_hh` $[4H;H]$, `bias_ih`, `bias_hh` $[4H]$.
State $s_t = [h_t; c_t]$, $S = 2H$; output $h_t$.

| lecture | PyTorch (`nn.LSTM`) |
| --- | --- |
| $f_t = \sigma_g(W_f x_t + U_f h_{t-1} + b_f)$ | $f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf})$ |
| $i_t = \sigma_g(W_i x_t + U_i h_{t-1} + b_i)$ | $i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi})$ |
| $o_t = \sigma_o(W_o x_t + U_o h_{t-1} + b_o)$ | $o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho})$ |
| $\tanh(W_c x_t + U_c h_{t-1} + b_c)$ | $g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg})$ |
| $c_t = f_t \odot c_{t-1} + i_t \odot \tanh(\dots)$ | $c_t = f_t \odot c_{t-1} + i_t \odot g_t$ |
| $h_t = o_t \odot \tanh(c_t)$ | $h_t = o_t \odot \tanh(c_t)$ |

Mapping: $W_i, W_f, W_c, W_o$ = rows $0..H$, $H..2H$, $2H..3H$, $3H..4H$ of `weight_ih`; the lecture's
$W_c, U_c, b_c$ are PyTorch's $g$ rows; every lecture bias is $b_\bullet = b_{i\bullet} + b_{h\bullet}$;
$\sigma_g = \sigma_o = \sigma$.

The $c$ half of the state is what makes long memory possible: $\partial c_t / \partial c_{t-1} = \mathrm{diag}(f_t)$
(see [bptt.md](bptt.md#vanishing-and-exploding-gradients)). To pass $(h_0, c_0)$, concatenate them:
$s_0 = [h_0; c_0]$ $[B; 2H]$.

## Multiplicative modules

The lecture's multiplicative module lets a context $z \in \mathbb{R}^{d}$ set the weights applied to
$x \in \mathbb{R}^{n}$:

$$
w_{ij} = u_{ij}^\top z = \sum_k u_{ijk} z_k, \qquad s = W(z)\, x, \quad s_i = \sum_j w_{ij} x_j = \sum_{j,k} u_{ijk}\, x_j\, z_k ,
$$

with $U \in \mathbb{R}^{m \times n \times d}$. `Cells.Multiplicative.apply U x z` computes it for every row:
$U$ $[m;n;d]$, $x$ $[B;n]$, $z$ $[B;d]$ $\to$ $s$ $[B;m]$ (C# name `Module`). A full $U$ has $m\,n\,d$ parameters.

### The multiplicative RNN

In the mRNN the module is the hidden-to-hidden map: its input is $h_{t-1}$ ($n = m = H$) and its context
is $x_t$ ($d = I$). $U$ is factored through $F$ factors:

$$
W_{hh}(x_t) = W_{hf}\, \mathrm{diag}(W_{fx} x_t)\, W_{fh}, \qquad
u_{ijk} = \sum_{f=1}^{F} W_{hf}[i,f]\; W_{fx}[f,k]\; W_{fh}[f,j],
$$

so that

$$
f_t = W_{fx} x_t, \qquad
h_t = \tanh\big(W_{hx} x_t + W_{hf}\,(f_t \odot W_{fh} h_{t-1}) + b_h\big)
    = \tanh\big(W_{hx} x_t + W_{hh}(x_t)\, h_{t-1} + b_h\big).
$$

The factored module costs $F(I + 2H)$ parameters instead of $H^2 I$. $\theta$ = [`W_hx` $[H;I]$; `W_fx` $[F;I]$;
`W_fh` $[F;H]$; `W_hf` $[H;F]$; `b_h` $[H]$]. Building $U$ from the three factors
(`torch.einsum("if,fk,fj->ijk", W_hf, W_fx, W_fh)`) and calling `Multiplicative.apply U h x` gives the same
$W_{hf}(f_t \odot W_{fh} h)$ as the cell.
*)
let F = 5
let g = new torch.Generator(1UL)
let mrnn = Cells.MultiplicativeRnn.create I H F
let theta = Cell.initParameters mrnn torch.float64 g                    // [P]
let W name = mrnn.Layout.View(theta, name)
let U = torch.einsum("if,fk,fj->ijk", W "W_hf", W "W_fx", W "W_fh")     // [H; H; I]: u_ijk
let x = torch.randn([| 2L; int64 I |], dtype = torch.float64, generator = g)   // [B; I]
let h = torch.randn([| 2L; int64 H |], dtype = torch.float64, generator = g)   // [B; H]
let hh = Cells.Multiplicative.apply U h x                              // W_hh(x) h: [B; H]
(*** hide ***)
let f = Tensors.linear (W "W_fx") x                                     // [B; F]
let factored = Tensors.linear (W "W_hf") (f * Tensors.linear (W "W_fh") h)
check "Multiplicative.apply U h x = W_hf (f ⊙ W_fh h)" (Tensors.relativeError hh factored <= 1e-12)
let _, s1 = Cell.step mrnn theta x h
check "the mRNN step is tanh(W_hx x + W_hh(x) h + b_h)"
    (Tensors.relativeError s1 (torch.tanh (Tensors.linear (W "W_hx") x + hh + W "b_h")) <= 1e-12)
check "the factored module: F(I + 2H) parameters, the full U: H²I" (U.numel () = int64 (H * H * I) && (W "W_fx").numel () + (W "W_fh").numel () + (W "W_hf").numel () = int64 (F * (I + 2 * H)))
(**

The GRU and LSTM are multiplicative in the same sense: their gates multiply ($\odot$) quantities computed
from the same inputs, so the effective weight on $h_{t-1}$ depends on $x_t$ and $h_{t-1}$.

## User-defined cells

`Cell.custom name I H S layout transition` with `transition θ x s` returning $s_t$ $[B;S]$. It unrolls and is
differentiated by autodiff (`Bptt.jacobiansByAutodiff`, `Bptt.byAutodiff`). Add hand-derived Jacobians with
`Cell.withJacobians (fun θ x s -> { State = …; Parameters = … })`, and `Cell.withRowParameters` if
`transition` also accepts $\theta$ as $[B;P]$ (read blocks through `layout.View`, apply weights with
`Tensors.linear`): the autodiff reference then needs one backward pass instead of one per output entry.
*)
