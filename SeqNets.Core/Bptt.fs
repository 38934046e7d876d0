/// Backpropagation through time as data. Along one unrolled trajectory the hand-derived
/// c_t = ∂f/∂s_{t−1} and b_t = ∂f/∂θ give a_t = ∂s_t/∂θ two ways:
///   (a) the recurrence      a_0 = 0,  a_t = b_t + c_t a_{t−1}
///   (b) the closed form     a_t = b_t + Σ_{i=1}^{t−1} (Π_{j=i+1}^{t} c_j) b_i
/// and Autodiff.stateParameterJacobian gives it a third way, (c) by reverse mode.
/// Truncation and randomized truncation are weights on the terms of the closed form.
/// Legend: T time, B batch, S state, P parameters, O outputs.
namespace SeqNets

open System
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
    /// Steps per call when evaluating Jacobians for many steps at once: at most 2^24 entries of c_t and b_t.
    let internal stepsPerChunk (B: int64) (S: int64) (width: int64) (T: int64) =
        max 1L (min T ((1L <<< 24) / max 1L (B * S * width)))

    /// The hand-derived c_t and b_t at every step of the trajectory xs [T; B; I] with states
    /// [T+1; B; S] (as returned by Recurrence.unroll). The Jacobians are per-row functions, so
    /// steps are evaluated together as rows (T·B rows per call, in chunks that bound the memory).
    [<CompiledName("Jacobians")>]
    let jacobians (cell: Cell) (theta: Tensor) (xs: Tensor) (states: Tensor) : TrajectoryJacobians =
        use _ = SignalShield.enter ()
        match cell.Jacobians with
        | None -> Check.fail "cell" $"cell: expected a cell with hand-derived Jacobians, but '{cell.Name}' has none; use Bptt.localJacobians (autodiff's c_t and b_t) or Bptt.jacobiansByAutodiff."
        | Some jac ->
            let T, B, I = xs.shape[0], xs.shape[1], xs.shape[2]
            let S, P = int64 cell.StateSize, int64 cell.ParameterCount
            let chunk = stepsPerChunk B S (S + P) T
            let cs = ResizeArray<Tensor>()
            let bs = ResizeArray<Tensor>()
            for t0 in 0L .. chunk .. T - 1L do
                let n = min chunk (T - t0)
                let j = jac theta (xs.narrow(0L, t0, n).reshape(n * B, I)) (states.narrow(0L, t0, n).reshape(n * B, S)) // rows (t, b)
                cs.Add(j.State.reshape(n, B, S, S))
                bs.Add(j.Parameters.reshape(n, B, S, P))
            let cat (parts: ResizeArray<Tensor>) = if parts.Count = 1 then parts[0] else torch.cat(parts.ToArray(), 0L)
            { State = cat cs // [T; B; S; S]
              Parameters = cat bs } // [T; B; S; P]

    /// The same c_t and b_t by autodiff, one step at a time.
    [<CompiledName("JacobiansByAutodiff")>]
    let jacobiansByAutodiff (cell: Cell) (theta: Tensor) (xs: Tensor) (states: Tensor) : TrajectoryJacobians =
        use _ = SignalShield.enter ()
        let c, b = Autodiff.trajectoryJacobians cell theta xs states
        { State = c; Parameters = b }

    /// c_t and b_t for any cell: the hand-derived ones when the cell has them, autodiff's local
    /// Jacobians of each step otherwise. Every closed-form route (byClosedForm, byRecurrence,
    /// byTruncatedSum, lossGradient) then applies to a user's cell with no Jacobians of its own.
    [<CompiledName("LocalJacobians")>]
    let localJacobians (cell: Cell) (theta: Tensor) (xs: Tensor) (states: Tensor) : TrajectoryJacobians =
        match cell.Jacobians with
        | Some _ -> jacobians cell theta xs states
        | None -> jacobiansByAutodiff cell theta xs states

    /// (a) a_t = b_t + c_t a_{t−1}, a_0 = 0, for t = 1..T: [T; B; S; P].
    [<CompiledName("ByRecurrence")>]
    let byRecurrence (j: TrajectoryJacobians) : Tensor =
        use _ = SignalShield.enter ()
        let T = j.State.shape[0]
        let mutable a = j.Parameters[0L]
        let all = Array.zeroCreate (int T)
        all[0] <- a
        for t in 1L .. T - 1L do
            a <- j.Parameters[t] + j.State[t].matmulChecked a // [B; S; P]
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
                       if i < t then product <- product.matmulChecked j.State[int64 i] // now Π_{j=i+1}^{t} c_j
                       let w = weight t i
                       if w <> 0.0 then sum <- sum + (product.matmulChecked j.Parameters[int64 (i - 1)]) * w
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

    let private checkStep (name: string) (T: int64) (t: int) =
        if t < 1 || int64 t > T then Check.fail name $"{name}: expected a step in 1..{T} (T of xs), but got {t}."

    let private checkSeed (cell: Cell) (B: int64) (seed: Tensor) =
        Check.notNull "seed" seed
        Check.dims "seed" "[B; K; S]" 3 seed
        Check.size "seed" "[B; K; S]" 0 "B" B seed
        Check.size "seed" "[B; K; S]" 2 "S" (int64 cell.StateSize) seed

    /// seed · ∂s_t/∂θ at one step t (1-based) in closed form, by one suffix sweep: with
    /// M_t = seed and M_{i−1} = M_i c_i, seed · ∂s_t/∂θ = Σ_{i ≤ t} M_i b_i. With the cell's
    /// structured b_t (cells written as equations and the built-in cells) each term J (dW v) adds
    /// (M_i J) ⊗ vᵀ, so no dense b_i is ever made: the sweep costs t products [K; S]·[S; S] and
    /// [K; S]·[S; R], and one product over the steps per term. Otherwise the dense b_i are used.
    /// seed [B; K; S] → [B; K; P]. The Jacobians of steps 1..t are evaluated as rows, in chunks.
    [<CompiledName("SweepAtStep")>]
    let sweepAt (cell: Cell) (theta: Tensor) (xs: Tensor) (states: Tensor) (t: int) (seed: Tensor) : Tensor =
        use _ = SignalShield.enter ()
        use _ = torch.no_grad ()
        let T, B, I = xs.shape[0], xs.shape[1], xs.shape[2]
        checkStep "t" T t
        checkSeed cell B seed
        let S, P = int64 cell.StateSize, int64 cell.ParameterCount
        let K = seed.shape[1]
        let result = torch.zeros([| B; K; P |], dtype = theta.dtype)
        let mutable M = seed.to_type theta.dtype // [B; K; S]
        let rows (t0: int64) (n: int64) = xs.narrow(0L, t0, n).reshape(n * B, I), states.narrow(0L, t0, n).reshape(n * B, S)
        match cell.StructuredJacobians, cell.Jacobians with
        | Some structured, _ ->
            let chunk = max 1L (stepsPerChunk B S (4L * S) (int64 t) / 4L)
            // Chunks from the last step back: steps t0 .. t0 + n − 1 (0-based) of each.
            let mutable stop = int64 t
            while stop > 0L do
                use _ = torch.NewDisposeScope()
                let t0 = max 0L (stop - chunk)
                let n = stop - t0
                let x, s = rows t0 n
                let j = structured theta x s
                let c = j.State.reshape(n, B, S, S)
                // The distinct J of the terms (terms often share one), each [n; B; S; R].
                let distinct = ResizeArray<Tensor>()
                let slot (J: Tensor) =
                    match Seq.tryFindIndex (fun (d: Tensor) -> Object.ReferenceEquals(d, J)) distinct with
                    | Some k -> k
                    | None -> distinct.Add J; distinct.Count - 1
                let termSlots = j.Parameters |> List.map (fun term -> slot term.Jacobian)
                let Js = distinct |> Seq.map (fun J -> J.reshape(n, B, S, J.shape[2])) |> Array.ofSeq
                let A = Array.init Js.Length (fun _ -> Array.zeroCreate (int n))
                for i in n - 1L .. -1L .. 0L do
                    for k in 0 .. Js.Length - 1 do
                        let J = Js[k]
                        A[k][int i] <- M.matmulChecked J[i] // M_i J_i: [B; K; R]
                    M <- M.matmulChecked c[i] // M_{i−1} = M_i c_i: [B; K; S]
                let stacked = A |> Array.map (fun a -> torch.stack(a, 0L)) // [n; B; K; R] each
                List.iter2 (fun (term: ParameterTerm) k ->
                    let a = stacked[k]
                    let piece =
                        match term.Factors with
                        | [] -> a.sum(0L) // [B; K; R]
                        | [ v ] -> torch.einsum("nbkr,nbf->bkrf", a, v.reshape(n, B, -1L)).reshape(B, K, -1L)
                        | [ v; z ] -> torch.einsum("nbkr,nbf,nbg->bkrfg", a, v.reshape(n, B, -1L), z.reshape(n, B, -1L)).reshape(B, K, -1L)
                        | _ -> failwith "internal: a term with more than two factors"
                    result.narrow(2L, term.Offset, term.Count).add_ piece |> ignore) j.Parameters termSlots
                M <- M.MoveToOuterDisposeScope()
                stop <- t0
            result
        | None, Some jac ->
            let chunk = stepsPerChunk B S (S + P) (int64 t)
            let mutable stop = int64 t
            while stop > 0L do
                use _ = torch.NewDisposeScope()
                let t0 = max 0L (stop - chunk)
                let n = stop - t0
                let x, s = rows t0 n
                let j = jac theta x s
                let c, b = j.State.reshape(n, B, S, S), j.Parameters.reshape(n, B, S, P)
                for i in n - 1L .. -1L .. 0L do
                    result.add_ (M.matmulChecked b[i]) |> ignore // M_i b_i: [B; K; P]
                    M <- M.matmulChecked c[i]
                M <- M.MoveToOuterDisposeScope()
                stop <- t0
            result
        | None, None -> Check.fail "cell" $"cell: expected a cell with Jacobians (derived or hand-written), but '{cell.Name}' has none; use Bptt.byAutodiffAt."

    /// ∂s_t/∂θ at one step t (1-based) in closed form by one suffix sweep: [B; S; P].
    [<CompiledName("AtStep")>]
    let atStep (cell: Cell) (theta: Tensor) (xs: Tensor) (states: Tensor) (t: int) : Tensor =
        let B, S = xs.shape[1], int64 cell.StateSize
        sweepAt cell theta xs states t (torch.eye(S, dtype = theta.dtype).expand(B, S, S))

    /// ∂h_t/∂θ (the output, the first H entries of s_t) at one step t by one suffix sweep: [B; H; P].
    [<CompiledName("OutputAtStep")>]
    let outputAtStep (cell: Cell) (theta: Tensor) (xs: Tensor) (states: Tensor) (t: int) : Tensor =
        let B, S, H = xs.shape[1], int64 cell.StateSize, int64 cell.HiddenSize
        sweepAt cell theta xs states t (torch.eye(H, S, dtype = theta.dtype).expand(B, H, S))

    /// seed · ∂s_t/∂θ at one step by reverse-mode autodiff through the unroll of steps 1..t
    /// (the reference for the sweep): seed [B; K; S] → [B; K; P]. Memory grows with B·K copies
    /// of θ and t steps of B·K rows, not with T·S copies.
    [<CompiledName("SweepByAutodiffAt")>]
    let sweepByAutodiffAt (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor) (t: int) (seed: Tensor) : Tensor =
        use _ = SignalShield.enter ()
        Cell.checkTheta cell "theta" theta
        Recurrence.checkSequence cell theta xs
        checkStep "t" xs.shape[0] t
        checkSeed cell xs.shape[1] seed
        let s0 = InitialState.resolve cell theta.dtype xs.shape[1] (Given s0)
        Autodiff.stateParameterJacobianAt cell theta xs s0 t seed

    /// ∂s_t/∂θ at one step by reverse-mode autodiff: [B; S; P].
    [<CompiledName("ByAutodiffAt")>]
    let byAutodiffAt (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor) (t: int) : Tensor =
        let B, S = xs.shape[1], int64 cell.StateSize
        sweepByAutodiffAt cell theta xs s0 t (torch.eye(S, dtype = theta.dtype).expand(B, S, S))

    /// ∂h_t/∂θ at one step by reverse-mode autodiff: [B; H; P].
    [<CompiledName("OutputByAutodiffAt")>]
    let outputByAutodiffAt (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor) (t: int) : Tensor =
        let B, S, H = xs.shape[1], int64 cell.StateSize, int64 cell.HiddenSize
        sweepByAutodiffAt cell theta xs s0 t (torch.eye(H, S, dtype = theta.dtype).expand(B, H, S))

    /// ∂s_t/∂s_0 = Π_{j=1}^{t} c_j for t = 1..T: [T; B; S; S].
    [<CompiledName("InitialStateSensitivity")>]
    let initialStateSensitivity (j: TrajectoryJacobians) : Tensor =
        use _ = SignalShield.enter ()
        let T = j.State.shape[0]
        let mutable m = j.State[0L]
        let all = Array.zeroCreate (int T)
        all[0] <- m
        for t in 1L .. T - 1L do
            m <- j.State[t].matmulChecked m
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
        let dh = delta.matmulChecked V // [T; B; H]
        let ds = torch.nn.functional.pad(dh, [| 0L; int64 (cell.StateSize - cell.HiddenSize) |]) // [T; B; S]
        let gTheta = torch.einsum("tbs,tbsp->p", ds, a) / T // [P]
        let gV = torch.einsum("tbo,tbh->oh", delta, hs) / T // [O; H]
        let gc = delta.sum([| 0L; 1L |]) / T // [O]
        let gs0 = torch.einsum("tbs,tbsr->br", ds, initialStateSensitivity j) / T // [B; S]
        { Cell = gTheta; Output = torch.cat([| gV.reshape(-1L); gc |], 0L); InitialState = gs0 }
