/// The training engine on the derivation: one recurrent layer's whole unroll as one differentiable
/// operation, whose backward pass is the reverse sweep of the lecture's identity with the cells'
/// hand-derived Jacobians applied as vector–Jacobian products (c_t and b_t are never formed):
///
///   δs_T = ∂L/∂s_T,   δs_t ← δs_t + ∂L/∂h_t
///   δs_{t−1} = w_t · c_tᵀ δs_t            (w_t the boundary weight of step t)
///   ∂L/∂θ = Σ_t b_tᵀ δs_t,   ∂L/∂px_t = (∂s_t/∂px_t)ᵀ δs_t
///
/// With pre-activations a_t = px_t + U h_{t−1} (a cell's input projection px = InputProjection θ x
/// comes in for every step at once), b_tᵀ δs_t and c_tᵀ δs_t factor through δa_t = (∂s_t/∂a_t)ᵀ δs_t:
/// ∂L/∂U = Σ_t δa_tᵀ h_{t−1} — one GEMM over all steps —, c_tᵀ δs_t = Uᵀ δa_t + (direct terms) — one
/// GEMM per step —, and δa_t itself is one fused element-wise pass per step (Engine.Kernels.fs).
/// The forward pass stores only what that needs: the states and the gates.
/// Legend: T time, B batch, G width of px, H hidden, S state, F factors, P parameters.
namespace SeqNets

#nowarn "9" // native pointers into the tensors' memory

open System
open System.Collections.Generic
open System.Diagnostics
open System.Runtime.CompilerServices
open System.Runtime.InteropServices
open TorchSharp

/// A built-in cell the engine runs.
type internal EngineCell =
    | EngineElman of relu: bool
    | EngineGruPyTorch
    | EngineGruLecture
    | EngineLstm
    | EngineMrnn of factors: int

/// Everything one unroll needs besides its tensors.
[<NoComparison; NoEquality>]
type internal EnginePlan =
    { Cell: EngineCell
      T: int
      B: int
      H: int
      /// Width of the state.
      S: int
      /// Width of px.
      G: int
      /// Width of a row of the stored gates (0: none).
      K: int
      P: int64
      /// Offset in θ of weight_hh (W_fh for the mRNN).
      Recurrent: int64
      /// Offset in θ of bias_hh (GRU, PyTorch's form) or W_hf (mRNN).
      Second: int64
      Weights: float[]
      /// Whether row b steps at time t, at [t·B + b]; null: every row steps.
      Active: bool[]
      Double: bool
      /// Whether the backward pass may write its gradients over the stored gates (Engine.unrollOnce).
      Reuse: bool
      /// Set by a backward pass that reused the gates: a second one through the same unroll is refused.
      Consumed: bool ref
      /// The forward pass's own handles on its buffers, let go at the end of the (first) backward
      /// pass, so that their memory goes as soon as autograd lets go of it too, not at the end of the
      /// caller's dispose scope.
      Buffers: ResizeArray<Tensor> }

/// Where the engine's time went since the last Reset: its GEMMs (libtorch calls), its element-wise
/// passes (.NET SIMD), and the rest of its forward and backward (allocation, views, copies). For
/// benchmarks and profiles; the counters are off until Enable is called.
[<AbstractClass; Sealed>]
type EngineProfile private () =
    static let mutable enabled = false
    static let mutable gemm = 0L
    static let mutable kernels = 0L
    static let mutable total = 0L
    static let mutable gemmCalls = 0L
    static let mutable flops = 0.0
    /// Starts (or stops) counting.
    static member Enable(on: bool) = enabled <- on
    /// Whether the counters run.
    static member Enabled = enabled
    /// Sets every counter to zero.
    static member Reset() =
        gemm <- 0L
        kernels <- 0L
        total <- 0L
        gemmCalls <- 0L
        flops <- 0.0
    /// Seconds in libtorch GEMM calls.
    static member GemmSeconds = float gemm / float Stopwatch.Frequency
    /// Seconds in the element-wise passes.
    static member KernelSeconds = float kernels / float Stopwatch.Frequency
    /// Seconds in the engine's forward and backward functions altogether.
    static member TotalSeconds = float total / float Stopwatch.Frequency
    /// GEMM calls made.
    static member GemmCalls = gemmCalls
    /// Floating-point operations of those GEMMs (2·m·n·k each).
    static member GemmFlops = flops
    static member internal AddGemm(ticks: int64, m: int64, n: int64, k: int64) =
        gemm <- gemm + ticks
        gemmCalls <- gemmCalls + 1L
        flops <- flops + 2.0 * float m * float n * float k
    static member internal AddKernel(ticks: int64) = kernels <- kernels + ticks
    static member internal AddTotal(ticks: int64) = total <- total + ticks

