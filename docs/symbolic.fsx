(**
# Cells as equations

A cell written as its equations is evaluated, differentiated and written out from that one
definition. SeqNets derives its $c_t = \partial s_t / \partial s_{t-1}$ and $b_t = \partial s_t / \partial \theta$ by the
chain, sum, Hadamard-product and nonlinearity rules — not by autodiff — keeps them as structured
linear operators (diagonals, parameter matrices, products, blocks; $b_t$ as the differential
$\mathrm{d}\theta \mapsto \sum J\,(\mathrm{d}W\,v)$), and compiles them to batched TorchSharp operations. The cell is
an ordinary `Cell`: every BPTT route, `Verify.identity` and `Rnn.identity` apply to it with no
hand-written Jacobian. The built-in cells are written this way too (`Cells.Lstm.equations` and the
others); their derivations are on [derivations.md](derivations.md), made by `seqnets derive <cell> --markdown`.

## A cell of your own: the minimal gated unit

The MGU (Zhou et al. 2016) has one gate:

$$
f_t = \sigma(W_f x_t + U_f h_{t-1} + b_f), \qquad
\tilde h_t = \tanh(W_h x_t + U_h (f_t \odot h_{t-1}) + b_h), \qquad
h_t = (1 - f_t) \odot h_{t-1} + f_t \odot \tilde h_t .
$$

From F#, `SeqNets.FSharp.Symbolic` writes it as the paper does: `W * v` is the matrix–vector product,
`a * b` the Hadamard product $\odot$, and `named` gives an intermediate its name (a trailing `~` is a
tilde accent):
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

open TorchSharp
(**
*)
open SeqNets
open SeqNets.FSharp
open SeqNets.FSharp.Symbolic

let I, H = 3, 5
let h = previous "h"
let W_f, U_f, b_f = matrix "W_f", matrix "U_f", vector "b_f"
let W_h, U_h, b_h = matrix "W_h", matrix "U_h", vector "b_h"
let f = named "f" (σ (W_f * x + U_f * h + b_f))
let hTilde = named "h~" (tanh (W_h * x + U_h * (f * h) + b_h))

let mgu =
    equations "mgu" I [ ("h", H) ]
        [ "W_f", [ H; I ]; "U_f", [ H; H ]; "b_f", [ H ]; "W_h", [ H; I ]; "U_h", [ H; H ]; "b_h", [ H ] ]
        [ ("h", (1.0 - f) * h + f * hTilde) ]

let cell = Equations.cell mgu
(**
The arguments are the name, the input size $I$, the state's parts (here one, $h$, of size $H$; the first
part is the output), the parameter blocks in the order of $\theta$ (each row-major, as PyTorch stores
weights) and the new value of each part. Sizes are checked when the cell is built.

## The derivation

`show (derive mgu)` writes what the rules found, in Unicode for a terminal (`Derivation.latex` and
`Derivation.markdown` give LaTeX). For the MGU:

```text
mgu: equations
  f_t = σ(W_f x_t + U_f h_(t−1) + b_f)
  h̃_t = tanh(W_h x_t + U_h (f_t ⊙ h_(t−1)) + b_h)
  h_t = (1 − f_t) ⊙ h_(t−1) + f_t ⊙ h̃_t

chain rule through the intermediates
  ∂h_t/∂h̃_t = diag(f_t)
  ∂h_t/∂f_t = diag(h̃_t − h_(t−1)) + diag(f_t ⊙ (1 − h̃_t²)) U_h diag(h_(t−1))

c_t = ∂s_t/∂s_(t−1), in blocks (numerator layout)
  ∂h_t/∂h_(t−1) = diag(1 − f_t) + diag(f_t ⊙ (1 − h̃_t²)) U_h diag(f_t) + (diag(h̃_t − h_(t−1)) + diag(f_t ⊙ (1 − h̃_t²)) U_h diag(h_(t−1))) diag(f_t ⊙ (1 − f_t)) U_f

b_t = ∂s_t/∂θ as a differential (θ row-major: J (dW v) is the block J ⊗ vᵀ)
  b_t dθ = (diag(h̃_t − h_(t−1)) + diag(f_t ⊙ (1 − h̃_t²)) U_h diag(h_(t−1))) diag(f_t ⊙ (1 − f_t)) (dW_f x_t + dU_f h_(t−1) + db_f) + diag(f_t ⊙ (1 − h̃_t²)) (dW_h x_t + dU_h (f_t ⊙ h_(t−1)) + db_h)

the identity ∂s_t/∂θ = b_t + Σ_(i<t) (Π_(j=i+1..t) c_j) b_i for t = 1, 2, 3
  ∂h_1/∂θ = b_1
  ∂h_2/∂θ = b_2 + c_2 b_1
  ∂h_3/∂θ = b_3 + c_3 b_2 + c_3 c_2 b_1
```

(followed by $\partial h_2/\partial\theta$ and $\partial h_3/\partial\theta$ with $c_2$, $c_3$ written out). The gate appears twice
— as the mixing weight and inside $U_h (f_t \odot h_{t-1})$ — so $\partial h_t / \partial f_t$ is not diagonal, and the rules
carry that product through to $c_t$ and $b_t$. In $b_t$ every parameter block appears once, as the
differential of its use: $\mathrm{d}W_f\, x_t$ stands for the block $J \otimes x_t^\top$ of $b_t$, never built as a dense
Kronecker product until the cell evaluates $b_t$.
*)
(*** hide ***)
let text = show (derive mgu)
for line in [ "f_t = σ(W_f x_t + U_f h_(t−1) + b_f)"
              "h_t = (1 − f_t) ⊙ h_(t−1) + f_t ⊙ h̃_t"
              "∂h_t/∂f_t = diag(h̃_t − h_(t−1)) + diag(f_t ⊙ (1 − h̃_t²)) U_h diag(h_(t−1))"
              "∂h_t/∂h_(t−1) = diag(1 − f_t) + diag(f_t ⊙ (1 − h̃_t²)) U_h diag(f_t) + (diag(h̃_t − h_(t−1)) + diag(f_t ⊙ (1 − h̃_t²)) U_h diag(h_(t−1))) diag(f_t ⊙ (1 − f_t)) U_f"
              "b_t dθ = (diag(h̃_t − h_(t−1)) + diag(f_t ⊙ (1 − h̃_t²)) U_h diag(h_(t−1))) diag(f_t ⊙ (1 − f_t)) (dW_f x_t + dU_f h_(t−1) + db_f) + diag(f_t ⊙ (1 − h̃_t²)) (dW_h x_t + dU_h (f_t ⊙ h_(t−1)) + db_h)"
              "∂h_3/∂θ = b_3 + c_3 b_2 + c_3 c_2 b_1" ] do
    check $"the page shows the derivation: {line}" (text.Contains line)
