/// How far back in time a cell's gradient reaches, read off the closed form
///
///   ∂s_t/∂θ = Σ_{i=1..t} (Π_{j=i+1..t} c_j) b_i          ∂L/∂θ = Σ_t δ_t ∂s_t/∂θ = Σ_k G_k
///
/// with δ_t = ∂L/∂s_t (the loss's direct dependence on s_t) and G_k = Σ_t δ_t (Π_{j=t−k+1..t} c_j) b_{t−k}
/// the part of the loss gradient that travels back exactly k = t − i steps. For every lag k this
/// measures ‖Π_{j=i+1..t} c_j‖ (spectral and Frobenius) and ‖(Π_{j=i+1..t} c_j) b_i‖_F over every row
/// and position; ‖G_k‖ and, for every τ, what truncated BPTT at τ keeps of ∂L/∂θ (g_τ = Σ_{k<τ} G_k);
/// and the largest singular values of c_t along the trajectory.
///
/// One sweep from i = T down to 1 computes everything, each step's c_i and b_i once (the hand-derived
/// ones, or autodiff's local ones for a cell without them). Two running products carry it:
///   the adjoints  v_{t,i} = δ_t Π_{j=i+1..t} c_j   for every t ≥ i: v_{t,i} = v_{t,i+1} c_{i+1}   ([T; B; S] at most)
///   the products  M_{t,i} = Π_{j=i+1..t} c_j       for the positions t read, i ≤ t < i + N: M_{t,i} = M_{t,i+1} c_{i+1}
/// so no [T; T; S; S] tensor is ever formed, nor the [T; B; S; P] of every b_t: the b_i of one step at a time.
/// The term norms use the Gram matrix of b_i: ‖M b_i‖_F² = Σ (M (b_i b_iᵀ)) ∘ M.
/// Everything is computed in float64 whatever the dtype of θ.
/// Legend: T time, B batch, I input, S state, P parameters, K lags, L products carried.
namespace SeqNets

open System
open TorchSharp

/// A quantity's mean and spread over the rows and positions it was measured at.
type Spread =
    { /// Arithmetic mean.
      Mean: float
      /// Population standard deviation.
      StandardDeviation: float
      /// exp(mean of log): the centre on a log scale (0 when a value is 0).
      GeometricMean: float
      Min: float
      Max: float
      /// How many values (rows × positions); 0 leaves every statistic NaN.
      Count: int }

[<RequireQualifiedAccess>]
module Spread =
    /// The spread of the values (NaN statistics for none).
    [<CompiledName("Of")>]
    let ofValues (values: float[]) : Spread =
        Check.notNull (nameof values) values
        if values.Length = 0 then
            { Mean = nan; StandardDeviation = nan; GeometricMean = nan; Min = nan; Max = nan; Count = 0 }
        else
            let mean = Array.average values
            let variance = values |> Array.averageBy (fun v -> (v - mean) * (v - mean))
            { Mean = mean
              StandardDeviation = sqrt variance
              GeometricMean = exp (values |> Array.averageBy log)
              Min = Array.min values
              Max = Array.max values
              Count = values.Length }

/// What one lag k = t − i measures, over every row and every position t read (with i = t − k ≥ 1).
type LagSensitivity =
    { Lag: int
      /// ‖Π_{j=i+1..t} c_j‖₂, the largest singular value (1 at lag 0).
      Spectral: Spread
      /// ‖Π_{j=i+1..t} c_j‖_F (√S at lag 0).
      Frobenius: Spread
      /// ‖(Π_{j=i+1..t} c_j) b_i‖_F: the term of the closed form that carries θ's influence k steps.
      Term: Spread }

/// What truncated BPTT at τ (the terms with t − i < τ) keeps of the loss gradient g = ∂L/∂θ.
type TruncationPoint =
    { Tau: int
      /// ‖g_τ‖ / ‖g‖.
      KeptNorm: float
      /// ‖g − g_τ‖ / ‖g‖: the share of the gradient that truncation at τ throws away.
      Discarded: float
      /// cos(g_τ, g): whether the truncated gradient still points the same way.
      Cosine: float }

