/// Attention over a fixed memory (the encoder's states), and decoders with attention as cells.
///
/// The lecture's "softmax-weighted combination": scores e_i = score(q, m_i) of a query q against each
/// memory row m_i (padded rows get −∞, hence zero weight), α = softmax(e), the context ctx = Σ_i α_i m_i.
///   dot        e_i = qᵀ m_i                        (H = E)
///   general    e_i = qᵀ W_a m_i                     W_a [H; E]            (Luong et al. 2015)
///   additive   e_i = vᵀ tanh(W q + U m_i)           W [A; H], U [A; E], v [A] (Bahdanau et al. 2015)
///
/// A decoder with attention is a recurrence whose transition also reads the memory M [N; E]:
///   Bahdanau   ctx_t = attend(h_{t−1}),  s_t = f([x_t; ctx_t], s_{t−1})                 output h_t
///   Luong      s_t^in = f(u_t, s_{t−1}^in) with u_t = [x_t; h̃_{t−1}] (input feeding) or x_t,
///              ctx_t = attend(h_t),  h̃_t = tanh(W_c [ctx_t; h_t])                        output h̃_t
/// Its state is s = h (Bahdanau, the inner cell's state) or s = [h̃; s^in] (Luong). Its c_t and b_t are
/// hand-derived through the attention weights (docs/derivations.md, "Attention"), with
///   ∂ctx/∂e = Mᵀ (diag(α) − α αᵀ) =: Mᵀ J_α,
/// and so is ∂s_t/∂M, the memory's Jacobian, for backpropagating into the encoder in closed form.
/// Legend: B batch, N memory rows (source steps), E memory width, H query / hidden width, A additive
/// width, X input width, S state, P parameters.
namespace SeqNets

open System
open TorchSharp

/// How a query is scored against a memory row.
type Score =
    /// e_i = qᵀ m_i; the query and memory widths must agree.
    | Dot
    /// e_i = qᵀ W_a m_i (bilinear).
    | General
    /// e_i = vᵀ tanh(W q + U m_i), with A hidden units.
    | Additive of width: int

/// Where attention sits in the decoder's step.
type AttentionStyle =
    /// The context from the previous state, fed into the cell with the input.
    | Bahdanau
    /// The context from the new state, then h̃ = tanh(W_c [ctx; h]); with input feeding h̃_{t−1} joins the next input.
    | Luong of inputFeeding: bool

/// A decoder with attention, before it is bound to a memory: sizes, layout, the inner cell.
[<NoComparison; NoEquality>]
type AttentionDecoder =
    { Style: AttentionStyle
      Score: Score
      /// X: the width of the decoder's own input x_t (the embedded previous token).
      InputSize: int
      /// E: the width of a memory row.
      MemoryWidth: int
      /// The recurrent cell inside (its input is [x; ctx] for Bahdanau, [x; h̃] or x for Luong).
      Inner: Cell
      /// [inner θ (cell.*); attention (attention.*); combine (combine.W_c, Luong)].
      Layout: ParameterLayout }
    /// H: the query width, the inner cell's output.
    member d.QueryWidth = d.Inner.HiddenSize
    /// The decoder's state width: the inner state, plus h̃ for Luong.
    member d.StateSize = match d.Style with Bahdanau -> d.Inner.StateSize | Luong _ -> d.Inner.HiddenSize + d.Inner.StateSize
    /// The width of the decoder's output (h or h̃).
    member d.OutputSize = d.Inner.HiddenSize
    member d.ParameterCount = int d.Layout.Count

