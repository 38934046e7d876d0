/// Multiplicative modules and the multiplicative RNN (Sutskever, Martens & Hinton 2011).
namespace SeqNets.Cells

open TorchSharp
open SeqNets

/// The lecture's multiplicative module: the weights are themselves a function of a context z,
///   w_ij = u_ijᵀ z = Σ_k u_ijk z_k,     s = W(z) x,   s_i = Σ_j w_ij x_j,
/// with U [m; n; d], x [B; n] and z [B; d].
[<RequireQualifiedAccess>]
module Multiplicative =
    /// s = W(z) x for every row, with W(z)_ij = Σ_k U_ijk z_k: U [m; n; d], x [B; n], z [B; d] → [B; m].
    [<CompiledName("Module")>]
    let apply (U: Tensor) (x: Tensor) (z: Tensor) : Tensor =
        Native.ensure ()
        Check.dims "U" "[m; n; d]" 3 U
        Check.dims "x" "[B; n]" 2 x
        Check.dims "z" "[B; d]" 2 z
        Check.size "x" "[B; n]" 1 "n" U.shape[1] x
        Check.size "z" "[B; d]" 1 "d" U.shape[2] z
        torch.einsum("ijk,bk,bj->bi", U, z, x)

    /// The module as a recurrent cell, written as equations: the hidden-to-hidden matrix is the
    /// module's W(x_t) = U(x_t) (w_ij = u_ijᵀ x_t), U [H; H; I] in the module's own layout [m; n; d]:
    ///   h_t = tanh(U(x_t) h_{t−1} + W x_t + b),   θ = [U [H; H; I]; W [H; I]; b [H]].
    [<CompiledName("Equations")>]
    let equations (inputSize: int) (hiddenSize: int) : CellEquations =
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof hiddenSize) hiddenSize
        let I, H = int64 inputSize, int64 hiddenSize
        let L = ParameterLayout [ "U", [ H; H; I ]; "W", [ H; I ]; "b", [ H ] ]
        let hNext = Expr.tanh (Expr.bilinear (Block.named "U") (Expr.previous "h") Expr.input + Block.named "W" * Expr.input + Expr.vector "b")
        Equations.create "multiplicative-module" inputSize [ "h", hiddenSize ] L [ "h", hNext ]