(**
## The identity, checked

The derived Jacobians feed every route of the lecture's identity. `Rnn.identity` compares them with
autodiff, and the recurrence, the closed form and reverse mode with each other:
*)
let net = cell |> Rnn.init 7
let xs = torch.randn([| 6L; 2L; int64 I |], dtype = torch.float64, generator = new torch.Generator(8UL)) // [T; B; I]
let report = Rnn.identity xs net
report.WorstError                                                     // ≈ 1e-16
(*** hide ***)
check "the MGU's derived c_t, b_t and the three routes agree with autodiff" (report.WorstError <= 1e-9)
// And with central finite differences of s_T along a random direction.
let v = (let r = torch.randn([| int64 cell.ParameterCount |], dtype = torch.float64, generator = new torch.Generator(9UL)) in r / r.norm())
let a = Rnn.dsdθ ByClosedForm xs net                                  // [T; B; S; P]
let lastState (theta: torch.Tensor) = (Rnn.unroll xs (Rnn.network cell theta))[6L]
let fd = (lastState (net.Theta + v * 1e-6) - lastState (net.Theta - v * 1e-6)) / 2e-6
check "the closed form = central finite differences" (Tensors.maxAbs (fd - a[5L].matmul v) <= 1e-7)
(**
For long sequences the identity is checked at one step: `Bptt.outputAtStep` gives $\partial h_t / \partial \theta$ by one
suffix sweep $M_{i-1} = M_i c_i$ over the structured $b_i$ (each use $J (\mathrm{d}W v)$ contributes $(M_i J) \otimes v^\top$),
and `Bptt.outputByAutodiffAt` by reverse mode through the first $t$ steps; `Verify.identityAt` compares them.
Times and memory for an LSTM of 6,400 parameters over 128 steps are on [benchmarks.md](benchmarks.md).
*)
let states = Rnn.unroll xs net                                        // [T+1; B; S]
let closed = Bptt.outputAtStep cell net.Theta xs states 6             // ∂h_6/∂θ: [B; H; P]
let reverse = Bptt.outputByAutodiffAt cell net.Theta xs states[0L] 6
(*** hide ***)
check "one sweep = autodiff at t" (Tensors.relativeError closed reverse <= 1e-9)
check "one sweep = the recurrence's a_t" (Tensors.relativeError closed (a[5L].narrow(1L, 0L, int64 H)) <= 1e-9)
(**
## When the equations are wrong

Mistakes are found when the cell is built, and the message says where: an undeclared block, sizes that
do not match (naming the sub-expression and both shapes), a function the rules do not know. For
instance, $U_h$ applied to $x_t$:
*)
let wrong =
    equations "wrong" I [ ("h", H) ] [ ("U_h", [ H; H ]) ] [ ("h", tanh (U_h * x)) ]