[<RequireQualifiedAccess>]
module Attention =
    let private neg = Double.NegativeInfinity

    /// The blocks of a score's parameters.
    let private scoreBlocks (score: Score) (H: int64) (E: int64) =
        match score with
        | Dot -> []
        | General -> [ "attention.W_a", [ H; E ] ]
        | Additive a -> [ "attention.W", [ int64 a; H ]; "attention.U", [ int64 a; E ]; "attention.v", [ int64 a ] ]

    /// A decoder with attention of the given style and score over memory rows of width E, with input
    /// width X; `make` builds the inner cell from its input width (X + E for Bahdanau, X + H with
    /// input feeding, X without).
    [<CompiledName("Decoder")>]
    let decoder (style: AttentionStyle) (score: Score) (inputSize: int) (memoryWidth: int) (make: int -> Cell) : AttentionDecoder =
        Native.ensure ()
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof memoryWidth) memoryWidth
        Check.notNull (nameof make) make
        match score with Additive a -> Check.positive "score" a | _ -> ()
        // The inner cell's input width needs H; build once to learn it, then again at the right width.
        let probe = make (inputSize + memoryWidth)
        let H = probe.HiddenSize
        let innerInput =
            match style with
            | Bahdanau -> inputSize + memoryWidth
            | Luong true -> inputSize + H
            | Luong false -> inputSize
        let inner = if innerInput = probe.InputSize then probe else make innerInput
        if inner.InputSize <> innerInput then
            Check.fail "make" $"make: expected a cell reading inputs of width {innerInput}, but '{inner.Name}' reads {inner.InputSize}."
        if score = Dot && H <> memoryWidth then
            Check.fail "score" $"score: dot attention compares the query with each memory row, so the decoder's hidden size {H} must equal the memory width {memoryWidth}; use General or Additive."
        let blocks =
            [ for b in inner.Layout.Blocks -> "cell." + b.Name, List.ofArray b.Shape
              yield! scoreBlocks score (int64 H) (int64 memoryWidth)
              match style with
              | Luong _ -> yield "combine.W_c", [ int64 H; int64 (memoryWidth + H) ]
              | Bahdanau -> () ]
        { Style = style; Score = score; InputSize = inputSize; MemoryWidth = memoryWidth; Inner = inner; Layout = ParameterLayout blocks }

    /// Fresh parameters: the inner cell's initialisation, then U(−1/√fan-in, 1/√fan-in) for the
    /// attention and combine blocks.
    [<CompiledName("InitParameters")>]
    let initParameters (d: AttentionDecoder) (dtype: torch.ScalarType) (generator: torch.Generator) : Tensor =
        let inner = Cell.initParameters d.Inner dtype generator
        let rest =
            [| for b in d.Layout.Blocks do
                   if not (b.Name.StartsWith "cell.") then
                       let fanIn = if b.Shape.Length = 2 then b.Shape[1] else b.Shape[0]
                       yield (torch.rand([| b.Count |], dtype = dtype, generator = generator) * 2.0 - 1.0) / sqrt (float fanIn) |]
        torch.cat(Array.append [| inner |] rest, 0L)

    /// Where the inner θ ends in the decoder's θ.
    let private innerCount (d: AttentionDecoder) = int64 d.Inner.ParameterCount

    /// The additive score's hidden activations z_i = tanh(W q + U m_i) [B; N; A] for U M precomputed [B; N; A].
    let private additiveZ (W: Tensor) (q: Tensor) (um: Tensor) = (um + (Tensors.linear W q).unsqueeze 1L).tanh ()

    /// The views of θ's attention and combine blocks, taken once: a view taken per step would add a
    /// scatter over the whole θ to the backward pass at every step.
    let private staged (d: AttentionDecoder) (theta: Tensor) : string -> Tensor =
        let views =
            dict [ for b in d.Layout.Blocks do
                       if not (b.Name.StartsWith "cell.") then b.Name, d.Layout.View(theta, b.Name) ]
        fun name -> views[name]

    /// Scores e [B; N] of queries q [B; H] against the memory, −∞ at padded rows; v gives θ's views.
    /// blocked: the padded memory rows (the mask's negation), computed once per memory.
    let private scores (d: AttentionDecoder) (v: string -> Tensor) (memory: Tensor) (um: Tensor option) (blocked: Tensor option) (q: Tensor) =
        let e =
            match d.Score with
            | Dot -> memory.matmulChecked(q.unsqueeze -1L).squeeze -1L // [B; N]
            | General -> memory.matmulChecked(Tensors.linear ((v "attention.W_a").t ()) q |> fun w -> w.unsqueeze -1L).squeeze -1L // M Wᵀ q
            | Additive _ -> (additiveZ (v "attention.W") q um.Value).matmulChecked(v "attention.v") // [B; N]
        match blocked with
        | Some m -> e.masked_fill(m, neg)
        | None -> e

    /// α = softmax(e) over the real memory rows: [B; N].
    let private softmaxOf (e: Tensor) = e.softmax -1L

    /// The per-batch precomputation of the additive score: U m_i for every row, [B; N; A].
    let private precompute (d: AttentionDecoder) (v: string -> Tensor) (memory: Tensor) =
        match d.Score with
        | Additive _ -> Some(memory.matmulChecked((v "attention.U").t ()))
        | _ -> None

    let internal checkMemory (d: AttentionDecoder) (memory: Tensor) (mask: Tensor option) =
        Check.notNull "memory" memory
        Check.floating "memory" memory
        Check.dims "memory" "[B; N; E]" 3 memory
        Check.size "memory" "[B; N; E]" 2 "E" (int64 d.MemoryWidth) memory
        if memory.shape[1] = 0L then Check.fail "memory" "memory: expected at least one memory row (a non-empty source), but got N = 0."
        match mask with
        | Some m ->
            if m.dtype <> torch.ScalarType.Bool then Check.fail "mask" $"mask: expected a bool [B; N] tensor, but got dtype {m.dtype}."
            if m.shape <> [| memory.shape[0]; memory.shape[1] |] then
                Check.fail "mask" $"mask: expected shape [{memory.shape[0]}; {memory.shape[1]}] to match the memory, but got {Check.shapeText m}."
            use _ = torch.no_grad ()
            use rows = m.any(1L).all()
            if not (rows.item<bool> ()) then Check.fail "mask" "mask: expected at least one real memory row in every batch row, but a row has none."
        | None -> ()

    /// The attention weights α [B; N] of queries q [B; H].
    [<CompiledName("Weights")>]
    let weights (d: AttentionDecoder) (theta: Tensor) (memory: Tensor) (mask: Tensor option) (q: Tensor) : Tensor =
        checkMemory d memory mask
        let v = staged d theta
        softmaxOf (scores d v memory (precompute d v memory) (mask |> Option.map _.logical_not()) q)

    /// The weights of queries against a memory that Attention.bind has checked, with θ's views and the
    /// additive score's U M taken once: for decoding loops, which ask for them at every step.
    let internal weightsFor (d: AttentionDecoder) (theta: Tensor) (memory: Tensor) (mask: Tensor option) : Tensor -> Tensor =
        let v = staged d theta
        let um = precompute d v memory
        let blocked = mask |> Option.map _.logical_not()
        fun q -> softmaxOf (scores d v memory um blocked q)

    /// The step and its Jacobians (c_t, b_t, ∂s_t/∂vec(M), ∂s_t/∂x_t) over one batch's memory.
    let private internals (d: AttentionDecoder) (memory: Tensor) (mask: Tensor option) =
        let blocked = mask |> Option.map _.logical_not()
        let H = int64 d.QueryWidth
        let X, E = int64 d.InputSize, int64 d.MemoryWidth
        let inner = d.Inner
        let Pin = innerCount d
        let thetaIn (theta: Tensor) = theta.narrow(-1L, 0L, Pin)

        /// Every intermediate of one step; step is the inner cell's transition and v θ's views, both
        /// staged once per θ.
        let forward (step: Tensor -> Tensor -> Tensor) (v: string -> Tensor) (um: Tensor option) (x: Tensor) (s: Tensor) =
            match d.Style with
            | Bahdanau ->
                let q = s.narrow(-1L, 0L, H) // h_{t−1}: [B; H]
                let alpha = softmaxOf (scores d v memory um blocked q) // [B; N]
                let ctx = alpha.unsqueeze(1L).matmulChecked(memory).squeeze 1L // [B; E]
                let u = torch.cat([| x; ctx |], -1L) // [B; X + E]
                let next = step u s // [B; S]
                q, alpha, ctx, u, s, next, next, None
            | Luong feeding ->
                let hTildePrev, sIn = s.narrow(-1L, 0L, H), s.narrow(-1L, H, int64 inner.StateSize)
                let u = if feeding then torch.cat([| x; hTildePrev |], -1L) else x // [B; X (+ H)]
                let sInNext = step u sIn // [B; S_in]
                let q = sInNext.narrow(-1L, 0L, H) // h_t
                let alpha = softmaxOf (scores d v memory um blocked q)
                let ctx = alpha.unsqueeze(1L).matmulChecked(memory).squeeze 1L // [B; E]
                let hTilde = Tensors.linear (v "combine.W_c") (torch.cat([| ctx; q |], -1L)) |> _.tanh() // [B; H]
                q, alpha, ctx, u, sIn, sInNext, torch.cat([| hTilde; sInNext |], -1L), Some hTilde

        /// The step that also returns the attention weights α_t [B; N] it used.
        let transitionWithWeights (theta: Tensor) =
            // Once per unroll: the inner cell's staged transition, θ's views, U M.
            let step = inner.Transition (thetaIn theta)
            let v = staged d theta
            let um = precompute d v memory
            fun (x: Tensor) (s: Tensor) ->
                let _, alpha, _, _, _, _, next, _ = forward step v um x s
                next, alpha

        let transition (theta: Tensor) =
            let step = transitionWithWeights theta
            fun (x: Tensor) (s: Tensor) -> fst (step x s)

        /// ∂e/∂q [B; N; H], ∂e/∂θ_att [B; N; P_att] (in the attention blocks' order), and ∂e_i/∂m_i [B; N; E].
        let scoreJacobians (v: string -> Tensor) (um: Tensor option) (q: Tensor) =
            let B, N = q.shape[0], memory.shape[1]
            match d.Score with
            | Dot -> memory, torch.zeros([| B; N; 0L |], dtype = q.dtype), q.unsqueeze(1L).expand(B, N, E)
            | General ->
                let Wa = v "attention.W_a" // [H; E]
                let deq = memory.matmulChecked(Wa.t ()) // ∂e_i/∂q = W_a m_i: [B; N; H]
                let deW = (q.unsqueeze(1L).unsqueeze(-1L) * memory.unsqueeze 2L).reshape(B, N, H * E) // q ⊗ m_i
                let dem = Tensors.linear (Wa.t ()) q |> fun w -> w.unsqueeze(1L).expand(B, N, E) // W_aᵀ q
                deq, deW, dem
            | Additive a ->
                let A = int64 a
                let W, U, vv = v "attention.W", v "attention.U", v "attention.v"
                let z = additiveZ W q um.Value // [B; N; A]
                let g = vv * (1.0 - z * z) // v ⊙ (1 − z_i²): [B; N; A]
                let deq = g.matmulChecked W // [B; N; H]
                let deW = (g.unsqueeze(-1L) * q.unsqueeze(1L).unsqueeze 2L).reshape(B, N, A * H) // g_i ⊗ q
                let deU = (g.unsqueeze(-1L) * memory.unsqueeze 2L).reshape(B, N, A * E) // g_i ⊗ m_i
                let dem = g.matmulChecked U // [B; N; E]
                deq, torch.cat([| deW; deU; z |], -1L), dem

        /// ∂ctx/∂q [B; E; H], ∂ctx/∂θ_att [B; E; P_att], ∂ctx/∂vec(M) [B; E; N·E], from α and the score's Jacobians.
        let contextJacobians (v: string -> Tensor) (um: Tensor option) (q: Tensor) (alpha: Tensor) =
            let B, N = q.shape[0], memory.shape[1]
            let deq, deTheta, dem = scoreJacobians v um q
            let Ja = torch.diag_embed alpha - alpha.unsqueeze(-1L) * alpha.unsqueeze 1L // diag(α) − α αᵀ: [B; N; N]
            let MJ = memory.transpose(1L, 2L).matmulChecked Ja // Mᵀ J_α: [B; E; N]
            let dq = MJ.matmulChecked deq // [B; E; H]
            let dth = MJ.matmulChecked deTheta // [B; E; P_att]
            // ∂ctx/∂m_i = α_i I_E + (Mᵀ J_α)[:, i] (∂e_i/∂m_i)ᵀ
            let eye = torch.eye(E, dtype = q.dtype)
            let direct = alpha.unsqueeze(1L).unsqueeze(-1L) * eye.unsqueeze(0L).unsqueeze 2L // [B; E; N; E]
            let through = MJ.unsqueeze(-1L) * dem.unsqueeze 1L // [B; E; N; E]
            dq, dth, (direct + through).reshape(B, E, N * E)

        let attentionCount = d.Layout.Blocks |> List.filter (fun b -> b.Name.StartsWith "attention.") |> List.sumBy (fun b -> b.Count)
        let P = int64 d.ParameterCount

        /// (c_t, b_t, ∂s_t/∂vec(M), ∂s_t/∂x_t) of one step.
        let all (theta: Tensor) (x: Tensor) (s: Tensor) =
            let v = staged d theta
            let um = precompute d v memory
            let q, alpha, ctx, u, sIn, _, _, hTilde = forward (inner.Transition (thetaIn theta)) v um x s
            let B = x.shape[0]
            let jIn = inner.Jacobians.Value (thetaIn theta) u sIn // c^in, b^in
            let eIn = inner.InputJacobian.Value (thetaIn theta) u sIn // ∂s^in/∂u: [B; S_in; |u|]
            let dq, dth, dM = contextJacobians v um q alpha
            let Sin = int64 inner.StateSize
            match d.Style with
            | Bahdanau ->
                let eCtx = eIn.narrow(2L, X, E) // ∂s/∂ctx: [B; S; E]
                let viaQ = eCtx.matmulChecked dq // ∂s/∂h_{t−1}: [B; S; H]
                let c = jIn.State + torch.nn.functional.pad(viaQ, [| 0L; Sin - H |]) // q is the first H entries of s_{t−1}
                let b = torch.cat([| jIn.Parameters; eCtx.matmulChecked dth |], 2L) // [B; S; P]
                c, b, eCtx.matmulChecked dM, eIn.narrow(2L, 0L, X) // ∂s/∂x: [B; S; X]
            | Luong feeding ->
                let Wc = v "combine.W_c" // [H; E + H]
                let D = 1.0 - hTilde.Value * hTilde.Value // [B; H]
                let DWcE = D.unsqueeze(-1L) * Wc.narrow(1L, 0L, E).unsqueeze 0L // [B; H; E]
                let DWcH = D.unsqueeze(-1L) * Wc.narrow(1L, E, H).unsqueeze 0L // [B; H; H]
                let G = DWcE.matmulChecked dq + DWcH // ∂h̃_t/∂h_t: [B; H; H]
                // ∂s^in_t/∂s_{t−1} over s_{t−1} = [h̃_{t−1}; s^in_{t−1}]
                let viaFeed = if feeding then eIn.narrow(2L, X, H) else torch.zeros([| B; Sin; H |], dtype = x.dtype)
                let A = torch.cat([| viaFeed; jIn.State |], 2L) // [B; S_in; H + S_in]
                let c = torch.cat([| G.matmulChecked (A.narrow(1L, 0L, H)); A |], 1L) // [B; H + S_in; H + S_in]
                let bIn = jIn.Parameters // [B; S_in; P_in]
                let dhTildeIn = G.matmulChecked (bIn.narrow(1L, 0L, H)) // [B; H; P_in]
                let dhTildeAtt = DWcE.matmulChecked dth // [B; H; P_att]
                let dhTildeWc = Tensors.wrtWeight (torch.diag_embed D) (torch.cat([| ctx; q |], -1L)) // D ⊗ [ctx; h]: [B; H; H(E+H)]
                let bTop = torch.cat([| dhTildeIn; dhTildeAtt; dhTildeWc |], 2L) // [B; H; P]
                let bBottom = torch.cat([| bIn; torch.zeros([| B; Sin; P - Pin |], dtype = x.dtype) |], 2L)
                let mTop = DWcE.matmulChecked dM // [B; H; N·E]
                let N = memory.shape[1]
                let ex = eIn.narrow(2L, 0L, X) // ∂s^in_t/∂x_t: [B; S_in; X]
                c, torch.cat([| bTop; bBottom |], 1L), torch.cat([| mTop; torch.zeros([| B; Sin; N * E |], dtype = x.dtype) |], 1L),
                torch.cat([| G.matmulChecked (ex.narrow(1L, 0L, H)); ex |], 1L) // ∂s_t/∂x_t: [B; H + S_in; X]

        ignore attentionCount
        transition, all, transitionWithWeights

    /// The decoder bound to one batch's memory M [B; N; E] (and its mask [B; N], true for real rows):
    /// a Cell over inputs x_t [B; X], with hand-derived c_t and b_t through the attention weights.
    [<CompiledName("Bind")>]
    let bind (d: AttentionDecoder) (memory: Tensor) (mask: Tensor option) : Cell =
        checkMemory d memory mask
        // The cell's functions are per row: steps stacked as rows (t, b) — as Bptt evaluates Jacobians
        // of many steps in one call — read memory row b, so a multiple of B rows sees the memory tiled.
        let B0 = memory.shape[0]
        let transition0, all0, _ = internals d memory mask
        let rows (R: int64) =
            if R = B0 then transition0, all0
            elif R > 0L && R % B0 = 0L then
                let t, a, _ = internals d (memory.repeat(R / B0, 1L, 1L)) (mask |> Option.map (fun m -> m.repeat(R / B0, 1L)))
                t, a
            else Check.fail "x" $"x: expected B = {B0} rows (the bound memory's batch) or a multiple of them (steps stacked as rows), but got {R}."
        let transition (theta: Tensor) =
            let step0 = transition0 theta
            fun (x: Tensor) (s: Tensor) -> if x.shape[0] = B0 then step0 x s else (fst (rows x.shape[0])) theta x s
        let all (theta: Tensor) (x: Tensor) (s: Tensor) = (snd (rows x.shape[0])) theta x s
        let inner = d.Inner
        let hasJacobians = inner.Jacobians.IsSome && inner.InputJacobian.IsSome
        let style = match d.Style with Bahdanau -> "bahdanau" | Luong true -> "luong-feeding" | Luong false -> "luong"
        let score = match d.Score with Dot -> "dot" | General -> "general" | Additive _ -> "additive"
        { Name = $"attention-{style}-{score}({inner.Name})"
          InputSize = d.InputSize
          HiddenSize = d.OutputSize
          StateSize = d.StateSize
          Layout = d.Layout
          Transition = transition
          InputProjection = None
          ProjectedTransition = None
          Jacobians = (if hasJacobians then Some(fun theta x s -> let c, b, _, _ = all theta x s in { State = c; Parameters = b }) else None)
          InputJacobian = (if hasJacobians then Some(fun theta x s -> let _, _, _, e = all theta x s in e) else None)
          StructuredJacobians = None
          RowParameters = false
          InitScale = inner.InitScale
          Components = []
          Equations = $"{d.Style} attention ({d.Score}) over {inner.Name}: {inner.Equations}" }

    /// A decoding step over a memory that Attention.bind has checked: (s_t, α_t) from x_t and s_{t−1},
    /// α_t the weights the step itself used (the transition of the bound cell, which returns s_t only).
    let internal decodingStep (d: AttentionDecoder) (memory: Tensor) (mask: Tensor option) (theta: Tensor) : Tensor -> Tensor -> Tensor * Tensor =
        let _, _, withWeights = internals d memory mask
        withWeights theta

    /// ∂s_t/∂vec(M) [B; S; N·E] of one step of a bound decoder (the memory's b_t), for the closed form
    /// of ∂L/∂M that backpropagates into the encoder.
    [<CompiledName("MemoryJacobian")>]
    let memoryJacobian (d: AttentionDecoder) (memory: Tensor) (mask: Tensor option) (theta: Tensor) (x: Tensor) (s: Tensor) : Tensor =
        checkMemory d memory mask
        if d.Inner.Jacobians.IsNone || d.Inner.InputJacobian.IsNone then
            Check.fail "d" $"d: the memory's Jacobian needs the inner cell's hand-derived Jacobians and input Jacobian, but '{d.Inner.Name}' lacks them."
        let _, all, _ = internals d memory mask
        let _, _, m, _ = all theta x s
        m