/// The forward and backward sweeps.
module internal EngineSweep =
    /// The address of a contiguous CPU tensor's first element.
    let address (t: Tensor) : nativeint =
        let bytes = t.bytes
        NativeInterop.NativePtr.toNativeInt (NativeInterop.NativePtr.ofVoidPtr<byte> (Unsafe.AsPointer(&MemoryMarshal.GetReference bytes)))

    /// C ← β C + A B (β = 0 or 1), counted in the profile.
    let inline gemm (c: Tensor) (a: Tensor) (b: Tensor) (beta: float32) =
        if EngineProfile.Enabled then
            let t0 = Stopwatch.GetTimestamp()
            c.addmm_(a, b, beta, 1.0f) |> ignore
            EngineProfile.AddGemm(Stopwatch.GetTimestamp() - t0, a.shape[0], b.shape[1], a.shape[1])
        else c.addmm_(a, b, beta, 1.0f) |> ignore

    /// Runs an element-wise pass, counted in the profile.
    let inline kernel ([<InlineIfLambda>] run: unit -> unit) =
        if EngineProfile.Enabled then
            let t0 = Stopwatch.GetTimestamp()
            run ()
            EngineProfile.AddKernel(Stopwatch.GetTimestamp() - t0)
        else run ()

    /// A block of θ as a matrix [rows; cols].
    let block (theta: Tensor) (offset: int64) (rows: int) (cols: int) =
        theta.narrow(0L, offset, int64 rows * int64 cols).view(int64 rows, int64 cols)

    let disposeAll (ts: Tensor[]) = for t in ts do t.Dispose()

    /// Why the last refused backward pass was refused (see UnrollFunction.backward), for messages and tests.
    let mutable lastRefusal = ""

    /// The gradient carried backwards through the states, in two buffers [B; S] that take turns:
    /// Carry holds c_{t+1}ᵀ δs_{t+1} (before its weight w_{t+1}) while step t writes c_tᵀ δs_t into Next.
    [<Sealed>]
    type Carried(B: int, S: int, H: int, dsT: Tensor) =
        let buffers = [| (use c = dsT.contiguous () in c.clone ()); torch.empty([| int64 B; int64 S |], dtype = dsT.dtype) |]
        let addresses = buffers |> Array.map address
        let heads = buffers |> Array.map (fun b -> b.narrow(1L, 0L, int64 H)) // the h parts, GEMM outputs [B; H]
        let bytes = B * S * (if dsT.dtype = torch.float64 then 8 else 4)
        let mutable current = 0
        let mutable taken = -1
        member _.Carry = addresses[current]
        member _.Next = addresses[1 - current]
        member _.NextHead = heads[1 - current]
        member _.ClearNext() = (EngineKernels.span (NativeInterop.NativePtr.ofNativeInt<byte> addresses[1 - current]) bytes).Clear()
        member _.Swap() = current <- 1 - current
        /// The carry, handed over (not disposed with this object).
        member _.Take() =
            taken <- current
            buffers[current]
        interface IDisposable with
            member _.Dispose() =
                disposeAll heads
                for i in 0 .. 1 do if i <> taken then buffers[i].Dispose()

    /// Runs the recurrence; returns hs [T; B; H] and s_T [B; S], and the tensors the backward needs.
    let forward (plan: EnginePlan) (theta: Tensor) (px: Tensor) (s0: Tensor) : Tensor * Tensor * Tensor list =
        let t0 = Stopwatch.GetTimestamp()
        let { T = T; B = B; H = H; S = S; G = G; K = K } = plan
        let dtype = theta.dtype
        let double = plan.Double
        let size = if double then 8L else 4L
        let at (a: nativeint) (elements: int64) = a + nativeint (elements * size)
        let TB = int64 T * int64 B
        let theta = theta.contiguous ()
        let px = px.contiguous ()
        let states = torch.empty([| TB + int64 B; int64 S |], dtype = dtype) // s_0 … s_T: [(T+1)·B; S]
        (use first = states.narrow(0L, 0L, int64 B) in first.copy_ s0 |> ignore)
        let gates = if K > 0 then torch.empty([| TB; int64 K |], dtype = dtype) else null // [T·B; K]
        let hsOwn = if plan.Cell = EngineLstm then torch.empty([| int64 T; int64 B; int64 H |], dtype = dtype) else null
        let aPx, aStates, aTheta = address px, address states, address theta
        let aGates = if isNull gates then 0n else address gates
        let active = plan.Active
        // h_{t−1} for every step as GEMM operands, views made in one call: T+1 × [B; H].
        let hPrev =
            use s3 = states.view(int64 T + 1L, int64 B, int64 S)
            use h3 = s3.narrow(2L, 0L, int64 H)
            h3.unbind 0L
        let pxAt t = at aPx (int64 t * int64 B * int64 G)
        let stateAt t = at aStates (int64 t * int64 B * int64 S)
        let gatesAt t = at aGates (int64 t * int64 B * int64 K)
        let gateSteps (start: int) (width: int) =
            use g3 = gates.view(int64 T, int64 B, int64 K)
            use part = g3.narrow(2L, int64 start, int64 width)
            part.unbind 0L
        try
            match plan.Cell with
            | EngineElman relu ->
                use U = block theta plan.Recurrent H H
                use Ut = U.t ()
                use pre = torch.empty([| int64 B; int64 H |], dtype = dtype)
                let aPre = address pre
                for t in 0 .. T - 1 do
                    gemm pre hPrev[t] Ut 0.0f // U h_{t−1}
                    kernel (fun () -> EngineKernels.elmanForward double relu B H active (t * B) (pxAt t) aPre (stateAt t) (stateAt (t + 1)))
            | EngineLstm ->
                use U = block theta plan.Recurrent (4 * H) H
                use Ut = U.t ()
                use pre = torch.empty([| int64 B; 4L * int64 H |], dtype = dtype)
                let aPre, aHs = address pre, address hsOwn
                for t in 0 .. T - 1 do
                    gemm pre hPrev[t] Ut 0.0f
                    kernel (fun () ->
                        EngineKernels.lstmForward double B H active (t * B) (pxAt t) aPre (stateAt t) (gatesAt t) (stateAt (t + 1))
                            (at aHs (int64 t * int64 B * int64 H)))
            | EngineGruPyTorch ->
                use U = block theta plan.Recurrent (3 * H) H
                use Ut = U.t ()
                use pre = torch.empty([| int64 B; 3L * int64 H |], dtype = dtype)
                let aPre, aBhh = address pre, at aTheta plan.Second
                for t in 0 .. T - 1 do
                    gemm pre hPrev[t] Ut 0.0f
                    kernel (fun () -> EngineKernels.gruForward double B H active (t * B) (pxAt t) aPre aBhh (stateAt t) (gatesAt t) (stateAt (t + 1)))
            | EngineGruLecture ->
                use U = block theta plan.Recurrent (3 * H) H
                use Urz = U.narrow(0L, 0L, 2L * int64 H)
                use Un = U.narrow(0L, 2L * int64 H, int64 H)
                use UrzT = Urz.t ()
                use UnT = Un.t ()
                use preRz = torch.empty([| int64 B; 2L * int64 H |], dtype = dtype)
                use preN = torch.empty([| int64 B; int64 H |], dtype = dtype)
                let aPreRz, aPreN = address preRz, address preN
                let q = gateSteps (3 * H) H // r ⊙ h_{t−1} of every step: T × [B; H]
                try
                    for t in 0 .. T - 1 do
                        gemm preRz hPrev[t] UrzT 0.0f
                        kernel (fun () -> EngineKernels.gruLectureGates double B H (pxAt t) aPreRz (stateAt t) (gatesAt t))
                        gemm preN q[t] UnT 0.0f
                        kernel (fun () -> EngineKernels.gruLectureState double B H active (t * B) (pxAt t) aPreN (stateAt t) (gatesAt t) (stateAt (t + 1)))
                finally disposeAll q
            | EngineMrnn factors ->
                let F = factors
                use Wfh = block theta plan.Recurrent F H
                use Whf = block theta plan.Second H F
                use WfhT = Wfh.t ()
                use WhfT = Whf.t ()
                use u = torch.empty([| int64 B; int64 F |], dtype = dtype)
                use pre = torch.empty([| int64 B; int64 H |], dtype = dtype)
                let aU, aPre = address u, address pre
                let m = gateSteps F F // f ⊙ (W_fh h_{t−1}) of every step: T × [B; F]
                try
                    for t in 0 .. T - 1 do
                        gemm u hPrev[t] WfhT 0.0f
                        kernel (fun () -> EngineKernels.mrnnFactors double B H F (pxAt t) aU (gatesAt t))
                        gemm pre m[t] WhfT 0.0f
                        kernel (fun () -> EngineKernels.mrnnState double B H F active (t * B) (pxAt t) aPre (stateAt t) (stateAt (t + 1)))
                finally disposeAll m
        finally disposeAll hPrev
        let hs =
            if isNull hsOwn then
                use outs = states.narrow(0L, int64 B, TB)
                outs.view(int64 T, int64 B, int64 H) // the states are the outputs when S = H: [T; B; H]
            else hsOwn
        let sT = (use last = states.narrow(0L, TB, int64 B) in last.clone ()) // [B; S]
        if EngineProfile.Enabled then EngineProfile.AddTotal(Stopwatch.GetTimestamp() - t0)
        // px is kept only where the backward reads it (the mRNN's f = W_fx x).
        let pxSaved = match plan.Cell with EngineMrnn _ -> px | _ -> (px.Dispose(); null)
        plan.Buffers.AddRange [ for b in [ theta; pxSaved; states; gates; hsOwn ] do if not (isNull b) then b ]
        hs, sT, [ theta; pxSaved; states; gates ]

    /// The reverse sweep: (∂L/∂θ [P], ∂L/∂px [T; B; G], ∂L/∂s_0 [B; S]) from ∂L/∂hs and ∂L/∂s_T.
    let backward (plan: EnginePlan) (saved: Tensor list) (dHs: Tensor) (dsT: Tensor) : Tensor * Tensor * Tensor =
        let t0 = Stopwatch.GetTimestamp()
        let { T = T; B = B; H = H; S = S; G = G; K = K } = plan
        let theta, px, states, gates =
            match saved with
            | [ a; b; c; d ] -> a, b, c, d
            | _ -> invalidOp "Engine: the saved tensors of the forward pass are missing."
        let dtype = theta.dtype
        let double = plan.Double
        let size = if double then 8L else 4L
        let at (a: nativeint) (elements: int64) = a + nativeint (elements * size)
        let TB = int64 T * int64 B
        let weights, active = plan.Weights, plan.Active
        use dHs = dHs.contiguous () // [T; B; H]
        // With Reuse, the LSTM's ∂L/∂px overwrites its gates step by step (same shape; each step's gates
        // are read before they are overwritten), so the backward pass allocates no second [T; B; 4H].
        let dpx =
            match plan.Cell with
            | EngineLstm when plan.Reuse -> gates.view(int64 T, int64 B, int64 G)
            | _ -> torch.empty([| int64 T; int64 B; int64 G |], dtype = dtype) // ∂L/∂px
        let dTheta = torch.zeros([| plan.P |], dtype = dtype) // ∂L/∂θ
        use carried = new Carried(B, S, H, dsT) // the gradient carried from step to step
        let aPx, aStates, aGates = (if isNull px then 0n else address px), address states, (if isNull gates then 0n else address gates)
        let aDhs, aDpx = address dHs, address dpx
        let pxAt t = at aPx (int64 t * int64 B * int64 G)
        let dpxAt t = at aDpx (int64 t * int64 B * int64 G)
        let stateAt t = at aStates (int64 t * int64 B * int64 S)
        let gatesAt t = at aGates (int64 t * int64 B * int64 K)
        let dhAt t = at aDhs (int64 t * int64 B * int64 H)
        let incoming t = if t = T - 1 then 1.0 else weights[t + 1]
        /// Ends step t: adds the GEMM part of c_tᵀ δs_t unless w_t = 0 cuts it, then swaps.
        let finish (t: int) (gemmPart: Tensor -> unit) =
            if weights[t] <> 0.0 then gemmPart carried.NextHead else carried.ClearNext()
            carried.Swap()
        let stepViews (t3: Tensor) (start: int) (width: int) =
            use part = t3.narrow(2L, int64 start, int64 width)
            part.unbind 0L
        // h_{t−1} of every step as one matrix: [T·B; H] (row stride S).
        use hPrev = (use first = states.narrow(0L, 0L, TB) in first.narrow(1L, 0L, int64 H))
        use dpx2 = dpx.view(TB, int64 G) // [T·B; G]
        use dpx3 = dpx.view(int64 T, int64 B, int64 G)
        match plan.Cell with
        | EngineElman relu ->
            use U = block theta plan.Recurrent H H
            let dA = dpx.unbind 0L
            try
                for t in T - 1 .. -1 .. 0 do
                    kernel (fun () ->
                        EngineKernels.elmanBackward double relu B H active (t * B) (incoming t) carried.Carry (dhAt t) (stateAt (t + 1)) (dpxAt t) carried.Next)
                    finish t (fun nextH -> gemm nextH dA[t] U 1.0f) // + Uᵀ δa_t
            finally disposeAll dA
            use dU = block dTheta plan.Recurrent H H
            use dAt = dpx2.t ()
            gemm dU dAt hPrev 0.0f // ∂L/∂U = Σ_t δa_tᵀ h_{t−1}
        | EngineLstm ->
            use U = block theta plan.Recurrent (4 * H) H
            let dA = dpx.unbind 0L
            try
                for t in T - 1 .. -1 .. 0 do
                    kernel (fun () ->
                        EngineKernels.lstmBackward double B H active (t * B) (incoming t) carried.Carry (dhAt t) (gatesAt t) (stateAt t) (stateAt (t + 1)) (dpxAt t) carried.Next)
                    finish t (fun nextH -> gemm nextH dA[t] U 1.0f)
            finally disposeAll dA
            use dU = block dTheta plan.Recurrent (4 * H) H
            use dAt = dpx2.t ()
            gemm dU dAt hPrev 0.0f
        | EngineGruPyTorch ->
            use U = block theta plan.Recurrent (3 * H) H
            // ∂L/∂(U h + b_hh): [T·B; 3H] in rows 4H apart; with Reuse it overwrites each step's gates
            // (r, z, n), which the kernel reads first (gh_n's column stays).
            use dghRows = if plan.Reuse then gates.view(TB, 4L * int64 H) else torch.empty([| TB; 4L * int64 H |], dtype = dtype)
            use dgh = dghRows.narrow(1L, 0L, 3L * int64 H)
            let aDgh = address dghRows
            let dG = (use g3 = dghRows.view(int64 T, int64 B, 4L * int64 H) in use part = g3.narrow(2L, 0L, 3L * int64 H) in part.unbind 0L)
            try
                for t in T - 1 .. -1 .. 0 do
                    kernel (fun () ->
                        EngineKernels.gruBackward double B H active (t * B) (incoming t) carried.Carry (dhAt t) (gatesAt t) (stateAt t) (dpxAt t)
                            (at aDgh (int64 t * int64 B * 4L * int64 H)) carried.Next)
                    finish t (fun nextH -> gemm nextH dG[t] U 1.0f)
            finally disposeAll dG
            use dU = block dTheta plan.Recurrent (3 * H) H
            use dGt = dgh.t ()
            gemm dU dGt hPrev 0.0f
            use dBhh = dTheta.narrow(0L, plan.Second, 3L * int64 H)
            use sum = dgh.sum(0L) // ∂L/∂b_hh = Σ_t δgh_t
            dBhh.copy_ sum |> ignore
        | EngineGruLecture ->
            use U = block theta plan.Recurrent (3 * H) H
            use Urz = U.narrow(0L, 0L, 2L * int64 H)
            use Un = U.narrow(0L, 2L * int64 H, int64 H)
            use dq = torch.empty([| int64 B; int64 H |], dtype = dtype) // U_nᵀ δa_n: [B; H]
            let aDq = address dq
            let dArz, dAn = stepViews dpx3 0 (2 * H), stepViews dpx3 (2 * H) H
            try
                for t in T - 1 .. -1 .. 0 do
                    let w = incoming t
                    kernel (fun () -> EngineKernels.gruLectureBackwardN double B H active (t * B) w carried.Carry (dhAt t) (gatesAt t) (stateAt t) (dpxAt t))
                    gemm dq dAn[t] Un 0.0f
                    kernel (fun () ->
                        EngineKernels.gruLectureBackwardR double B H active (t * B) w carried.Carry (dhAt t) (gatesAt t) (stateAt t) aDq (dpxAt t) carried.Next)
                    finish t (fun nextH -> gemm nextH dArz[t] Urz 1.0f)
            finally
                disposeAll dArz
                disposeAll dAn
            use dU = block dTheta plan.Recurrent (3 * H) H
            use dUrz = dU.narrow(0L, 0L, 2L * int64 H)
            use dUn = dU.narrow(0L, 2L * int64 H, int64 H)
            use dArz2 = dpx2.narrow(1L, 0L, 2L * int64 H)
            use dAn2 = dpx2.narrow(1L, 2L * int64 H, int64 H)
            use q = gates.narrow(1L, 3L * int64 H, int64 H) // r ⊙ h_{t−1}: [T·B; H]
            use dArzT = dArz2.t ()
            use dAnT = dAn2.t ()
            gemm dUrz dArzT hPrev 0.0f // ∂L/∂U_rz = Σ_t δa_rzᵀ h_{t−1}
            gemm dUn dAnT q 0.0f // ∂L/∂U_n = Σ_t δa_nᵀ (r ⊙ h_{t−1})
        | EngineMrnn factors ->
            let F = factors
            use Wfh = block theta plan.Recurrent F H
            use Whf = block theta plan.Second H F
            use dm = torch.empty([| int64 B; int64 F |], dtype = dtype) // W_hfᵀ δa: [B; F]
            use du = torch.empty([| TB; int64 F |], dtype = dtype) // ∂L/∂(W_fh h_{t−1}): [T·B; F]
            let aDm, aDu = address dm, address du
            let dA = stepViews dpx3 0 H
            let dU = (use u3 = du.view(int64 T, int64 B, int64 F) in u3.unbind 0L)
            try
                for t in T - 1 .. -1 .. 0 do
                    let w = incoming t
                    kernel (fun () -> EngineKernels.mrnnBackwardA double B H F active (t * B) w carried.Carry (dhAt t) (stateAt (t + 1)) (dpxAt t))
                    gemm dm dA[t] Whf 0.0f
                    kernel (fun () ->
                        EngineKernels.mrnnBackwardB double B H F active (t * B) w carried.Carry (dhAt t) (gatesAt t) (pxAt t) aDm (dpxAt t)
                            (at aDu (int64 t * int64 B * int64 F)) carried.Next)
                    finish t (fun nextH -> gemm nextH dU[t] Wfh 1.0f)
            finally
                disposeAll dA
                disposeAll dU
            use dWfh = block dTheta plan.Recurrent F H
            use dWhf = block dTheta plan.Second H F
            use dA2 = dpx2.narrow(1L, 0L, int64 H)
            use dAt = dA2.t ()
            use m = gates.narrow(1L, int64 F, int64 F) // f ⊙ (W_fh h_{t−1}): [T·B; F]
            use duT = du.t ()
            gemm dWhf dAt m 0.0f // ∂L/∂W_hf = Σ_t δa_tᵀ m_t
            gemm dWfh duT hPrev 0.0f // ∂L/∂W_fh = Σ_t δu_tᵀ h_{t−1}
        // The carry now holds c_1ᵀ δs_1 (the state part of step 1); w_1 weights the way into s_0.
        let ds0 = carried.Take() // [B; S]
        if weights[0] = 0.0 then ds0.zero_ () |> ignore
        elif weights[0] <> 1.0 then ds0.mul_ (weights[0].ToScalar()) |> ignore
        if EngineProfile.Enabled then EngineProfile.AddTotal(Stopwatch.GetTimestamp() - t0)
        dTheta, dpx, ds0

