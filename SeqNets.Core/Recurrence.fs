/// The one unroll every cell, training strategy and architecture uses, the output map
/// y_t = g(h_t), and the sequence loss L = 1/T Σ_t ℓ(y_t, o_t).
/// Legend: T time, B batch, I input, H hidden, S state, O output.
namespace SeqNets

open System
open TorchSharp

/// Where the recurrence starts: h_0 (the lecture's initial state).
[<NoComparison; NoEquality>]
type InitialState =
    /// s_0 = 0.
    | Zeros
    /// s_0 given per row ([B; S]) or shared by every row ([S]).
    | Given of Tensor
    /// s_0 a learned parameter ([S], requires grad), shared by every row.
    | Learned of Tensor

[<RequireQualifiedAccess>]
module InitialState =
    /// s_0 as a [B; S] tensor for a batch of the given size and the dtype of θ.
    [<CompiledName("Resolve")>]
    let resolve (cell: Cell) (dtype: torch.ScalarType) (batch: int64) (init: InitialState) : Tensor =
        let S = int64 cell.StateSize
        match init with
        | Zeros -> torch.zeros([| batch; S |], dtype = dtype)
        | Given s
        | Learned s ->
            Check.notNull "initialState" s
            Check.floating "initialState" s
            if s.dtype <> dtype then
                Check.fail "initialState" $"initialState: expected dtype {dtype} to match the parameters, but got {s.dtype}."
            match int (s.dim ()) with
            | 1 ->
                Check.size "initialState" "[S]" 0 "S" S s
                s.unsqueeze(0L).expand(batch, S)
            | 2 ->
                Check.size "initialState" "[B; S]" 1 "S" S s
                Check.size "initialState" "[B; S]" 0 "B" batch s
                s
            | _ -> Check.fail "initialState" $"initialState: expected a [S] or [B; S] tensor, but got shape {Check.shapeText s}."

[<RequireQualifiedAccess>]
module Recurrence =
    let internal checkSequence (cell: Cell) (theta: Tensor) (xs: Tensor) =
        Check.notNull "xs" xs
        Check.dims "xs" "[T; B; I]" 3 xs
        Check.nonEmptyTime "xs" xs
        Check.size "xs" "[T; B; I]" 2 "I" (int64 cell.InputSize) xs
        if xs.shape[1] = 0L then Check.fail "xs" $"xs: expected at least one batch row (B >= 1), but got shape {Check.shapeText xs}."
        Check.sameDtype "xs" theta xs
        Check.finite "xs" xs

    /// s_{t−1} as step t sees it under a boundary weight w_t: 1 passes the gradient through the
    /// state, 0 cuts it (truncation), other values scale it (randomized truncation). The value is
    /// s_{t−1} in every case.
    let internal scaleGradient (w: float) (s: Tensor) =
        if w = 1.0 then s
        elif w = 0.0 then s.detach ()
        else let d = s.detach () in d + (s - d) * w

    /// The one loop over time. From s_0 [B; S], steps the cell over T inputs — raw x_t [B; I], or,
    /// when projected, the cell's input projections px_t [B; G] through its ProjectedTransition —
    /// and returns s_1 … s_T. weights (T of them, see scaleGradient) act on the state entering each
    /// step; mask ([T; B], 1 for a real step, 0 for padding) carries a row's state unchanged through
    /// its padded steps, so that each row ends in the state of its own last element.
    let internal run (cell: Cell) (theta: Tensor) (projected: bool) (inputs: Tensor) (s0: Tensor)
                     (weights: float[] option) (mask: Tensor option) : Tensor[] =
        let T = int inputs.shape[0]
        let step =
            if projected then cell.ProjectedTransition.Value theta // views of θ once for the whole unroll
            else cell.Transition theta
        let xs = inputs.unbind 0L // T × [B; ·]; one backward for all
        let keep = mask |> Option.map (fun m -> (m.gt (0.0.ToScalar())).unsqueeze(-1L).unbind 0L) // T × [B; 1] bool
        let states = Array.zeroCreate T
        let mutable s = s0
        for t in 0 .. T - 1 do
            let sIn = match weights with Some w -> scaleGradient w[t] s | None -> s
            let next = step xs[t] sIn // [B; S]
            s <- match keep with Some k -> torch.where(k[t], next, sIn) | None -> next
            states[t] <- s
        states

    /// The unroll without argument checks, for callers that have checked (or that pass θ as
    /// [R; P], one copy per row). Returns every state, s_0 first: [T+1; B; S].
    let internal unrollUnchecked (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor) : Tensor =
        torch.stack(Array.append [| s0 |] (run cell theta false xs s0 None None), 0L) // [T+1; B; S]

    /// Runs s_t = f(x_t, s_{t−1}) over xs [T; B; I] from s_0 [B; S] (or [S]) and returns every
    /// state, s_0 first: [T+1; B; S].
    [<CompiledName("Unroll")>]
    let unroll (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor) : Tensor =
        use _ = SignalShield.enter ()
        Cell.checkTheta cell "theta" theta
        Check.finite "theta" theta
        checkSequence cell theta xs
        let s0 = InitialState.resolve cell theta.dtype xs.shape[1] (Given s0)
        Check.finite "s0" s0
        unrollUnchecked cell theta xs s0

    /// The outputs h_1 … h_T of an unroll's states: [T+1; B; S] → [T; B; H].
    [<CompiledName("Outputs")>]
    let outputs (cell: Cell) (states: Tensor) : Tensor =
        Cell.output cell (states.narrow(0L, 1L, states.shape[0] - 1L))

    /// The lecture's Enc → g → Dec formulation: h(t) = Enc(x(t)), z(t) = g(h(t), z(t−1), w),
    /// y(t) = Dec(z(t)); encode maps [B; I'] → [B; I] rows and decode maps [T; B; H] outputs.
    /// Returns y [T; B; …] and the states z [T+1; B; S].
    [<CompiledName("EncodeRecurDecode")>]
    let encodeRecurDecode (encode: Tensor -> Tensor) (cell: Cell) (decode: Tensor -> Tensor)
                          (w: Tensor) (xs: Tensor) (z0: Tensor) : Tensor * Tensor =
        Check.notNull "xs" xs
        Check.dims "xs" "[T; B; I]" 3 xs
        Check.nonEmptyTime "xs" xs
        let hs = torch.stack([| for t in 0L .. xs.shape[0] - 1L -> encode xs[t] |], 0L) // [T; B; I]
        let zs = unroll cell w hs z0 // [T+1; B; S]
        decode (outputs cell zs), zs

