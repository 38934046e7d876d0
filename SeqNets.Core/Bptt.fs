/// Backpropagation through time as data. Along one unrolled trajectory the hand-derived
/// c_t = ∂f/∂s_{t−1} and b_t = ∂f/∂θ give a_t = ∂s_t/∂θ two ways:
///   (a) the recurrence      a_0 = 0,  a_t = b_t + c_t a_{t−1}
///   (b) the closed form     a_t = b_t + Σ_{i=1}^{t−1} (Π_{j=i+1}^{t} c_j) b_i
/// and Autodiff.stateParameterJacobian gives it a third way, (c) by reverse mode.
/// Truncation and randomized truncation are weights on the terms of the closed form.
/// Legend: T time, B batch, S state, P parameters, O outputs.
namespace SeqNets

open TorchSharp

/// The local Jacobians along a trajectory.
type TrajectoryJacobians =
    { /// c_t for t = 1..T: [T; B; S; S].
      State: Tensor
      /// b_t for t = 1..T: [T; B; S; P].
      Parameters: Tensor }

/// ∂L/∂(every parameter) of a sequence loss.
type LossGradient =
    { /// ∂L/∂θ: [P].
      Cell: Tensor
      /// ∂L/∂w_o: [P_o].
      Output: Tensor
      /// ∂L/∂s_0: [B; S].
      InitialState: Tensor }