/// The multiplicative RNN: the hidden-to-hidden matrix depends on the input through the
/// factored multiplicative module W_hh(x) = W_hf · diag(W_fx x) · W_fh, i.e. u_ijk = Σ_f W_hf[i,f] W_fx[f,k] W_fh[f,j]:
///   f_t = W_fx x_t                                   (F factors)
///   h_t = tanh(W_hx x_t + W_hf (f_t ⊙ (W_fh h_{t−1})) + b_h)
/// θ = [W_hx [H; I]; W_fx [F; I]; W_fh [F; H]; W_hf [H; F]; b_h [H]]; the state is h (S = H).
/// Jacobians (docs/derivations.md), with d = 1 − h_t², D = diag(d), m = f ⊙ (W_fh h):
///   c_t = D W_hf diag(f) W_fh,  ∂h/∂W_hx = D ⊗ x,  ∂h/∂W_hf = D ⊗ m,
///   ∂h/∂W_fh = (D W_hf diag(f)) ⊗ h,  ∂h/∂W_fx = (D W_hf diag(W_fh h)) ⊗ x,  ∂h/∂b_h = D.
[<RequireQualifiedAccess>]
module MultiplicativeRnn =
    /// The layout of θ: [W_hx [H; I]; W_fx [F; I]; W_fh [F; H]; W_hf [H; F]; b_h [H]].
    let private layout (I: int64) (H: int64) (F: int64) =
        ParameterLayout [ "W_hx", [ H; I ]
                          "W_fx", [ F; I ]
                          "W_fh", [ F; H ]
                          "W_hf", [ H; F ]
                          "b_h", [ H ] ]

    /// The multiplicative RNN as equations, in the same layout:
    ///   f_t = W_fx x_t,   h_t = tanh(W_hx x_t + W_hf (f_t ⊙ (W_fh h_{t−1})) + b_h).
    [<CompiledName("Equations")>]
    let equations (inputSize: int) (hiddenSize: int) (factors: int) : CellEquations =
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof hiddenSize) hiddenSize
        Check.positive (nameof factors) factors
        let x, h = Expr.input, Expr.previous "h"
        let W_hx, W_fx, W_fh, W_hf = Block.named "W_hx", Block.named "W_fx", Block.named "W_fh", Block.named "W_hf"
        let f = Expr.named "f" (W_fx * x)
        let hNext = Expr.tanh (W_hx * x + W_hf * (f * (W_fh * h)) + Expr.vector "b_h")
        Equations.create "mrnn" inputSize [ "h", hiddenSize ] (layout (int64 inputSize) (int64 hiddenSize) (int64 factors)) [ "h", hNext ]

    /// A multiplicative RNN with input size I, hidden size H and F factors.
    [<CompiledName("Create")>]
    let create (inputSize: int) (hiddenSize: int) (factors: int) : Cell =
        Native.ensure ()
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof hiddenSize) hiddenSize
        Check.positive (nameof factors) factors
        let I, H, F = int64 inputSize, int64 hiddenSize, int64 factors
        let L = layout I H F
        let derived = Equations.cell (equations inputSize hiddenSize factors) // b_t structured, for Bptt's sweeps

        let forward (theta: Tensor) (x: Tensor) (h: Tensor) =
            let f = Tensors.linear (L.View(theta, "W_fx")) x // [B; F]
            let u = Tensors.linear (L.View(theta, "W_fh")) h // [B; F]
            let m = f * u // [B; F]
            let hNext = (Tensors.linear (L.View(theta, "W_hx")) x + Tensors.linear (L.View(theta, "W_hf")) m + L.View(theta, "b_h")).tanh ()
            f, u, m, hNext

        // The fast form of the same equations: [W_hx x + b_h; W_fx x] for all steps at once.
        let project (theta: Tensor) : Tensor -> Tensor =
            let W_hx, b_h, W_fx = L.View(theta, "W_hx"), L.View(theta, "b_h"), L.View(theta, "W_fx") // once per θ
            fun x -> torch.cat([| Tensors.linear W_hx x + b_h; Tensors.linear W_fx x |], -1L) // [..; H + F]

        let projected (theta: Tensor) : Tensor -> Tensor -> Tensor =
          let W_fh, W_hf = L.View(theta, "W_fh"), L.View(theta, "W_hf") // once per unroll, not per step
          fun px h ->
            let parts = px.split([| H; F |], -1L)
            let a, f = parts[0], parts[1] // W_hx x_t + b_h, W_fx x_t
            let m = f * Tensors.linear W_fh h // [B; F]
            (Tensors.affine a m W_hf).tanh ()


        let jacobians (theta: Tensor) (x: Tensor) (h: Tensor) =
            let f, u, m, hNext = forward theta x h
            let D = Tensors.diag (1.0 - hNext * hNext) // [B; H; H]
            let DW = D.matmulChecked (L.View(theta, "W_hf")) // ∂h_t/∂m: [B; H; F]
            let Ju = DW * f.unsqueeze 1L // ∂h_t/∂(W_fh h): [B; H; F]
            let Jf = DW * u.unsqueeze 1L // ∂h_t/∂(W_fx x): [B; H; F]
            { State = Ju.matmulChecked (L.View(theta, "W_fh")) // [B; H; H]
              Parameters =
                torch.cat([| Tensors.wrtWeight D x; Tensors.wrtWeight Jf x; Tensors.wrtWeight Ju h; Tensors.wrtWeight D m; D |], 2L) }

        // ∂h_t/∂x_t = D W_hx + (D W_hf diag(W_fh h)) W_fx.
        let inputJacobian (theta: Tensor) (x: Tensor) (h: Tensor) =
            let _, u, _, hNext = forward theta x h
            let D = Tensors.diag (1.0 - hNext * hNext) // [B; H; H]
            let Jf = D.matmulChecked (L.View(theta, "W_hf")) * u.unsqueeze 1L // [B; H; F]
            D.matmulChecked (L.View(theta, "W_hx")) + Jf.matmulChecked (L.View(theta, "W_fx")) // [B; H; I]

        { Cell.fromProjection "mrnn" inputSize hiddenSize hiddenSize L
            "h_t = tanh(W_hx x + W_hf ((W_fx x) ⊙ (W_fh h_(t-1))) + b_h)" project projected jacobians inputJacobian with
            StructuredJacobians = derived.StructuredJacobians }