/// What the analysis measures and where.
type SensitivityOptions =
    { /// N: the products and terms are measured at lags 0..N−1; None: every lag (N = T). The loss
      /// gradient's parts G_k and the truncation curve always cover every lag.
      Lags: int option
      /// m: the products are followed from the positions t = T, T − m, T − 2m, … (1: every position).
      /// A stride makes long sequences of wide cells affordable.
      Stride: int
      /// How many of the largest singular values of each c_t to report.
      SingularValues: int }
    /// Every lag, every position, the 4 largest singular values.
    static member Default = { Lags = None; Stride = 1; SingularValues = 4 }

/// How a cell's gradient flows back in time along one batch of trajectories.
[<NoComparison; NoEquality>]
type SensitivityReport =
    { /// What was measured: a cell's name or a network's description (the legend of the pictures).
      Model: string
      /// T.
      Steps: int
      /// B.
      Rows: int
      /// S.
      StateSize: int
      /// P (the recurrent parameters θ whose gradient is measured).
      ParameterCount: int64
      /// The positions t (1-based) the products were followed from, ascending.
      Positions: int[]
      /// Lags 0..N−1.
      Lags: LagSensitivity[]
      /// ‖G_k‖ for k = 0..T−1: the part of ‖∂L/∂θ‖ carried back exactly k steps.
      LossGradientByLag: float[]
      /// τ = 1..T (τ = T is full BPTT).
      Truncation: TruncationPoint[]
      /// [t − 1, i − 1]: the geometric mean over rows of ‖Π_{j=i+1..t} c_j‖₂ for the positions t read,
      /// i ≤ t and t − i < N; NaN elsewhere.
      ProductNorms: float[,]
      /// [t − 1][r]: the (r + 1)-th largest singular value of c_t, averaged over rows.
      Spectrum: float[][]
      /// L, the loss the gradient is of.
      Loss: float
      /// ‖∂L/∂θ‖.
      GradientNorm: float }