/// The unroll as a TorchSharp autograd function: vars are θ, px, s_0 and the plan.
[<Sealed>]
type internal UnrollFunction() =
    inherit torch.autograd.MultiTensorFunction<UnrollFunction>()
    override _.Name = "SeqNets.Engine.unroll"
    override _.forward(ctx: torch.autograd.AutogradContext, vars: obj[]) =
        let theta, px, s0, plan = vars[0] :?> Tensor, vars[1] :?> Tensor, vars[2] :?> Tensor, vars[3] :?> EnginePlan
        let hs, sT, saved = EngineSweep.forward plan theta px s0
        ctx.save_for_backward(List saved)
        ctx.save_data("plan", plan)
        List [ hs; sT ]
    override _.backward(ctx: torch.autograd.AutogradContext, grads: List<Tensor>) =
        // This runs inside libtorch's backward pass, called from native code: an exception must not
        // escape (it would end the process), and an error libtorch raised about the result would end
        // it too where the caller is torch.autograd.grad. A backward pass that cannot give the
        // gradient gives NaN instead (training skips such an update) and says why in lastRefusal.
        let plan = ctx.get_data "plan" :?> EnginePlan
        let refuse (why: string) =
            EngineSweep.lastRefusal <- why
            let dtype = if plan.Double then torch.float64 else torch.float32
            let nan (shape: int64[]) = torch.empty(shape, dtype = dtype).fill_(Double.NaN.ToScalar())
            List [ nan [| plan.P |]; nan [| int64 plan.T; int64 plan.B; int64 plan.G |]; nan [| int64 plan.B; int64 plan.S |]; null ]
        try
            use _ = SignalShield.enter ()
            if plan.Consumed.Value then
                refuse "Engine.unrollOnce: its backward pass runs once per forward pass (it writes its gradients over the stored gates); a second backward pass through the same graph (retain_graph) gets NaN. Use Engine.unroll for that."
            else
                if plan.Reuse then plan.Consumed.Value <- true
                let saved = ctx.get_saved_variables () |> List.ofSeq
                let dTheta, dpx, ds0 = EngineSweep.backward plan saved grads[0] grads[1]
                for t in saved do if not (isNull t) then t.Dispose()
                for t in plan.Buffers do t.Dispose()
                plan.Buffers.Clear()
                List [ dTheta; dpx; ds0; null ]
        with e -> refuse $"Engine.unroll: the backward pass failed: {e}"