(**
`Equations.cell wrong` raises `ArgumentException: equations of 'wrong': in 'U_h x_t', U_h is [5; 5] but
'x_t' is [3].` A nonlinearity of your own without its derivative (`map "softplus" f None e`) is refused
as "not differentiable by the rules; give Jacobians … or use the autodiff route", and
`Equations.autodiffCell` gives the cell without derived Jacobians; with its derivative
(`map "softplus" f (Some f') e`) the rules use it. A state that never feeds back ($c_t \equiv 0$) is
legal: `derive` says so in `Warnings`.
*)
(*** hide ***)
let message =
    try
        Equations.cell wrong |> ignore
        ""
    with :? System.ArgumentException as e -> e.Message
check "the message names the sub-expression and both shapes" (message.Contains "in 'U_h x_t', U_h is [5; 5] but 'x_t' is [3].")
let feedforward = equations "feedforward" I [ ("h", H) ] [ ("W_h", [ H; I ]) ] [ ("h", tanh (W_h * x)) ]
check "c_t ≡ 0 is a warning" ((derive feedforward).Warnings |> List.exists (fun w -> w.Contains "never feeds back"))
let softplus = map "softplus" (fun t -> torch.nn.functional.softplus t) None (W_h * x)
let noDerivative =
    try
        Equations.cell (equations "soft" I [ ("h", H) ] [ ("W_h", [ H; I ]) ] [ ("h", softplus) ]) |> ignore
        ""
    with :? System.ArgumentException as e -> e.Message
check "an unknown nonlinearity: not differentiable by the rules" (noDerivative.Contains "not differentiable by the rules; give Jacobians")
(**
## From C#

The same cell from C#: `CellExpression` and `CellMatrix` carry the operators (`CellMatrix.Block("W_f") * x`,
`f * h`, `1.0 - f`, `CellExpression.Sigmoid(…)`, `.Named("f")`), `CellEquations` collects the state parts
and updates, and `RecurrentCell.FromEquations(equations)` makes the cell; `RecurrentNetwork.VerifyIdentity`
and every route then apply (`tests/SeqNets.CSharp.Tests/EquationCellTests.cs`).

## Conventions

| | |
| --- | --- |
| layout | numerator: $c_t[i, j] = \partial s_t[i] / \partial s_{t-1}[j]$, $[S; S]$ (not its transpose) |
| $\theta$ | flat, each block row-major as PyTorch stores it: $\partial (W v) / \partial\, \mathrm{vec}(W) = I \otimes v^\top$ |
| ReLU | $\mathrm{ReLU}'(0) = 0$, as libtorch's autograd |
| scalars | `1.0 - z` broadcasts the constant |
| three-way blocks | `bilinear U v z` is the lecture's multiplicative module $U(z)\, v$, $(U(z) v)_i = \sum_{jk} U_{ijk} v_j z_k$ |
*)
