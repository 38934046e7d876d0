/// Reverse-mode automatic differentiation through TorchSharp, made safe, and the autodiff
/// route to every BPTT quantity (the reference the hand-derived formulas are checked against).
/// Legend: T time, B batch, I input, S state, P parameters, R replicated rows.
namespace SeqNets

open System
open TorchSharp

[<RequireQualifiedAccess>]
module Autodiff =
    /// ∂(Σ_k ⟨g_k, outputs_k⟩)/∂inputs, safely: TorchSharp's autograd.grad aborts the process on
    /// an input the outputs do not depend on (allow_unused = false) and frees the graph even when
    /// create_graph asks for a differentiable result. Here an unused input gets a zero gradient,
    /// the graph is kept whenever createGraph is set (PyTorch's own default) or retainGraph asks,
    /// and outputs that do not require grad are an ArgumentException instead of a native error.
    /// gradOutputs g_k default to ones (so a scalar output gives its gradient).
    [<CompiledName("Grad")>]
    let gradWith (retainGraph: bool) (createGraph: bool) (outputs: Tensor list) (inputs: Tensor list) (gradOutputs: Tensor list option) : Tensor list =
        use _ = SignalShield.enter ()
        Native.ensure ()
        if outputs.IsEmpty then Check.fail "outputs" "outputs: expected at least one tensor, but got none."
        if inputs.IsEmpty then Check.fail "inputs" "inputs: expected at least one tensor, but got none."
        outputs |> List.iteri (fun k o ->
            Check.notNull $"outputs[{k}]" o
            if not o.requires_grad then
                Check.fail $"outputs[{k}]" $"outputs[{k}]: expected a tensor that depends on a tensor requiring grad, but got one with requires_grad = false (shape {Check.shapeText o}).")
        inputs |> List.iteri (fun k x ->
            Check.notNull $"inputs[{k}]" x
            if not x.requires_grad then
                Check.fail $"inputs[{k}]" $"inputs[{k}]: expected a tensor with requires_grad = true, but got one without (shape {Check.shapeText x}).")
        let gradOutputs =
            match gradOutputs with
            | Some gs ->
                if gs.Length <> outputs.Length then
                    Check.fail "gradOutputs" $"gradOutputs: expected {outputs.Length} tensors (one per output), but got {gs.Length}."
                List.iteri2 (fun k (g: Tensor) (o: Tensor) ->
                    if g.shape <> o.shape then
                        Check.fail $"gradOutputs[{k}]" $"gradOutputs[{k}]: expected shape {Check.shapeText o}, but got {Check.shapeText g}.") gs outputs
                gs
            | None -> outputs |> List.map torch.ones_like
        let grads =
            torch.autograd.grad(ResizeArray outputs, ResizeArray inputs, ResizeArray gradOutputs,
                                retain_graph = (retainGraph || createGraph), create_graph = createGraph, allow_unused = true)
        List.init inputs.Length (fun k ->
            let g = grads[k]
            if isNull g || g.IsInvalid then
                torch.zeros_like inputs[k]
            else g)

    /// ∂(Σ ⟨g, outputs⟩)/∂inputs keeping the graph, with no higher-order graph.
    let grad (outputs: Tensor list) (inputs: Tensor list) = gradWith true false outputs inputs None

    let private leaf (t: Tensor) = t.detach().clone().requires_grad_ true

    /// c_t and b_t of every step of a trajectory by autodiff: xs [T; B; I] and states
    /// [T+1; B; S] → (c [T; B; S; S], b [T; B; S; P]). With row parameters, one backward pass per
    /// chunk of steps: each row (t, b, i) carries its own copy of θ and of s_{t−1} and is
    /// differentiated at its own output component i (chunks keep the copies of θ under 2^23
    /// entries). Otherwise one pass per (t, b, i).
    let trajectoryJacobians (cell: Cell) (theta: Tensor) (xs: Tensor) (states: Tensor) : Tensor * Tensor =
        use _ = SignalShield.enter ()
        let T, B, I = xs.shape[0], xs.shape[1], xs.shape[2]
        let S, P = int64 cell.StateSize, int64 cell.ParameterCount
        let sPrev = states.narrow(0L, 0L, T).detach () // [T; B; S]
        if cell.RowParameters then
            // Rows (t, b, i) in chunks of whole steps, at most 2^23 entries of θ copies per chunk.
            let perStep = B * S
            let chunk = max 1L (min T ((1L <<< 23) / max 1L (perStep * P)))
            let cs = ResizeArray<Tensor>()
            let bs = ResizeArray<Tensor>()
            for t0 in 0L .. chunk .. T - 1L do
                let n = min chunk (T - t0)
                let R = n * perStep
                let x = xs.narrow(0L, t0, n).detach().unsqueeze(2L).expand(n, B, S, I).reshape(R, I) // [R; I]
                let s = leaf (sPrev.narrow(0L, t0, n).unsqueeze(2L).expand(n, B, S, S).reshape(R, S)) // [R; S]
                let thetaR = leaf (theta.detach().unsqueeze(0L).expand(R, P)) // [R; P]
                let next = cell.Transition thetaR x s // [R; S]
                let own = next.reshape(n * B, S, S).diagonal(0L, 1L, 2L) // [n·B; S]: row (t, b, i) at component i
                match gradWith false false [ own.sum () ] [ s; thetaR ] None with
                | [ gs; gtheta ] ->
                    cs.Add(gs.reshape(n, B, S, S))
                    bs.Add(gtheta.reshape(n, B, S, P))
                | _ -> failwith "unreachable"
            let cat (parts: ResizeArray<Tensor>) = if parts.Count = 1 then parts[0] else torch.cat(parts.ToArray(), 0L)
            cat cs, cat bs
        else
            let c = torch.zeros([| T; B; S; S |], dtype = theta.dtype)
            let b = torch.zeros([| T; B; S; P |], dtype = theta.dtype)
            for t in 0L .. T - 1L do
                let thetaLeaf = leaf theta
                let s = leaf sPrev[t] // [B; S]
                let next = cell.Transition thetaLeaf (xs[t].detach ()) s // [B; S]
                for row in 0L .. B - 1L do
                    for i in 0L .. S - 1L do
                        match grad [ next[row, i] ] [ s; thetaLeaf ] with
                        | [ gs; gtheta ] ->
                            c[t, row, i] <- gs[row]
                            b[t, row, i] <- gtheta
                        | _ -> failwith "unreachable"
            c, b

    /// a_t = ∂s_t/∂θ for t = 1..T through the whole unrolled graph by reverse mode:
    /// [T; B; S; P]. With row parameters, one unroll and one backward pass per chunk of steps:
    /// row (t, b, i) replays sequence b with its own copy of θ up to step t and is
    /// differentiated at s_t[i]. A chunk holds the steps t0..t1 and unrolls t1 steps; chunks
    /// keep the copies of θ under 2^23 entries and the rows × steps of the graph under 2^15, so
    /// memory no longer grows with the T·B·S copies of one pass (the result itself is
    /// T·B·S·P). Otherwise one backward pass per (t, b, i).
    let stateParameterJacobian (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor) : Tensor =
        use _ = SignalShield.enter ()
        let T, B, I = xs.shape[0], xs.shape[1], xs.shape[2]
        let S, P = int64 cell.StateSize, int64 cell.ParameterCount
        if cell.RowParameters then
            let perStep = B * S
            let parts = ResizeArray<Tensor>()
            let mutable t0 = 0L // 0-based step of the chunk's first row: rows read s_{t0+1} ..
            while t0 < T do
                // As many steps as the budgets allow (at least one).
                let mutable n = 1L
                while t0 + n < T && (n + 1L) * perStep * P <= (1L <<< 23) && (n + 1L) * perStep * (t0 + n + 1L) <= (1L <<< 15) do
                    n <- n + 1L
                let steps = t0 + n // the unroll's length
                let R = n * perStep
                use _ = torch.NewDisposeScope()
                let x = xs.narrow(0L, 0L, steps).detach().unsqueeze(1L).unsqueeze(3L).expand(steps, n, B, S, I).reshape(steps, R, I) // [steps; R; I]
                let s0R = s0.detach().unsqueeze(0L).unsqueeze(2L).expand(n, B, S, S).reshape(R, S) // [R; S]
                let thetaR = leaf (theta.detach().unsqueeze(0L).expand(R, P)) // [R; P]
                let states = Recurrence.unrollUnchecked cell thetaR x s0R // [steps+1; R; S]
                // Row r = (k, b, i) of the chunk is read at time t0 + k + 1, component i.
                let tIdx = torch.arange(n).view(n, 1L, 1L).expand(n, B, S).reshape(R) + (t0 + 1L)
                let iIdx = torch.arange(S).view(1L, 1L, S).expand(n, B, S).reshape(R)
                let flat = (tIdx * R + torch.arange(R)) * S + iIdx
                let picked = states.reshape(-1L).index_select(0L, flat) // [R]
                match gradWith false false [ picked.sum () ] [ thetaR ] None with
                | [ g ] -> parts.Add(g.reshape(n, B, S, P).MoveToOuterDisposeScope())
                | _ -> failwith "unreachable"
                t0 <- t0 + n
            if parts.Count = 1 then parts[0] else torch.cat(parts.ToArray(), 0L)
        else
            let thetaLeaf = leaf theta
            let states = Recurrence.unrollUnchecked cell thetaLeaf (xs.detach ()) (s0.detach ())
            let a = torch.zeros([| T; B; S; P |], dtype = theta.dtype)
            for t in 1L .. T do
                for row in 0L .. B - 1L do
                    for i in 0L .. S - 1L do
                        match grad [ states[t, row, i] ] [ thetaLeaf ] with
                        | [ g ] -> a[t - 1L, row, i] <- g
                        | _ -> failwith "unreachable"
            a

    /// seed · ∂s_t/∂θ at one step t (1-based) by reverse mode through the unroll of steps 1..t:
    /// seed [B; K; S] → [B; K; P]. With row parameters, one backward pass: row (b, k) replays
    /// sequence b with its own copy of θ and is differentiated at ⟨seed[b, k], s_t[b]⟩, so memory
    /// holds B·K copies of θ and t steps of B·K rows. Otherwise one backward pass per (b, k).
    let stateParameterJacobianAt (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor) (t: int) (seed: Tensor) : Tensor =
        use _ = SignalShield.enter ()
        let B, I = xs.shape[1], xs.shape[2]
        let S, P = int64 cell.StateSize, int64 cell.ParameterCount
        let K = seed.shape[1]
        let steps = int64 t
        let seed = seed.detach().to_type theta.dtype
        if cell.RowParameters then
            let R = B * K
            let x = xs.narrow(0L, 0L, steps).detach().unsqueeze(2L).expand(steps, B, K, I).reshape(steps, R, I) // [t; R; I]
            let s0R = s0.detach().unsqueeze(1L).expand(B, K, S).reshape(R, S) // [R; S]
            let thetaR = leaf (theta.detach().unsqueeze(0L).expand(R, P)) // [R; P]
            let states = Recurrence.unrollUnchecked cell thetaR x s0R // [t+1; R; S]
            let picked = (states[steps] * seed.reshape(R, S)).sum () // Σ_r ⟨seed_r, s_t^(r)⟩
            match gradWith false false [ picked ] [ thetaR ] None with
            | [ g ] -> g.reshape(B, K, P)
            | _ -> failwith "unreachable"
        else
            let thetaLeaf = leaf theta
            let states = Recurrence.unrollUnchecked cell thetaLeaf (xs.narrow(0L, 0L, steps).detach ()) (s0.detach ())
            let last = states[steps] // [B; S]
            let a = torch.zeros([| B; K; P |], dtype = theta.dtype)
            for row in 0L .. B - 1L do
                for k in 0L .. K - 1L do
                    match grad [ (last[row] * seed[row, k]).sum () ] [ thetaLeaf ] with
                    | [ g ] -> a[row, k] <- g
                    | _ -> failwith "unreachable"
            a

    /// Gradients of L = 1/T Σ_t ℓ(g(h_t), o_t) by reverse mode: (∂L/∂θ [P], ∂L/∂w_o [P_o], ∂L/∂s_0 [B; S]).
    let lossGradient (cell: Cell) (output: OutputLayer) (loss: Loss) (theta: Tensor) (wo: Tensor)
                     (xs: Tensor) (s0: Tensor) (targets: Tensor) : Tensor * Tensor * Tensor =
        use _ = SignalShield.enter ()
        let thetaLeaf, woLeaf, s0Leaf = leaf theta, leaf wo, leaf s0
        let states = Recurrence.unrollUnchecked cell thetaLeaf (xs.detach ()) s0Leaf
        let ys = OutputLayer.apply output woLeaf (Recurrence.outputs cell states)
        let L = Loss.sequence loss ys targets
        match gradWith false false [ L ] [ thetaLeaf; woLeaf; s0Leaf ] None with
        | [ gt; gw; gs ] -> gt, gw, gs
        | _ -> failwith "unreachable"
