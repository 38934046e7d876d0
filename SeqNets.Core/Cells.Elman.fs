/// The Elman (vanilla) recurrent cell, in PyTorch's nn.RNN layout.
namespace SeqNets.Cells

open TorchSharp
open SeqNets

/// The nonlinearity φ of an Elman cell.
type Activation =
    | Tanh
    | Relu

/// h_t = φ(W x_t + b_ih + U h_{t−1} + b_hh), φ = tanh or ReLU; the state is h (S = H).
/// θ = [W = weight_ih [H; I]; U = weight_hh [H; H]; b_ih [H]; b_hh [H]], as nn.RNN.
/// Jacobians (derivation in docs/derivations.md): with a = W x + U h + b and d = φ'(a),
///   c_t = diag(d) U,   ∂h_t/∂x_t = diag(d) W,   ∂h_t/∂W_jk = d_j δ_ij x_k,   ∂h_t/∂U_jk = d_j δ_ij h_k,   ∂h_t/∂b = diag(d).
[<RequireQualifiedAccess>]
module Elman =
    let private layout (I: int) (H: int) = ParameterLayout.Recurrent(1, I, H)

    let private phi activation (a: Tensor) =
        match activation with
        | Tanh -> a.tanh ()
        | Relu -> a.relu ()

    /// φ'(a), written with the output h = φ(a) where that is cheaper.
    let private phiPrime activation (a: Tensor) (h: Tensor) =
        match activation with
        | Tanh -> 1.0 - h * h
        | Relu -> (a.gt (0.0.ToScalar())).to_type a.dtype

    /// The Elman cell as equations, in the same layout (what SeqNets derives c_t and b_t from):
    ///   a_t = W x_t + b_ih + U h_{t−1} + b_hh,   h_t = φ(a_t).
    [<CompiledName("Equations")>]
    let equations (activation: Activation) (inputSize: int) (hiddenSize: int) : CellEquations =
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof hiddenSize) hiddenSize
        let x, h = Expr.input, Expr.previous "h"
        let W, U = Block.rows "weight_ih" 0 hiddenSize "W", Block.rows "weight_hh" 0 hiddenSize "U"
        let b_ih, b_hh = Expr.parameter (Block.rows "bias_ih" 0 hiddenSize "b_ih"), Expr.parameter (Block.rows "bias_hh" 0 hiddenSize "b_hh")
        let a = Expr.named "a" (W * x + b_ih + U * h + b_hh)
        let name, hNext =
            match activation with
            | Tanh -> "elman-tanh", Expr.tanh a
            | Relu -> "elman-relu", Expr.relu a
        Equations.create name inputSize [ "h", hiddenSize ] (layout inputSize hiddenSize) [ "h", hNext ]

    /// An Elman cell with input size I, hidden size H and nonlinearity φ.
    [<CompiledName("Create")>]
    let create (activation: Activation) (inputSize: int) (hiddenSize: int) : Cell =
        Native.ensure ()
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof hiddenSize) hiddenSize
        let L = layout inputSize hiddenSize
        let derived = Equations.cell (equations activation inputSize hiddenSize) // b_t structured, for Bptt's sweeps
        let preActivation (theta: Tensor) (x: Tensor) (h: Tensor) =
            let W, U = L.View(theta, "weight_ih"), L.View(theta, "weight_hh")
            let b_ih, b_hh = L.View(theta, "bias_ih"), L.View(theta, "bias_hh")
            Tensors.linear W x + b_ih + Tensors.linear U h + b_hh // [B; H]
        // The fast form of the same equations: px = W x + b_ih + b_hh for all steps at once,
        // then one fused b + U h per step.
        let project (theta: Tensor) : Tensor -> Tensor =
            let W, b_ih, b_hh = L.View(theta, "weight_ih"), L.View(theta, "bias_ih"), L.View(theta, "bias_hh") // once per θ
            fun x -> Tensors.linear W x + b_ih + b_hh
        let projected (theta: Tensor) : Tensor -> Tensor -> Tensor =
            let U = L.View(theta, "weight_hh") // once per unroll, not per step
            fun px h -> phi activation (Tensors.affine px h U)
        let jacobians (theta: Tensor) (x: Tensor) (hPrev: Tensor) =
            let a = preActivation theta x hPrev // [B; H]
            let h = phi activation a
            let d = phiPrime activation a h // [B; H]
            let D = Tensors.diag d // [B; H; H]
            let U = L.View(theta, "weight_hh")
            { State = Tensors.rightMul D U // [B; H; H]
              Parameters = torch.cat([| Tensors.wrtWeight D x; Tensors.wrtWeight D hPrev; D; D |], 2L) } // [B; H; P]
        // ∂h_t/∂x_t = diag(d) W.
        let inputJacobian (theta: Tensor) (x: Tensor) (hPrev: Tensor) =
            let a = preActivation theta x hPrev // [B; H]
            let d = phiPrime activation a (phi activation a) // [B; H]
            Tensors.rightMul (Tensors.diag d) (L.View(theta, "weight_ih")) // [B; H; I]
        let name = match activation with Tanh -> "elman-tanh" | Relu -> "elman-relu"
        let phiText = match activation with Tanh -> "tanh" | Relu -> "relu"
        let equations = $"h_t = {phiText}(W x_t + b_ih + U h_(t-1) + b_hh)"
        { Cell.fromProjection name inputSize hiddenSize hiddenSize L equations project projected jacobians inputJacobian with
            StructuredJacobians = derived.StructuredJacobians }