[<RequireQualifiedAccess>]
module Bptt =
    /// The hand-derived c_t and b_t at every step of the trajectory xs [T; B; I] with states
    /// [T+1; B; S] (as returned by Recurrence.unroll).
    [<CompiledName("Jacobians")>]
    let jacobians (cell: Cell) (theta: Tensor) (xs: Tensor) (states: Tensor) : TrajectoryJacobians =
        use _ = SignalShield.enter ()
        match cell.Jacobians with
        | None -> Check.fail "cell" $"cell: expected a cell with hand-derived Jacobians, but '{cell.Name}' has none; use Autodiff.trajectoryJacobians."
        | Some jac ->
            let T = xs.shape[0]
            let steps = [| for t in 0L .. T - 1L -> jac theta xs[t] states[t] |]
            { State = torch.stack(steps |> Array.map _.State, 0L) // [T; B; S; S]
              Parameters = torch.stack(steps |> Array.map _.Parameters, 0L) } // [T; B; S; P]

    /// The same c_t and b_t by autodiff, one step at a time.
    [<CompiledName("JacobiansByAutodiff")>]
    let jacobiansByAutodiff (cell: Cell) (theta: Tensor) (xs: Tensor) (states: Tensor) : TrajectoryJacobians =
        use _ = SignalShield.enter ()
        let c, b = Autodiff.trajectoryJacobians cell theta xs states
        { State = c; Parameters = b }

    /// (a) a_t = b_t + c_t a_{t−1}, a_0 = 0, for t = 1..T: [T; B; S; P].
    [<CompiledName("ByRecurrence")>]
    let byRecurrence (j: TrajectoryJacobians) : Tensor =
        use _ = SignalShield.enter ()
        let T = j.State.shape[0]
        let mutable a = j.Parameters[0L]
        let all = Array.zeroCreate (int T)
        all[0] <- a
        for t in 1L .. T - 1L do
            a <- j.Parameters[t] + j.State[t].matmul a // [B; S; P]
            all[int t] <- a
        torch.stack(all, 0L)

    /// a_t = Σ_{i=1}^{t} w(t, i) (Π_{j=i+1}^{t} c_j) b_i for t = 1..T (1-based t and i), each
    /// product built from c_t down to c_{i+1}; terms whose weight is 0 are skipped. With w ≡ 1
    /// this is the closed form (b).
    [<CompiledName("ByWeightedSum")>]
    let byWeightedSum (weight: int -> int -> float) (j: TrajectoryJacobians) : Tensor =
        use _ = SignalShield.enter ()
        let T = int j.State.shape[0]
        let B, S = j.State.shape[1], j.State.shape[2]
        let eye = torch.eye(S, dtype = j.State.dtype).expand(B, S, S)
        torch.stack(
            [| for t in 1 .. T ->
                   let mutable product = eye // Π_{j=i+1}^{t} c_j, empty for i = t
                   let mutable sum = torch.zeros_like j.Parameters[0L]
                   for i in t .. -1 .. 1 do
                       if i < t then product <- product.matmul j.State[int64 i] // now Π_{j=i+1}^{t} c_j
                       let w = weight t i
                       if w <> 0.0 then sum <- sum + (product.matmul j.Parameters[int64 (i - 1)]) * w
                   sum |],
            0L)

    /// (b) a_t = b_t + Σ_{i=1}^{t−1} (Π_{j=i+1}^{t} c_j) b_i, summed term by term: [T; B; S; P].
    [<CompiledName("ByClosedForm")>]
    let byClosedForm (j: TrajectoryJacobians) : Tensor = byWeightedSum (fun _ _ -> 1.0) j

    /// The closed form truncated to its last τ terms (i > t − τ): the gradient that flows back at
    /// most τ steps (Jaeger 2002).
    [<CompiledName("ByTruncatedSum")>]
    let byTruncatedSum (tau: int) (j: TrajectoryJacobians) : Tensor =
        Check.positive (nameof tau) tau
        byWeightedSum (fun t i -> if t - i < tau then 1.0 else 0.0) j

    /// (c) a_t by reverse-mode autodiff through the whole unrolled graph: [T; B; S; P].
    [<CompiledName("ByAutodiff")>]
    let byAutodiff (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor) : Tensor =
        use _ = SignalShield.enter ()
        Cell.checkTheta cell "theta" theta
        Recurrence.checkSequence cell theta xs
        let s0 = InitialState.resolve cell theta.dtype xs.shape[1] (Given s0) // [S] → [B; S]
        Autodiff.stateParameterJacobian cell theta xs s0

    /// ∂s_t/∂s_0 = Π_{j=1}^{t} c_j for t = 1..T: [T; B; S; S].
    [<CompiledName("InitialStateSensitivity")>]
    let initialStateSensitivity (j: TrajectoryJacobians) : Tensor =
        use _ = SignalShield.enter ()
        let T = j.State.shape[0]
        let mutable m = j.State[0L]
        let all = Array.zeroCreate (int T)
        all[0] <- m
        for t in 1L .. T - 1L do
            m <- j.State[t].matmul m
            all[int t] <- m
        torch.stack(all, 0L)

    /// ∂L/∂θ, ∂L/∂w_o and ∂L/∂s_0 of L = 1/T Σ_t ℓ(g(h_t), o_t) assembled in closed form from a
    /// (any route's [T; B; S; P]) and the Jacobians:
    ///   δ_t = ∂ℓ_t/∂y_t,  ∂ℓ_t/∂s_t = [δ_t V, 0],  ∂L/∂θ = 1/T Σ_t Σ_b ∂ℓ_t/∂s_t · a_t,
    ///   ∂L/∂V = 1/T Σ_t δ_tᵀ h_t,  ∂L/∂c = 1/T Σ_t Σ_b δ_t,  ∂L/∂s_0 = 1/T Σ_t ∂ℓ_t/∂s_t Π_{j≤t} c_j.
    [<CompiledName("LossGradient")>]
    let lossGradient (cell: Cell) (output: OutputLayer) (loss: Loss) (wo: Tensor) (states: Tensor)
                     (j: TrajectoryJacobians) (a: Tensor) (targets: Tensor) : LossGradient =
        use _ = SignalShield.enter ()
        let T = float (states.shape[0] - 1L)
        let hs = Recurrence.outputs cell states // [T; B; H]
        let ys = OutputLayer.apply output wo hs // [T; B; O]
        Loss.checkTargets loss ys targets
        let delta = Loss.outputGradient loss ys targets // [T; B; O]
        let V = output.Layout.View(wo, "weight") // [O; H]
        let dh = delta.matmul V // [T; B; H]
        let ds = torch.nn.functional.pad(dh, [| 0L; int64 (cell.StateSize - cell.HiddenSize) |]) // [T; B; S]
        let gTheta = torch.einsum("tbs,tbsp->p", ds, a) / T // [P]
        let gV = torch.einsum("tbo,tbh->oh", delta, hs) / T // [O; H]
        let gc = delta.sum([| 0L; 1L |]) / T // [O]
        let gs0 = torch.einsum("tbs,tbsr->br", ds, initialStateSensitivity j) / T // [B; S]
        { Cell = gTheta; Output = torch.cat([| gV.reshape(-1L); gc |], 0L); InitialState = gs0 }
