/// Long short-term memory (Hochreiter & Schmidhuber 1997) in PyTorch's nn.LSTM layout:
/// θ = [weight_ih [4H; I]; weight_hh [4H; H]; bias_ih [4H]; bias_hh [4H]], gate rows (i, f, g, o).
/// The state is s = [h; c] (S = 2H); the output is h.
namespace SeqNets.Cells

open TorchSharp
open SeqNets

/// The LSTM, in the lecture's notation (W_c, U_c, b_c are the g rows of PyTorch's layout):
///   f_t = σ(W_f x_t + U_f h_{t−1} + b_f)
///   i_t = σ(W_i x_t + U_i h_{t−1} + b_i)
///   o_t = σ(W_o x_t + U_o h_{t−1} + b_o)
///   c_t = f_t ⊙ c_{t−1} + i_t ⊙ tanh(W_c x_t + U_c h_{t−1} + b_c)
///   h_t = o_t ⊙ tanh(c_t)
/// with every bias b = b_ih + b_hh. Jacobians: docs/derivations.md.
[<RequireQualifiedAccess>]
module Lstm =
    let private layout (I: int) (H: int) = ParameterLayout.Recurrent(4, I, H)

    /// The LSTM as equations, in the same layout (gate rows i, f, g, o; the g rows written W_c,
    /// U_c, b_ic, b_hc and their candidate c̃):
    ///   i_t = σ(W_i x_t + b_ii + U_i h_{t−1} + b_hi)   (f_t, o_t alike),   c̃_t = tanh(W_c x_t + b_ic + U_c h_{t−1} + b_hc)
    ///   c_t = f_t ⊙ c_{t−1} + i_t ⊙ c̃_t,   h_t = o_t ⊙ tanh(c_t).
    [<CompiledName("Equations")>]
    let equations (inputSize: int) (hiddenSize: int) : CellEquations =
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof hiddenSize) hiddenSize
        let H = hiddenSize
        let x, h, c = Expr.input, Expr.previous "h", Expr.previous "c"
        let gate k (name: string) =
            let W, U = Block.rows "weight_ih" (k * H) H $"W_{name}", Block.rows "weight_hh" (k * H) H $"U_{name}"
            let b_i, b_h = Expr.parameter (Block.rows "bias_ih" (k * H) H $"b_i{name}"), Expr.parameter (Block.rows "bias_hh" (k * H) H $"b_h{name}")
            W * x + b_i + U * h + b_h
        let i = Expr.named "i" (Expr.sigmoid (gate 0 "i"))
        let f = Expr.named "f" (Expr.sigmoid (gate 1 "f"))
        let g = Expr.named "c~" (Expr.tanh (gate 2 "c"))
        let o = Expr.named "o" (Expr.sigmoid (gate 3 "o"))
        let cNext = f * c + i * g
        Equations.create "lstm" inputSize [ "h", H; "c", H ] (layout inputSize hiddenSize) [ "c", cNext; "h", o * Expr.tanh cNext ]

    /// An LSTM with input size I and hidden size H.
    [<CompiledName("Create")>]
    let create (inputSize: int) (hiddenSize: int) : Cell =
        Native.ensure ()
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof hiddenSize) hiddenSize
        let L = layout inputSize hiddenSize
        let H = int64 hiddenSize
        let derived = Equations.cell (equations inputSize hiddenSize) // b_t structured, for Bptt's sweeps

        let forward (theta: Tensor) (x: Tensor) (s: Tensor) =
            let hPrev, cPrev = s.narrow(-1L, 0L, H), s.narrow(-1L, H, H) // [B; H] each
            let pre =
                Tensors.linear (L.View(theta, "weight_ih")) x + L.View(theta, "bias_ih")
                + Tensors.linear (L.View(theta, "weight_hh")) hPrev + L.View(theta, "bias_hh") // [B; 4H]
            let i = pre.narrow(-1L, 0L, H).sigmoid ()
            let f = pre.narrow(-1L, H, H).sigmoid ()
            let g = pre.narrow(-1L, 2L * H, H).tanh () // the lecture's candidate tanh(W_c x + U_c h + b_c)
            let o = pre.narrow(-1L, 3L * H, H).sigmoid ()
            let c = f * cPrev + i * g // [B; H]
            let tc = c.tanh ()
            let h = o * tc // [B; H]
            hPrev, cPrev, i, f, g, o, c, tc, h

        // The fast form of the same equations: px = W x + b_ih + b_hh for all steps at once, then
        // per step one fused b + U h, the gates split at once, and addcmul for f ⊙ c + i ⊙ g.
        let project (theta: Tensor) : Tensor -> Tensor =
            let W, b_ih, b_hh = L.View(theta, "weight_ih"), L.View(theta, "bias_ih"), L.View(theta, "bias_hh") // once per θ
            fun x -> Tensors.linear W x + b_ih + b_hh // [..; 4H]

        // Staged: the views of θ are taken once per unroll (projected theta), not once per step,
        // so the backward pass meets one view node instead of T.
        let projected (theta: Tensor) : Tensor -> Tensor -> Tensor =
          let U = L.View(theta, "weight_hh")
          fun px s ->
            // chunk, not narrow: the backward of one split is one concatenation, where every
            // narrow's backward would fill and copy a full-size zero tensor.
            let hc = s.chunk(2L, -1L)
            let hPrev, cPrev = hc[0], hc[1]
            let pre = (Tensors.affine px hPrev U).chunk(4L, -1L) // 4 × [B; H]
            let i, f, g, o = pre[0].sigmoid (), pre[1].sigmoid (), pre[2].tanh (), pre[3].sigmoid ()
            let c = torch.addcmul(f * cPrev, i, g, 1.0.ToScalar()) // f ⊙ c_{t−1} + i ⊙ g
            torch.cat([| o * c.tanh (); c |], -1L) // [h_t; c_t]: [B; 2H]


        let jacobians (theta: Tensor) (x: Tensor) (s: Tensor) =
            let hPrev, cPrev, i, f, g, o, _, tc, _ = forward theta x s
            let dtc = o * (1.0 - tc * tc) // ∂h_t/∂c_t, diagonal: [B; H]
            // ∂c_t/∂(pre-activations of i, f, g, o), each diagonal: [B; H].
            let ci, cf, cg = g * i * (1.0 - i), cPrev * f * (1.0 - f), i * (1.0 - g * g)
            let ho = tc * o * (1.0 - o) // ∂h_t/∂(pre-activation of o)
            let zero = torch.zeros_like ci
            let d = Tensors.diag
            // J = ∂s_t/∂pre, s_t = [h_t; c_t]: [B; 2H; 4H].
            let Jc = torch.cat([| d ci; d cf; d cg; d zero |], 2L) // [B; H; 4H]
            let Jh = torch.cat([| d (dtc * ci); d (dtc * cf); d (dtc * cg); d ho |], 2L) // [B; H; 4H]
            let J = torch.cat([| Jh; Jc |], 1L) // [B; 2H; 4H]
            let dsdh = J.matmulChecked (L.View(theta, "weight_hh")) // ∂s_t/∂h_{t−1}: [B; 2H; H]
            let dsdc = torch.cat([| d (dtc * f); d f |], 1L) // ∂s_t/∂c_{t−1}: [B; 2H; H]
            { State = torch.cat([| dsdh; dsdc |], 2L) // [B; 2H; 2H]
              Parameters = torch.cat([| Tensors.wrtWeight J x; Tensors.wrtWeight J hPrev; J; J |], 2L) } // [B; 2H; P]

        // ∂s_t/∂x_t = J W, with J = ∂s_t/∂pre as in b_t: [B; 2H; I].
        let inputJacobian (theta: Tensor) (x: Tensor) (s: Tensor) =
            let _, cPrev, i, f, g, o, _, tc, _ = forward theta x s
            let dtc = o * (1.0 - tc * tc)
            let ci, cf, cg = g * i * (1.0 - i), cPrev * f * (1.0 - f), i * (1.0 - g * g)
            let ho = tc * o * (1.0 - o)
            let d = Tensors.diag
            let Jc = torch.cat([| d ci; d cf; d cg; d (torch.zeros_like ci) |], 2L) // [B; H; 4H]
            let Jh = torch.cat([| d (dtc * ci); d (dtc * cf); d (dtc * cg); d ho |], 2L) // [B; H; 4H]
            torch.cat([| Jh; Jc |], 1L).matmulChecked (L.View(theta, "weight_ih")) // [B; 2H; I]

        { Cell.fromProjection "lstm" inputSize hiddenSize (2 * hiddenSize) L
            "c_t = f ⊙ c_(t-1) + i ⊙ tanh(W_c x + U_c h_(t-1) + b_c);  h_t = o ⊙ tanh(c_t)" project projected jacobians inputJacobian with
            StructuredJacobians = derived.StructuredJacobians }