/// y_t = g(h_t) = V h_t + c: the output layer, with its own flat parameters w_o = [V [O; H]; c [O]].
[<NoComparison; NoEquality>]
type OutputLayer =
    { HiddenSize: int
      OutputSize: int
      Layout: ParameterLayout }
    /// Number of parameters O · H + O, in 64 bits.
    member o.ParameterCount = o.Layout.Count

[<RequireQualifiedAccess>]
module OutputLayer =
    /// A linear output layer from H hidden units to O outputs.
    [<CompiledName("Create")>]
    let create (hiddenSize: int) (outputSize: int) =
        Check.positive (nameof hiddenSize) hiddenSize
        Check.positive (nameof outputSize) outputSize
        { HiddenSize = hiddenSize
          OutputSize = outputSize
          Layout = ParameterLayout [ "weight", [ int64 outputSize; int64 hiddenSize ]; "bias", [ int64 outputSize ] ] }

    /// y = V h + c for h [..; H]: [..; O].
    [<CompiledName("Apply")>]
    let apply (layer: OutputLayer) (wo: Tensor) (h: Tensor) : Tensor =
        let V, c = layer.Layout.View(wo, "weight"), layer.Layout.View(wo, "bias")
        h.matmulChecked (V.t ()) + c

    /// Fresh output parameters from U(−1/√H, 1/√H) (PyTorch's nn.Linear default).
    [<CompiledName("InitParameters")>]
    let initParameters (layer: OutputLayer) (dtype: torch.ScalarType) (generator: torch.Generator) =
        Native.ensure ()
        let u = torch.rand([| int64 layer.ParameterCount |], dtype = dtype, generator = generator)
        (u * 2.0 - 1.0) / sqrt (float layer.HiddenSize)

/// The per-step loss ℓ(y_t, o_t), averaged over the batch.
type Loss =
    /// Softmax cross-entropy; targets o_t are class indices ([T; B], int64).
    | CrossEntropy
    /// Mean squared error over the batch and the O outputs; targets are [T; B; O].
    | MeanSquared

[<RequireQualifiedAccess>]
module Loss =
    let internal checkTargets (loss: Loss) (ys: Tensor) (targets: Tensor) =
        Check.notNull "targets" targets
        match loss with
        | CrossEntropy ->
            if targets.dtype <> torch.int64 then
                Check.fail "targets" $"targets: expected int64 class indices for cross-entropy, but got dtype {targets.dtype}."
            Check.dims "targets" "[T; B]" 2 targets
            if targets.shape[0] <> ys.shape[0] || targets.shape[1] <> ys.shape[1] then
                Check.fail "targets" $"targets: expected shape [{ys.shape[0]}; {ys.shape[1]}] to match the outputs, but got {Check.shapeText targets}."
            let lo, hi =
                use _ = torch.no_grad ()
                (use m = targets.min() in m.item<int64> ()), (use m = targets.max() in m.item<int64> ())
            if lo < 0L || hi >= ys.shape[2] then
                Check.fail "targets" $"targets: expected class indices in [0, {ys.shape[2] - 1L}], but found values in [{lo}, {hi}]."
        | MeanSquared ->
            Check.sameDtype "targets" ys targets
            if targets.shape <> ys.shape then
                Check.fail "targets" $"targets: expected shape {Check.shapeText ys} to match the outputs, but got {Check.shapeText targets}."
            Check.finite "targets" targets

    /// ℓ_t for every step: ys [T; B; O] and targets → [T].
    [<CompiledName("PerStep")>]
    let perStep (loss: Loss) (ys: Tensor) (targets: Tensor) : Tensor =
        match loss with
        | CrossEntropy ->
            let logp = ys.log_softmax -1L // [T; B; O]
            -(logp.gather(2L, targets.unsqueeze -1L).squeeze(-1L).mean([| 1L |])) // [T]
        | MeanSquared -> (ys - targets).square().mean([| 1L; 2L |]) // [T]

    /// L = 1/T Σ_t ℓ(y_t, o_t): a scalar.
    [<CompiledName("Sequence")>]
    let sequence (loss: Loss) (ys: Tensor) (targets: Tensor) : Tensor =
        checkTargets loss ys targets
        (perStep loss ys targets).mean()

    /// ∂ℓ_t/∂y_t in closed form for every step: [T; B; O]. Cross-entropy: (softmax(y) − onehot(o))/B;
    /// mean squared: 2(y − o)/(B·O).
    [<CompiledName("OutputGradient")>]
    let outputGradient (loss: Loss) (ys: Tensor) (targets: Tensor) : Tensor =
        let B = float ys.shape[1]
        match loss with
        | CrossEntropy ->
            let p = ys.softmax -1L
            let onehot = torch.zeros_like(p).scatter(2L, targets.unsqueeze -1L, torch.ones_like(p))
            (p - onehot) / B
        | MeanSquared -> (ys - targets) * (2.0 / (B * float ys.shape[2]))