[<RequireQualifiedAccess>]
module Sensitivity =
    let private scalar (t: Tensor) = (use d = t.to_type torch.float64 in d.item<float> ())

    let private values (t: Tensor) : float[] =
        use c = t.to_type(torch.float64).contiguous().cpu ()
        c.data<float>().ToArray()

    /// ∂L/∂s_t for t = 1..T, with L = loss states and states [T+1; B; S] (s_0 first): each s_t a leaf of
    /// its own, so the result is L's direct dependence on s_t, not through later states: [T; B; S].
    [<CompiledName("StateGradients")>]
    let stateGradients (loss: Tensor -> Tensor) (states: Tensor) : Tensor * float =
        use _ = SignalShield.enter ()
        Check.notNull (nameof loss) loss
        Check.notNull (nameof states) states
        Check.dims "states" "[T+1; B; S]" 3 states
        // Under a caller's torch.no_grad the loss would not depend on the leaf and δ would be 0.
        use _ = torch.enable_grad ()
        let leaf = states.detach().clone().requires_grad_ true // [T+1; B; S]
        let L = loss leaf
        if isNull L then Check.fail "loss" "loss: expected a scalar tensor, but the function returned null."
        if L.numel () <> 1L then
            Check.fail "loss" $"loss: expected a scalar (one element), but the function returned shape {Check.shapeText L}."
        let value = scalar (L.detach ())
        if not L.requires_grad then
            // A loss that does not depend on the states has a zero gradient.
            torch.zeros_like(leaf.detach ()).narrow(0L, 1L, states.shape[0] - 1L), value
        else
            match Autodiff.gradWith false false [ L.reshape [||] ] [ leaf ] None with
            | [ g ] -> g.narrow(0L, 1L, states.shape[0] - 1L).detach (), value // [T; B; S]
            | _ -> failwith "unreachable"

    /// The lecture's loss on a cell's states: L = 1/T Σ_t ℓ(V h_t + c, o_t), h_t the first H entries
    /// of s_t, for the readout's parameters w_o and targets o ([T; B] classes or [T; B; O] values).
    /// The function reads states [T+1; B; S] (s_0 first), as Sensitivity.analyse passes them.
    [<CompiledName("ReadoutLoss")>]
    let readoutLoss (cell: Cell) (output: OutputLayer) (loss: Loss) (wo: Tensor) (targets: Tensor) : Tensor -> Tensor =
        Check.notNull (nameof cell) cell
        Check.notNull (nameof output) output
        Check.notNull (nameof wo) wo
        Check.notNull (nameof targets) targets
        if output.HiddenSize <> cell.HiddenSize then
            Check.fail "output" $"output: expected a readout from H = {cell.HiddenSize} hidden units, but it reads {output.HiddenSize}."
        fun states ->
            let ys = OutputLayer.apply output (wo.to_type states.dtype) (Recurrence.outputs cell states) // [T; B; O]
            let targets = if loss = MeanSquared then targets.to_type states.dtype else targets
            Loss.sequence loss ys targets

    /// s_0 as [B; S] float64 from a [B; S] or [S] tensor, checked under the name s0.
    let internal initialState (cell: Cell) (B: int64) (s0: Tensor) : Tensor =
        Check.notNull (nameof s0) s0
        Check.floating "s0" s0
        let S = int64 cell.StateSize
        let s0 =
            match int (s0.dim ()) with
            | 1 -> Check.size "s0" "[S]" 0 "S" S s0; s0.unsqueeze(0L).expand(B, S)
            | 2 -> Check.size "s0" "[B; S]" 1 "S" S s0; Check.size "s0" "[B; S]" 0 "B" B s0; s0
            | _ -> Check.fail "s0" $"s0: expected a [S] or [B; S] tensor, but got shape {Check.shapeText s0}."
        Check.finite "s0" s0
        s0.detach().to_type torch.float64

    /// Σ_b v_{k,b} b_i for every adjoint row k of V [K; B; S]: [K; P]. For a cell that takes θ per row
    /// this is a vector–Jacobian product of step i (one backward pass over K·B rows, each reading its
    /// adjoint's copy of θ), O(K·B·P) instead of the O(K·B·S·P) of contracting with b_i; the rows go
    /// in chunks of at most 2²⁴ parameter copies.
    let private adjointProducts (cell: Cell) (theta: Tensor) (xs: Tensor) (states: Tensor) (i: int) (V: Tensor) (b: Tensor) : Tensor =
        if not cell.RowParameters then torch.einsum("kbs,bsp->kp", V, b)
        else
            let K, B, S = V.shape[0], V.shape[1], V.shape[2]
            let P = theta.shape[0]
            let x = xs[int64 (i - 1)] // x_i: [B; I]
            let s = states[int64 (i - 1)] // s_{i−1}: [B; S]
            let chunk = max 1L ((1L <<< 24) / (B * P))
            let parts =
                [| for k0 in 0L .. chunk .. K - 1L ->
                       let n = min chunk (K - k0)
                       let R = n * B
                       let thetaK = theta.unsqueeze(0L).expand(n, P).clone().requires_grad_ true // [n; P]
                       let thetaR = thetaK.unsqueeze(1L).expand(n, B, P).reshape(R, P) // [R; P]
                       let xR = x.unsqueeze(0L).expand(n, B, x.shape[1]).reshape(R, x.shape[1]) // [R; I]
                       let sR = s.unsqueeze(0L).expand(n, B, S).reshape(R, S) // [R; S]
                       let next = cell.Transition thetaR xR sR // [R; S]
                       let vR = V.narrow(0L, k0, n).reshape(R, S) // [R; S]
                       match Autodiff.gradWith false false [ (next * vR).sum () ] [ thetaK ] None with
                       | [ g ] -> g // [n; P]
                       | _ -> failwith "unreachable" |]
            if parts.Length = 1 then parts[0] else torch.cat(parts, 0L)

    /// The analysis, with G = [T; P] (row k: G_k) kept for the caller. withProducts = false skips the
    /// products and their norms.
    let internal sweep (options: SensitivityOptions) (withProducts: bool) (model: string) (cell: Cell) (theta: Tensor)
                       (xs: Tensor) (s0: Tensor) (loss: Tensor -> Tensor) : SensitivityReport * Tensor =
        Check.notNull (nameof cell) cell
        Check.notNull (nameof loss) loss
        Cell.checkTheta cell "theta" theta
        Recurrence.checkSequence cell theta xs
        Check.finite "theta" theta
        match options.Lags with
        | Some n when n < 1 -> Check.fail "Lags" $"Lags: expected at least one lag (N >= 1) or none for every lag, but got {n}."
        | _ -> ()
        Check.positive "Stride" options.Stride
        if options.SingularValues < 0 then
            Check.fail "SingularValues" $"SingularValues: expected zero or more singular values, but got {options.SingularValues}."
        let f64 = torch.float64
        let theta = theta.detach().to_type f64 // [P]
        let xs = xs.detach().to_type f64 // [T; B; I]
        let T, B = int xs.shape[0], xs.shape[1]
        let S, P = int64 cell.StateSize, int64 cell.ParameterCount
        let s0 = initialState cell B s0 // [B; S]
        let N = min T (defaultArg options.Lags T)
        let states = using (torch.no_grad ()) (fun _ -> Recurrence.unroll cell theta xs s0) // [T+1; B; S]
        let delta, lossValue = stateGradients loss states // [T; B; S]
        let positions = [| for t in T .. -options.Stride .. 1 -> t |] |> Array.rev
        let isRead = Array.zeroCreate (T + 1)
        for t in positions do isRead[t] <- true
        let k = min options.SingularValues (int S)
        let G = torch.zeros([| int64 T; P |], dtype = f64) // row k: G_k
        let spectral = Array.init N (fun _ -> ResizeArray<float>())
        let frobenius = Array.init N (fun _ -> ResizeArray<float>())
        let term = Array.init N (fun _ -> ResizeArray<float>())
        let heat = Array2D.create T T nan
        let spectrum = Array.zeroCreate T
        let eye = torch.eye(S, dtype = f64).expand(B, S, S) // [B; S; S]
        // Carried from step i + 1 to step i: c_{i+1}, the adjoints and the products (with their t).
        let mutable cNext: Tensor = null
        let mutable V: Tensor = null // [K; B; S], row k: v_{i+k, i}
        let mutable M: Tensor = null // [L; B; S; S]
        let mutable live: int[] = [||] // the t of each product, ascending
        let carry (old: Tensor) (fresh: Tensor) =
            let kept = fresh.MoveToOuterDisposeScope()
            if not (isNull old) then old.Dispose()
            kept
        // Gradients on, even under a caller's torch.no_grad: a cell without hand-derived Jacobians
        // gets its c_i, b_i from autodiff.
        use _ = torch.enable_grad ()
        for i in T .. -1 .. 1 do
            use scope = torch.NewDisposeScope()
            let j = Bptt.localJacobians cell theta (xs.narrow(0L, int64 (i - 1), 1L)) (states.narrow(0L, int64 (i - 1), 2L))
            let c = j.State[0L] // c_i: [B; S; S]
            let b = j.Parameters[0L] // b_i: [B; S; P]
            // v_{t,i} = v_{t,i+1} c_{i+1} for t > i, and v_{i,i} = δ_i.
            let di = delta[int64 (i - 1)].unsqueeze 0L // [1; B; S]
            let Vi = if isNull V then di else torch.cat([| di; torch.einsum("kbs,bsr->kbr", V, cNext) |], 0L) // [K; B; S]
            let K = Vi.shape[0]
            G.narrow(0L, 0L, K).add_ (adjointProducts cell theta xs states i Vi b) |> ignore // G_k += Σ_b v_{i+k,i} b_i
            V <- carry V Vi
            if withProducts then
                // M_{t,i} = M_{t,i+1} c_{i+1} for the t still within N lags, then M_{i,i} = I if i is read.
                let keep = live |> Array.map (fun t -> t - i < N)
                let kept = live |> Array.filter (fun t -> t - i < N)
                let moved =
                    if kept.Length = 0 then None
                    else
                        let idx = torch.tensor([| for n in 0 .. live.Length - 1 do if keep[n] then yield int64 n |])
                        Some((M.index_select(0L, idx)).matmulChecked cNext) // [L; B; S; S]
                let Mi, ts =
                    match isRead[i], moved with
                    | true, Some m -> torch.cat([| eye.unsqueeze 0L; m |], 0L), Array.append [| i |] kept
                    | true, None -> eye.unsqueeze 0L, [| i |]
                    | false, Some m -> m, kept
                    | false, None -> null, [||]
                if not (isNull Mi) then
                    let sv = torch.linalg.svdvals Mi // [L; B; S]
                    let s2 = values (sv.select(-1L, 0L)) // [L·B]
                    let fr = values (Mi.square().sum([| -2L; -1L |]).sqrt ()) // [L·B]
                    let gram = b.matmulChecked (b.transpose(1L, 2L)) // b_i b_iᵀ: [B; S; S]
                    let tm = values ((Mi.matmulChecked gram * Mi).sum([| -2L; -1L |]).clamp_min(0.0.ToScalar()).sqrt ()) // [L·B]
                    for n in 0 .. ts.Length - 1 do
                        let lag = ts[n] - i
                        let mutable logSum = 0.0
                        for r in 0 .. int B - 1 do
                            let at = n * int B + r
                            spectral[lag].Add s2[at]
                            frobenius[lag].Add fr[at]
                            term[lag].Add tm[at]
                            logSum <- logSum + log s2[at]
                        heat[ts[n] - 1, i - 1] <- exp (logSum / float B)
                    M <- carry M Mi
                else
                    if not (isNull M) then M.Dispose()
                    M <- null
                live <- ts
            if k > 0 then
                let sv = values (torch.linalg.svdvals(c).narrow(-1L, 0L, int64 k)) // [B·k]
                spectrum[i - 1] <- Array.init k (fun r -> Array.init (int B) (fun row -> sv[row * k + r]) |> Array.average)
            else spectrum[i - 1] <- [||]
            cNext <- carry cNext c
        let g = G.sum(0L) // ∂L/∂θ: [P]
        let gNorm = scalar (g.norm ())
        let lagNorms = values (G.norm(1)) // [T]
        let kept = G.cumsum(0L) // row τ−1: g_τ, [T; P]
        let keptNorm = values (kept.norm(1))
        let discarded = values ((g.unsqueeze 0L - kept).norm(1))
        let dots = values (kept.matmulChecked g)
        for t in [ cNext; V; M ] do if not (isNull t) then t.Dispose()
        let report =
            { Model = model
              Steps = T
              Rows = int B
              StateSize = int S
              ParameterCount = P
              Positions = positions
              Lags =
                if withProducts then
                    Array.init N (fun lag ->
                        { Lag = lag
                          Spectral = Spread.ofValues (spectral[lag].ToArray())
                          Frobenius = Spread.ofValues (frobenius[lag].ToArray())
                          Term = Spread.ofValues (term[lag].ToArray()) })
                else [||]
              LossGradientByLag = lagNorms
              Truncation =
                Array.init T (fun n ->
                    { Tau = n + 1
                      KeptNorm = keptNorm[n] / gNorm
                      Discarded = discarded[n] / gNorm
                      Cosine = dots[n] / (keptNorm[n] * gNorm) })
              ProductNorms = heat
              Spectrum = spectrum
              Loss = lossValue
              GradientNorm = gNorm }
        report, G

    /// How the cell's gradient flows back in time along the trajectories xs [T; B; I] from s_0 ([B; S]
    /// or [S]) under θ, for the loss L = loss states (a scalar of the states [T+1; B; S], s_0 first; see
    /// readoutLoss). model names the result (the legend of the pictures).
    [<CompiledName("Analyse")>]
    let analyse (options: SensitivityOptions) (model: string) (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor)
                (loss: Tensor -> Tensor) : SensitivityReport =
        use _ = SignalShield.enter ()
        Native.ensure ()
        use _ = torch.NewDisposeScope()
        let report, _ = sweep options true (if String.IsNullOrWhiteSpace model then cell.Name else model) cell theta xs s0 loss
        report

    /// G_k for k = 0..T−1: the parts of ∂L/∂θ carried back exactly k steps ([T; P], float64); their
    /// sum is ∂L/∂θ, and the sum of the first τ rows is the gradient of truncated BPTT at τ.
    [<CompiledName("LossGradientByLag")>]
    let lossGradientByLag (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor) (loss: Tensor -> Tensor) : Tensor =
        use _ = SignalShield.enter ()
        Native.ensure ()
        use scope = torch.NewDisposeScope()
        let _, G = sweep SensitivityOptions.Default false cell.Name cell theta xs s0 loss
        G.MoveToOuterDisposeScope()