/// The training engine on the derivation (see the file's comment): a recurrent layer's unroll as
/// one differentiable operation over the built-in cells.
[<RequireQualifiedAccess>]
module Engine =
    let private layoutIs (cell: Cell) (expected: (string * int64[]) list) =
        (cell.Layout.Blocks |> List.map (fun b -> b.Name, b.Shape)) = expected

    /// The engine's form of a built-in cell, recognised by its name, checked by its layout and sizes.
    let internal identify (cell: Cell) : EngineCell option =
        if isNull (box cell) then None
        else
            let I, H, S = int64 cell.InputSize, int64 cell.HiddenSize, cell.StateSize
            let recurrent gates = layoutIs cell [ "weight_ih", [| gates * H; I |]; "weight_hh", [| gates * H; H |]; "bias_ih", [| gates * H |]; "bias_hh", [| gates * H |] ]
            let hasProjection = cell.InputProjection.IsSome && cell.ProjectedTransition.IsSome
            match cell.Name with
            | "elman-tanh" when hasProjection && S = cell.HiddenSize && recurrent 1L -> Some(EngineElman false)
            | "elman-relu" when hasProjection && S = cell.HiddenSize && recurrent 1L -> Some(EngineElman true)
            | "gru-pytorch" when hasProjection && S = cell.HiddenSize && recurrent 3L -> Some EngineGruPyTorch
            | "gru-lecture" when hasProjection && S = cell.HiddenSize && recurrent 3L -> Some EngineGruLecture
            | "lstm" when hasProjection && S = 2 * cell.HiddenSize && recurrent 4L -> Some EngineLstm
            | "mrnn" when hasProjection && S = cell.HiddenSize ->
                match cell.Layout.Blocks with
                | [ { Name = "W_hx"; Shape = [| h1; i1 |] }; { Name = "W_fx"; Shape = [| f1; i2 |] }; { Name = "W_fh"; Shape = [| f2; h2 |] }
                    { Name = "W_hf"; Shape = [| h3; f3 |] }; { Name = "b_h"; Shape = [| h4 |] } ]
                    when h1 = H && h2 = H && h3 = H && h4 = H && i1 = I && i2 = I && f1 = f2 && f2 = f3 && f1 > 0L -> Some(EngineMrnn(int f1))
                | _ -> None
            | _ -> None

    /// Whether the engine runs this cell: the built-in Elman (tanh, ReLU), GRU (both forms), LSTM
    /// and multiplicative RNN, recognised by name and layout. A user-defined cell does not run on
    /// it (use the step path, Recurrence and the cell's own transition).
    [<CompiledName("Supports")>]
    let supports (cell: Cell) : bool = (identify cell).IsSome

    /// The width G of the input projection px of a cell the engine runs.
    let internal projectionWidth (cell: Cell) =
        match identify cell with
        | Some(EngineElman _) -> cell.HiddenSize
        | Some EngineGruPyTorch | Some EngineGruLecture -> 3 * cell.HiddenSize
        | Some EngineLstm -> 4 * cell.HiddenSize
        | Some(EngineMrnn factors) -> cell.HiddenSize + factors
        | None -> 0

    let private run (reuse: bool) (cell: Cell) (theta: Tensor) (px: Tensor) (s0: Tensor) (weights: float[]) (mask: Tensor option) : Tensor * Tensor =
        use _ = SignalShield.enter ()
        Check.notNull "cell" cell
        let kind =
            match identify cell with
            | Some k -> k
            | None -> Check.fail "cell" $"cell: expected a built-in cell the engine runs (elman-tanh, elman-relu, gru-pytorch, gru-lecture, lstm, mrnn), but got '{cell.Name}' ({cell.Layout}); use the step path."
        Cell.checkTheta cell "theta" theta
        let cpu (name: string) (t: Tensor) =
            if t.device_type <> DeviceType.CPU then Check.fail name $"{name}: expected a CPU tensor, but got one on {t.device}."
        cpu "theta" theta
        let G = projectionWidth cell
        Check.notNull "px" px
        Check.dims "px" "[T; B; G]" 3 px
        Check.nonEmptyTime "px" px
        Check.size "px" "[T; B; G]" 2 "G" (int64 G) px
        if px.shape[1] = 0L then Check.fail "px" $"px: expected at least one batch row (B >= 1), but got shape {Check.shapeText px}."
        Check.sameDtype "px" theta px
        cpu "px" px
        let T, B = int px.shape[0], int px.shape[1]
        Check.notNull "s0" s0
        Check.dims "s0" "[B; S]" 2 s0
        Check.size "s0" "[B; S]" 0 "B (the batch of px)" (int64 B) s0
        Check.size "s0" "[B; S]" 1 "S" (int64 cell.StateSize) s0
        Check.sameDtype "s0" theta s0
        cpu "s0" s0
        Check.notNull "weights" weights
        if weights.Length <> T then Check.fail "weights" $"weights: expected T = {T} boundary weights, but got {weights.Length}."
        match weights |> Array.tryFind (fun w -> not (Double.IsFinite w)) with
        | Some w -> Check.fail "weights" $"weights: expected finite boundary weights, but got {w}."
        | None -> ()
        let active =
            match mask with
            | None -> null
            | Some m ->
                Check.notNull "mask" m
                Check.dims "mask" "[T; B]" 2 m
                Check.size "mask" "[T; B]" 0 "T (the steps of px)" (int64 T) m
                Check.size "mask" "[T; B]" 1 "B (the batch of px)" (int64 B) m
                let values = (use _ = torch.no_grad () in use d = m.detach().cpu().to_type(torch.float64).contiguous() in d.data<float>().ToArray())
                match values |> Array.tryFind (fun v -> v <> 0.0 && v <> 1.0) with
                | Some v -> Check.fail "mask" $"mask: expected entries 0 (keep the state) or 1 (step), but got {v}."
                | None -> values |> Array.map (fun v -> v = 1.0)
        let H = cell.HiddenSize
        let offset name = (cell.Layout.Block name).Offset
        let plan =
            { Cell = kind
              T = T
              B = B
              H = H
              S = cell.StateSize
              G = G
              K =
                match kind with
                | EngineElman _ -> 0
                | EngineGruPyTorch | EngineGruLecture | EngineLstm -> 4 * H
                | EngineMrnn factors -> 2 * factors
              P = int64 cell.ParameterCount
              Recurrent = (match kind with EngineMrnn _ -> offset "W_fh" | _ -> offset "weight_hh")
              Second =
                match kind with
                | EngineGruPyTorch -> offset "bias_hh"
                | EngineMrnn _ -> offset "W_hf"
                | _ -> -1L
              Weights = Array.copy weights
              Active = active
              Double = (theta.dtype = torch.float64)
              Reuse = reuse
              Consumed = ref false
              Buffers = ResizeArray() }
        let outputs = torch.autograd.MultiTensorFunction<UnrollFunction>.apply([| box theta; box px; box s0; box plan |])
        outputs[0], outputs[1]

    /// Runs the cell's projected transition over px from s_0 as one differentiable operation:
    ///   â_t = w_t-scaled s_{t−1} (the value is s_{t−1}; the gradient through it is scaled by w_t),
    ///   s_t = m_t ⊙ f(px_t, â_t) + (1 − m_t) ⊙ â_t,     h_t = the first H entries of s_t,
    /// for px = InputProjection θ x of every step ([T; B; G]), s_0 [B; S], T boundary weights w_t
    /// (0 cuts the gradient into step t, 1 passes it, other values scale it, as CharModel.Forward's
    /// boundaryWeights) and an optional mask m [T; B] of 0/1 (a row with m_t = 0 keeps its state).
    /// Returns hs [T; B; H] and s_T [B; S]; gradients flow to θ [P], px and s_0 through autograd.
    /// float32 or float64 CPU tensors.
    /// Its backward pass may run any number of times (retain_graph); its gradients are not
    /// themselves differentiable (create_graph gives first derivatives only).
    [<CompiledName("Unroll")>]
    let unroll (cell: Cell) (theta: Tensor) (px: Tensor) (s0: Tensor) (weights: float[]) (mask: Tensor option) : Tensor * Tensor =
        run false cell theta px s0 weights mask

    /// Engine.unroll whose backward pass writes its gradients over the stored gates (LSTM: ∂L/∂px;
    /// GRU in PyTorch's form: ∂L/∂(U h + b_hh)), so that training holds one [T; B; 4H] buffer less.
    /// Its backward pass runs once per forward pass: a second one through the same graph
    /// (retain_graph) gives NaN gradients. For training loops with one backward pass per batch.
    [<CompiledName("UnrollOnce")>]
    let unrollOnce (cell: Cell) (theta: Tensor) (px: Tensor) (s0: Tensor) (weights: float[]) (mask: Tensor option) : Tensor * Tensor =
        run true cell theta px s0 weights mask
