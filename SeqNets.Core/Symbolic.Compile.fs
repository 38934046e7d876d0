/// Evaluation of a cell's equations and of its derived Jacobians as batched TorchSharp operations
/// over [N; …] rows (no per-row loops), compiled once per cell:
///   - the transition s_t = f(θ, x_t, s_{t−1}), split where the equations allow it into an input
///     projection px = (every input-only term, for all steps at once) and a projected step;
///   - c_t [N; S; S] and b_t, dense [N; S; P] or structured (Jacobian J [N; S; R] per use of a
///     block, with the vectors it is an outer product with).
/// Equal subexpressions are evaluated once; products of rows of one block with one vector
/// (W_i x, W_f x, …) become one matrix product over the rows they cover.
/// Legend: N rows (batch, or time × batch), I input, S state, R rows of a block, P parameters.
namespace SeqNets

open System
open System.Collections.Generic
open TorchSharp

/// The value of a node for every row: a scalar or a [N; n] (or broadcast [n]) tensor.
type internal Val =
    | ScalarV of float
    | VectorV of Tensor

/// The value of an operator for every row.
type internal OpVal =
    | ZeroV
    /// c · I.
    | ScaleV of float
    /// diag(d): d [N; n], [n] or a scalar tensor.
    | DiagV of Tensor
    /// A matrix: [m; n] (the same for every row) or [N; m; n].
    | MatrixV of Tensor

[<RequireQualifiedAccess>]
module internal Compile =
    let children (kind: NodeKind) =
        match kind with
        | NMatVec(_, v) -> [ v ]
        | NBilinear(_, x, z) -> [ x; z ]
        | NSum ts -> List.map snd ts
        | NMul(a, b) -> [ a; b ]
        | NApply(_, a) | NDeriv(_, a) | NSlice(a, _, _) -> [ a ]
        | NConcat xs -> xs
        | NInput | NPrevious _ | NParameter _ | NConstant _ | NProjected _ -> []

    /// The nodes the roots need, in id (topological) order.
    let needed (g: Graph) (roots: int seq) : int[] =
        let mark = HashSet<int>()
        let rec visit id =
            if mark.Add id then
                for c in children (g.Kind id) do visit c
                match g.Kind id with
                | NDeriv((Nonlinearity.Sigmoid | Nonlinearity.Tanh) as f, a) -> g.Find(NApply(f, a)) |> Option.iter visit // reuse σ(a)
                | _ -> ()
        for r in roots do visit r
        mark |> Seq.sort |> Array.ofSeq

    // ---- values ----

    let tensor (v: Val) = match v with VectorV t -> t | ScalarV c -> failwith $"internal: a scalar ({c}) where a vector is needed"

    let add (a: Val) (b: Val) =
        match a, b with
        | ScalarV x, ScalarV y -> ScalarV(x + y)
        | VectorV t, ScalarV y | ScalarV y, VectorV t -> VectorV(t + y)
        | VectorV s, VectorV t -> VectorV(s + t)

    let scaleVal (c: float) (a: Val) =
        match a with
        | ScalarV x -> ScalarV(c * x)
        | VectorV t when c = -1.0 -> VectorV(t.neg ())
        | VectorV t -> VectorV(t * c)

    let mulVal (a: Val) (b: Val) =
        match a, b with
        | ScalarV x, ScalarV y -> ScalarV(x * y)
        | VectorV t, ScalarV y | ScalarV y, VectorV t -> VectorV(t * y)
        | VectorV s, VectorV t -> VectorV(s * t)

    /// Σ c_k v_k in as few calls as the signs allow.
    let sumVal (terms: (float * Val) list) =
        match terms with
        | [] -> ScalarV 0.0
        | (c, v) :: rest ->
            rest
            |> List.fold (fun acc (c, v) ->
                match acc, v with
                | VectorV a, VectorV b when c = 1.0 -> VectorV(a + b)
                | VectorV a, VectorV b when c = -1.0 -> VectorV(a - b)
                | _ -> add acc (scaleVal c v)) (scaleVal c v)

    let sigmoid (c: float) = 1.0 / (1.0 + exp (-c))

    let apply (f: Nonlinearity) (a: Val) =
        match f, a with
        | Nonlinearity.Identity, _ -> a
        | Nonlinearity.Sigmoid, VectorV t -> VectorV(t.sigmoid ())
        | Nonlinearity.Tanh, VectorV t -> VectorV(t.tanh ())
        | Nonlinearity.Relu, VectorV t -> VectorV(t.relu ())
        | Nonlinearity.Function g, VectorV t -> VectorV(g.Forward t)
        | Nonlinearity.Sigmoid, ScalarV c -> ScalarV(sigmoid c)
        | Nonlinearity.Tanh, ScalarV c -> ScalarV(tanh c)
        | Nonlinearity.Relu, ScalarV c -> ScalarV(max c 0.0)
        | Nonlinearity.Function g, ScalarV c -> ScalarV((use t = torch.tensor(c, dtype = torch.float64) in use r = g.Forward t in r.item<float> ()))

    /// φ'(a), from y = φ(a) where that is cheaper (σ' = y (1 − y), tanh' = 1 − y²); ReLU'(0) = 0.
    let derivative (f: Nonlinearity) (a: Val) (y: Val option) =
        let y () = match y with Some y -> y | None -> apply f a
        match f with
        | Nonlinearity.Identity -> ScalarV 1.0
        | Nonlinearity.Sigmoid ->
            match y () with
            | VectorV t -> VectorV(t * (1.0 - t))
            | ScalarV c -> ScalarV(c * (1.0 - c))
        | Nonlinearity.Tanh ->
            match y () with
            | VectorV t -> VectorV(1.0 - t * t)
            | ScalarV c -> ScalarV(1.0 - c * c)
        | Nonlinearity.Relu ->
            match a with
            | VectorV t -> VectorV((t.gt (0.0.ToScalar())).to_type t.dtype)
            | ScalarV c -> ScalarV(if c > 0.0 then 1.0 else 0.0)
        | Nonlinearity.Function g ->
            match g.Derivative, a with
            | Some d, VectorV t -> VectorV(d t)
            | Some d, ScalarV c -> ScalarV((use t = torch.tensor(c, dtype = torch.float64) in use r = d t in r.item<float> ()))
            | None, _ -> failwith "internal: a function without a derivative reached the evaluation of a derivative"

    // ---- parameter views ----

    /// The view of θ ([P] or [N; P]) a reference names: the block, or its rows.
    let view (layout: ParameterLayout) (theta: Tensor) (r: BlockRef) : Tensor =
        let t = layout.View(theta, r.Block)
        match r.Rows with
        | None -> t
        | Some(start, count) ->
            let axis = t.dim () - int64 (layout.Block r.Block).Shape.Length
            t.narrow(axis, int64 start, int64 count)

    /// U(z) x for a three-way block U ([m; n; d] or [N; m; n; d]).
    let bilinear (U: Tensor) (x: Tensor) (z: Tensor) =
        if U.dim () = 3L then torch.einsum("ijk,...j,...k->...i", U, x, z)
        else
            let N = U.shape[0]
            let x = if x.dim () = 1L then x.expand(N, -1L) else x
            let z = if z.dim () = 1L then z.expand(N, -1L) else z
            torch.einsum("bijk,bj,bk->bi", U, x, z)

    /// A forward program: the values of the needed nodes, with θ bound once (views taken once).
    type Program = { Bind: Tensor -> (Tensor -> Tensor -> Tensor -> Val[]) }

    /// Compiles the evaluation of the nodes the roots need. The step function takes x [N; I] (or
    /// [..; I] for input-only roots), s_{t−1} [N; S] and px [N; G] (step graphs); unused ones may be null.
    let program (g: Graph) (layout: ParameterLayout) (roots: int seq) : Program =
        let order = needed g roots
        let parts = g.Parts
        // Products of rows of one block with one vector, grouped into contiguous runs.
        let groups = ResizeArray<BlockRef>() // the covering rows of each group
        let member' = Dictionary<int, int * int * int>() // node → group, offset in group, count
        let matvecs =
            order
            |> Array.choose (fun id -> match g.Kind id with NMatVec(r, v) -> Some(id, r, v) | _ -> None)
            |> Array.groupBy (fun (_, r, v) -> r.Block, v)
        for (block, _), uses in matvecs do
            let rows = int (layout.Block block).Shape[0]
            let range (r: BlockRef) = match r.Rows with Some(s, c) -> s, s + c | None -> 0, rows
            // Runs of overlapping or adjacent row ranges, in row order.
            let runs =
                uses
                |> Array.sortBy (fun (_, r, _) -> fst (range r))
                |> Array.fold (fun (runs: (int * int * (int * BlockRef) list) list) (id, r, _) ->
                    let s, e = range r
                    match runs with
                    | (lo, hi, members) :: rest when s <= hi -> (lo, max hi e, (id, r) :: members) :: rest
                    | _ -> (s, e, [ id, r ]) :: runs) []
                |> List.rev
            for lo, hi, members in runs do
                let gi = groups.Count
                groups.Add { Block = block; Rows = (if lo = 0 && hi = rows then None else Some(lo, hi - lo)); Symbol = block }
                for id, r in members do
                    let s, e = range r
                    member'[id] <- (gi, s - lo, e - s)
        let bind (theta: Tensor) =
            let views = Dictionary<BlockRef, Tensor>()
            let viewOf r =
                match views.TryGetValue r with
                | true, v -> v
                | _ ->
                    let v = view layout theta r
                    views[r] <- v
                    v
            let groupViews = groups |> Seq.map viewOf |> Array.ofSeq
            // Views of the parameter vectors and three-way blocks, once per θ.
            for id in order do
                match g.Kind id with
                | NParameter r | NBilinear(r, _, _) -> viewOf r |> ignore
                | _ -> ()
            let steps: (Val[] -> Tensor -> Tensor -> Tensor -> Tensor[] -> Val)[] =
                order |> Array.map (fun id ->
                    match g.Kind id with
                    | NInput -> fun _ x _ _ _ -> VectorV x
                    | NPrevious p ->
                        let _, offset, n = parts |> List.find (fun (name, _, _) -> name = p)
                        if parts.Length = 1 then fun _ _ s _ _ -> VectorV s
                        else fun _ _ s _ _ -> VectorV(s.narrow(-1L, int64 offset, int64 n))
                    | NProjected(offset, n) -> fun _ _ _ px _ -> VectorV(if int64 n = px.shape[int (px.dim ()) - 1] then px else px.narrow(-1L, int64 offset, int64 n))
                    | NParameter r -> let v = viewOf r in fun _ _ _ _ _ -> VectorV v
                    | NConstant c -> fun _ _ _ _ _ -> ScalarV c
                    | NMatVec(_, v) ->
                        let gi, offset, count = member'[id]
                        let W = groupViews[gi]
                        let whole = W.shape[int (W.dim ()) - 2] = int64 count
                        fun vals _ _ _ cache ->
                            if isNull cache[gi] then cache[gi] <- Tensors.linear W (tensor vals[v])
                            VectorV(if whole then cache[gi] else cache[gi].narrow(-1L, int64 offset, int64 count))
                    | NBilinear(r, x, z) ->
                        let U = viewOf r
                        fun vals _ _ _ _ -> VectorV(bilinear U (tensor vals[x]) (tensor vals[z]))
                    | NSum ts -> fun vals _ _ _ _ -> sumVal (ts |> List.map (fun (c, t) -> c, vals[t]))
                    | NMul(a, b) -> fun vals _ _ _ _ -> mulVal vals[a] vals[b]
                    | NApply(f, a) -> fun vals _ _ _ _ -> apply f vals[a]
                    | NDeriv(f, a) ->
                        match (match f with Nonlinearity.Sigmoid | Nonlinearity.Tanh -> g.Find(NApply(f, a)) | _ -> None) with
                        | Some y -> fun vals _ _ _ _ -> derivative f vals[a] (Some vals[y])
                        | None -> fun vals _ _ _ _ -> derivative f vals[a] None
                    | NConcat xs -> fun vals _ _ _ _ -> VectorV(torch.cat([| for x in xs -> tensor vals[x] |], -1L))
                    | NSlice(a, start, count) -> fun vals _ _ _ _ -> VectorV((tensor vals[a]).narrow(-1L, int64 start, int64 count)))
            fun (x: Tensor) (s: Tensor) (px: Tensor) ->
                let vals = Array.zeroCreate g.Count
                let cache = Array.zeroCreate groups.Count
                for k in 0 .. order.Length - 1 do
                    vals[order[k]] <- steps[k] vals x s px cache
                vals
        { Bind = bind }

    /// A node's value as a [N; n] tensor (broadcast parameters and scalars expanded).
    let rows (N: int64) (n: int64) (dtype: torch.ScalarType) (v: Val) : Tensor =
        match v with
        | ScalarV c -> torch.full([| N; n |], c.ToScalar(), dtype = dtype)
        | VectorV t when t.dim () = 1L -> t.expand(N, n)
        | VectorV t -> t

    // ---- the transition ----

    /// s_t = [update of part 1; …] from the node values.
    let assemble (g: Graph) (vals: Val[]) (updates: int[]) (N: int64) (dtype: torch.ScalarType) =
        let parts = g.Parts |> Array.ofList
        let pieces = updates |> Array.mapi (fun k u -> let _, _, n = parts[k] in rows N (int64 n) dtype vals[u])
        if pieces.Length = 1 then pieces[0] else torch.cat(pieces, -1L) // [N; S]

    /// The plain transition θ → x → s → s_t.
    let transition (g: Graph) (layout: ParameterLayout) : Tensor -> Tensor -> Tensor -> Tensor =
        let prog = program g layout g.Updates
        fun theta ->
            let run = prog.Bind theta
            fun x s -> assemble g (run x s null) g.Updates x.shape[0] theta.dtype

    /// The input projection and projected step, when some terms depend on the input alone:
    /// project θ x [..; I] → px [..; G] (every such term for all steps at once) and
    /// projected θ px s → s_t, with transition θ x s = projected θ (project θ x) s.
    let projection (g: Graph) (layout: ParameterLayout) =
        let forward = needed g g.Updates
        let dx = Dictionary<int, bool>()
        let ds = Dictionary<int, bool>()
        for id in forward do
            let kids = children (g.Kind id)
            dx[id] <- (match g.Kind id with NInput -> true | _ -> kids |> List.exists (fun c -> dx[c]))
            ds[id] <- (match g.Kind id with NPrevious _ -> true | _ -> kids |> List.exists (fun c -> ds[c]))
        let inputOnly id = dx[id] && not ds[id]
        // The maximal input-only terms a state-dependent node reads; in a sum, its input-only terms
        // (and the parameter terms beside them) are projected together.
        let candidates = ResizeArray<int>()
        let sumSplit = Dictionary<int, int * (float * int) list>() // sum → its projected part, the rest
        let addCandidate id = if not (candidates.Contains id) then candidates.Add id
        for id in forward do
            if ds[id] then
                match g.Kind id with
                | NSum ts ->
                    let fixedTerms, rest = ts |> List.partition (fun (_, t) -> not ds[t])
                    if fixedTerms |> List.exists (fun (_, t) -> dx[t]) then
                        match fixedTerms with
                        | [ 1.0, t ] -> addCandidate t
                        | _ ->
                            let p = g.Intern(NSum fixedTerms)
                            sumSplit[id] <- (p, rest)
                            addCandidate p
                | kind -> for c in children kind do if inputOnly c then addCandidate c
        for u in g.Updates do
            if inputOnly u then addCandidate u
        if candidates.Count = 0 then None
        else
            let offsets = Dictionary<int, int * int>()
            let mutable G = 0
            for c in candidates do
                offsets[c] <- (G, g.Size c)
                G <- G + g.Size c
            let rewritten = Dictionary<int, int>()
            let rec rw (id: int) : int =
                match rewritten.TryGetValue id with
                | true, r -> r
                | _ ->
                    let r =
                        match offsets.TryGetValue id with
                        | true, (offset, n) -> g.Intern(NProjected(offset, n))
                        | _ ->
                            match sumSplit.TryGetValue id with
                            | true, (p, rest) -> g.Intern(NSum((1.0, rw p) :: (rest |> List.map (fun (c, t) -> c, rw t))))
                            | _ ->
                                match g.Kind id with
                                | NMatVec(r, v) -> g.Intern(NMatVec(r, rw v))
                                | NBilinear(r, x, z) -> g.Intern(NBilinear(r, rw x, rw z))
                                | NSum ts -> g.Intern(NSum(ts |> List.map (fun (c, t) -> c, rw t)))
                                | NMul(a, b) -> g.Intern(NMul(rw a, rw b))
                                | NApply(f, a) -> g.Intern(NApply(f, rw a))
                                | NDeriv(f, a) -> g.Intern(NDeriv(f, rw a))
                                | NConcat xs -> g.Intern(NConcat(xs |> List.map rw))
                                | NSlice(a, s, c) -> g.Intern(NSlice(rw a, s, c))
                                | leaf -> g.Intern leaf
                    rewritten[id] <- r
                    r
            let stepUpdates = g.Updates |> Array.map rw
            let projectProgram = program g layout candidates
            let stepProgram = program g layout stepUpdates
            let cands = candidates.ToArray()
            let project (theta: Tensor) (x: Tensor) : Tensor =
                let vals = projectProgram.Bind theta x null null // candidates read x, so each is [..; n]
                if cands.Length = 1 then tensor vals[cands[0]] else torch.cat([| for c in cands -> tensor vals[c] |], -1L) // [..; G]
            let projected (theta: Tensor) : Tensor -> Tensor -> Tensor =
                let run = stepProgram.Bind theta
                fun px s -> assemble g (run null s px) stepUpdates px.shape[0] theta.dtype
            Some(project, projected)

    // ---- derived operators ----

    let private scaleOp (c: float) (v: OpVal) =
        match v with
        | ZeroV -> ZeroV
        | ScaleV d -> ScaleV(c * d)
        | DiagV d -> DiagV(d * c)
        | MatrixV m -> MatrixV(m * c)

    let productOp (a: OpVal) (b: OpVal) =
        match a, b with
        | ZeroV, _ | _, ZeroV -> ZeroV
        | ScaleV c, y -> scaleOp c y
        | x, ScaleV c -> scaleOp c x
        | DiagV d, DiagV e -> DiagV(d * e)
        | DiagV d, MatrixV m -> MatrixV(if d.dim () = 0L then m * d else d.unsqueeze(-1L) * m)
        | MatrixV m, DiagV d -> MatrixV(if d.dim () = 0L then m * d else m * d.unsqueeze(-2L))
        | MatrixV a, MatrixV b -> MatrixV(a.matmulChecked b)

    /// diag(d) + c·I added to a [.., n; n] matrix.
    let private withDiagonal (m: Tensor) (d: Tensor option) (c: float) =
        let n = m.shape[int (m.dim ()) - 1]
        match d with
        | None when c = 0.0 -> m
        | None -> m + torch.eye(n, dtype = m.dtype) * c
        | Some d ->
            let d = if d.dim () = 0L then d.expand(n) else d
            m + torch.diag_embed(if c = 0.0 then d else d + c)

    let sumOp (terms: OpVal list) =
        let mutable diag: Tensor option = None
        let mutable c = 0.0
        let mutable mat: Tensor option = None
        for t in terms do
            match t with
            | ZeroV -> ()
            | ScaleV d -> c <- c + d
            | DiagV d -> diag <- Some(match diag with Some e -> e + d | None -> d)
            | MatrixV m -> mat <- Some(match mat with Some e -> e + m | None -> m)
        match mat, diag with
        | None, None -> if c = 0.0 then ZeroV else ScaleV c
        | None, Some d -> DiagV(if c = 0.0 then d else d + c)
        | Some m, d -> MatrixV(withDiagonal m d c)

    /// An operator's value as a [N; rows; cols] tensor.
    let materialize (N: int64) (rowsCount: int64) (cols: int64) (dtype: torch.ScalarType) (v: OpVal) : Tensor =
        match v with
        | ZeroV -> torch.zeros([| N; rowsCount; cols |], dtype = dtype)
        | ScaleV c -> (torch.eye(rowsCount, dtype = dtype) * c).expand(N, rowsCount, cols)
        | DiagV d ->
            let d = if d.dim () = 0L then d.expand(N, rowsCount) elif d.dim () = 1L then d.expand(N, rowsCount) else d
            torch.diag_embed d
        | MatrixV m when m.dim () = 2L -> m.expand(N, rowsCount, cols)
        | MatrixV m -> m

    /// An operator as a matrix (diagonals made dense), for placing and slicing columns.
    let private asMatrix (width: int64) (dtype: torch.ScalarType) (v: OpVal) =
        match v with
        | ZeroV -> None
        | ScaleV c -> Some(torch.eye(width, dtype = dtype) * c)
        | DiagV d when d.dim () = 0L -> Some(torch.eye(width, dtype = dtype) * d)
        | DiagV d -> Some(torch.diag_embed d)
        | MatrixV m -> Some m

    /// Compiles an operator into an evaluator over node values, sharing equal sub-operators.
    type OpProgram(g: Graph, layout: ParameterLayout) =
        let slots = Dictionary<Op, int>()
        let code = ResizeArray<OpVal[] -> Val[] -> Tensor -> OpVal>() // values so far, node values, θ
        let nodes = HashSet<int>()
        let rec compile (op: Op) : int =
            match slots.TryGetValue op with
            | true, k -> k
            | _ ->
                let f: OpVal[] -> Val[] -> Tensor -> OpVal =
                    match op with
                    | OZero -> fun _ _ _ -> ZeroV
                    | OIdentity -> fun _ _ _ -> ScaleV 1.0
                    | OScale(c, a) -> let a = compile a in fun vs _ _ -> scaleOp c vs[a]
                    | ODiag v ->
                        nodes.Add v |> ignore
                        fun _ vals _ -> match vals[v] with ScalarV c -> ScaleV c | VectorV t -> DiagV t
                    | OMatrix r -> fun _ _ theta -> MatrixV(view layout theta r)
                    | OContract(r, v, axis) ->
                        nodes.Add v |> ignore
                        fun _ vals theta ->
                            let U = view layout theta r
                            let z = tensor vals[v]
                            MatrixV(
                                match U.dim (), axis with
                                | 3L, 2 -> torch.einsum("ijk,...k->...ij", U, z)
                                | 3L, _ -> torch.einsum("ijk,...j->...ik", U, z)
                                | _, 2 -> torch.einsum("bijk,bk->bij", U, z)
                                | _, _ -> torch.einsum("bijk,bj->bik", U, z))
                    | OProduct xs ->
                        let ks = xs |> List.map compile |> Array.ofList
                        fun vs _ _ -> ks |> Array.fold (fun acc k -> match acc with None -> Some vs[k] | Some a -> Some(productOp a vs[k])) None |> Option.get
                    | OSum xs ->
                        let ks = xs |> List.map compile
                        fun vs _ _ -> sumOp (ks |> List.map (fun k -> vs[k]))
                    | OColumns(width, pieces) ->
                        let ks = pieces |> List.map (fun (offset, n, p) -> offset, n, compile p)
                        fun vs _ theta ->
                            let ms = ks |> List.map (fun (offset, n, k) -> offset, n, asMatrix (int64 n) theta.dtype vs[k])
                            match ms |> List.tryPick (fun (_, _, m) -> m) with
                            | None -> ZeroV
                            | Some some ->
                                let lead = some.shape[.. int (some.dim ()) - 2]
                                let lead = ms |> List.fold (fun (l: int64[]) (_, _, m) -> match m with Some m when m.dim () > int64 l.Length + 1L -> m.shape[.. int (m.dim ()) - 2] | _ -> l) lead
                                let shaped (w: int64) (m: Tensor option) =
                                    match m with
                                    | Some m -> m.expand(Array.append lead [| w |])
                                    | None -> torch.zeros(Array.append lead [| w |], dtype = theta.dtype)
                                let blocks = ResizeArray<Tensor>()
                                let mutable at = 0
                                for offset, n, m in ms |> List.sortBy (fun (o, _, _) -> o) do
                                    if offset > at then blocks.Add(shaped (int64 (offset - at)) None)
                                    blocks.Add(shaped (int64 n) m)
                                    at <- offset + n
                                if width > at then blocks.Add(shaped (int64 (width - at)) None)
                                MatrixV(torch.cat(blocks.ToArray(), -1L))
                    | OColumnSlice(a, width, start, count) ->
                        let k = compile a
                        fun vs _ theta ->
                            match asMatrix (int64 width) theta.dtype vs[k] with
                            | None -> ZeroV
                            | Some m -> MatrixV(m.narrow(-1L, int64 start, int64 count))
                let k = code.Count
                code.Add f
                slots[op] <- k
                k
        /// The slot of an operator.
        member _.Add(op: Op) = compile op
        /// The nodes the operators read.
        member _.Nodes = nodes :> seq<int>
        /// Evaluates every operator for the node values and θ.
        member _.Run(vals: Val[], theta: Tensor) : OpVal[] =
            let vs = Array.zeroCreate code.Count
            for k in 0 .. code.Count - 1 do
                vs[k] <- code[k] vs vals theta
            vs

    // ---- c_t and b_t ----

    /// One term of b_t: a contiguous run of rows of one block used with the same factors.
    type TermPlan =
        { Offset: int64
          Count: int64
          Factors: int list
          /// The uses in row order, each with its rows and J per part.
          Sites: (int * Op[]) list }

    let terms (g: Graph) (layout: ParameterLayout) (sites: Site list) : TermPlan list =
        [ for b in layout.Blocks do
              let rows = int b.Shape[0]
              let perRow = b.Shape |> Array.skip 1 |> Array.fold (*) 1L
              let uses =
                  sites
                  |> List.filter (fun s -> s.Ref.Block = b.Name)
                  |> List.map (fun s -> (match s.Ref.Rows with Some(a, c) -> a, c | None -> 0, rows), s)
                  |> List.sortBy (fun ((a, _), _) -> a)
              let runs =
                  uses
                  |> List.fold (fun (runs: ((int * int) * Site) list list) ((start, count), s) ->
                      match runs with
                      | (((a, c), last) :: _ as run) :: rest when last.Factors = s.Factors && a + c = start -> (((start, count), s) :: run) :: rest
                      | _ -> [ (start, count), s ] :: runs) []
                  |> List.rev
                  |> List.map List.rev
              for run in runs do
                  let (start, _), first = List.head run
                  let count = run |> List.sumBy (fun ((_, c), _) -> c)
                  yield
                      { Offset = b.Offset + int64 start * perRow
                        Count = int64 count * perRow
                        Factors = first.Factors
                        Sites = run |> List.map (fun ((_, c), s) -> c, s.Jacobian) } ]

    /// The derived Jacobians of a cell, compiled: dense (c_t, b_t) and structured (c_t, terms).
    type Jacobians(d: Derived) =
        let g = d.Graph
        let layout = g.Equations.Layout
        let parts = g.Parts |> Array.ofList
        let P = int64 layout.Count
        let S = int64 g.StateSize
        let ops = OpProgram(g, layout)
        let stateSlots = Array2D.init parts.Length parts.Length (fun p q -> ops.Add d.State[p, q])
        let plans = terms g layout d.Sites
        let termSlots = plans |> List.map (fun t -> t.Sites |> List.map (fun (rows, j) -> rows, j |> Array.map ops.Add))
        let forward = program g layout (Seq.append g.Updates ops.Nodes |> Seq.append (plans |> Seq.collect (fun t -> t.Factors)) |> Array.ofSeq)

        let evaluate (theta: Tensor) (x: Tensor) (s: Tensor) =
            let vals = forward.Bind theta x s null
            let vs = ops.Run(vals, theta)
            let N = x.shape[0]
            let dtype = theta.dtype
            let state =
                let row p = [| for q in 0 .. parts.Length - 1 ->
                                 let _, _, np = parts[p]
                                 let _, _, nq = parts[q]
                                 materialize N (int64 np) (int64 nq) dtype vs[stateSlots[p, q]] |]
                if parts.Length = 1 then (row 0)[0]
                else torch.cat([| for p in 0 .. parts.Length - 1 -> torch.cat(row p, 2L) |], 1L) // [N; S; S]
            // J of a term: its uses side by side, each the parts stacked; equal J's made once.
            let made = Dictionary<(int * int[]) list, Tensor>(HashIdentity.Structural)
            let jacobian (uses: (int * int[]) list) =
                match made.TryGetValue uses with
                | true, j -> j
                | _ ->
                    let one (rows: int, slots: int[]) =
                        let blocks = slots |> Array.mapi (fun p k -> let _, _, np = parts[p] in materialize N (int64 np) (int64 rows) dtype vs[k])
                        if blocks.Length = 1 then blocks[0] else torch.cat(blocks, 1L) // [N; S; rows]
                    let j = match uses with [ u ] -> one u | _ -> torch.cat([| for u in uses -> one u |], 2L) // [N; S; R]
                    made[uses] <- j
                    j
            let terms =
                List.map2 (fun (t: TermPlan) uses ->
                    { Offset = t.Offset
                      Jacobian = jacobian uses
                      Factors = t.Factors |> List.map (fun f -> rows N (int64 (g.Size f)) dtype vals[f]) }) plans termSlots
            state, terms

        /// J ⊗ v₁ᵀ ⊗ v₂ᵀ … as the [N; S; R·K₁·K₂…] block of b_t.
        static member Outer(term: ParameterTerm) : Tensor =
            let J = term.Jacobian
            let N, S, R = J.shape[0], J.shape[1], J.shape[2]
            match term.Factors with
            | [] -> J
            | [ v ] -> Tensors.wrtWeight J v
            | [ x; z ] ->
                (J.unsqueeze(-1L).unsqueeze(-1L) * x.unsqueeze(1L).unsqueeze(1L).unsqueeze(-1L) * z.unsqueeze(1L).unsqueeze(1L).unsqueeze(1L))
                    .reshape(N, S, R * x.shape[1] * z.shape[1])
            | _ -> failwith "internal: a term with more than two factors"

        /// b_t dense from its terms: [N; S; P].
        static member DenseOf (P: int64) (N: int64) (S: int64) (dtype: torch.ScalarType) (terms: ParameterTerm list) : Tensor =
            let sorted = terms |> List.sortBy _.Offset
            let tiles =
                sorted
                |> List.fold (fun (ok, at) t -> ok && t.Offset >= at, t.Offset + t.Count) (true, 0L)
                |> fst
            if tiles then
                let pieces = ResizeArray<Tensor>()
                let mutable at = 0L
                for t in sorted do
                    if t.Offset > at then pieces.Add(torch.zeros([| N; S; t.Offset - at |], dtype = dtype))
                    pieces.Add(Jacobians.Outer t)
                    at <- t.Offset + t.Count
                if P > at then pieces.Add(torch.zeros([| N; S; P - at |], dtype = dtype))
                if pieces.Count = 1 then pieces[0] else torch.cat(pieces.ToArray(), 2L) // [N; S; P]
            else
                let b = torch.zeros([| N; S; P |], dtype = dtype)
                for t in sorted do
                    let slot = b.narrow(2L, t.Offset, t.Count)
                    slot.add_(Jacobians.Outer t) |> ignore
                b

        /// (c_t, b_t) dense for x [N; I] and s_{t−1} [N; S].
        member _.Dense(theta: Tensor, x: Tensor, s: Tensor) : StepJacobians =
            let state, terms = evaluate theta x s
            { State = state; Parameters = Jacobians.DenseOf P x.shape[0] S theta.dtype terms }

        /// c_t dense and b_t as structured terms.
        member _.Structured(theta: Tensor, x: Tensor, s: Tensor) : StructuredJacobians =
            let state, terms = evaluate theta x s
            { State = state; Parameters = terms }

[<RequireQualifiedAccess>]
module Equations =
    /// Cell equations from their parts: a name, the input size I, the state parts (name, size) in
    /// order (the first is the output h), the parameter layout and the new value of every part.
    [<CompiledName("Create")>]
    let create (name: string) (inputSize: int) (state: (string * int) list) (layout: ParameterLayout) (updates: (string * Expr) list) : CellEquations =
        Check.notNull (nameof layout) (box layout)
        { Name = name
          InputSize = inputSize
          State = state |> List.map (fun (n, size) -> { Name = n; Size = size })
          Layout = layout
          Updates = updates }

    /// c_t and b_t of the equations by the rules of Symbolic.Derive. ArgumentException for equations
    /// that do not check (an undeclared block, mismatched sizes, naming the sub-expression and
    /// both shapes) or that use a nonlinearity the rules do not know.
    [<CompiledName("Derive")>]
    let derive (equations: CellEquations) : Derivation =
        Native.ensure ()
        Derivation(Derive.derive equations)

    let private unicodeEquations (g: Graph) =
        let c = Render.context NotationStyle.Unicode g None
        String.Join("; ", Render.equations c |> List.map (fun (l, r) -> l + " = " + r))

    /// The cell of a derivation: its transition evaluated from the equations (with an input
    /// projection where terms depend on the input alone), its derived (c_t, b_t) dense and
    /// structured, and row parameters (θ may be [B; P]).
    [<CompiledName("CellOf")>]
    let cellOf (derivation: Derivation) : Cell =
        Native.ensure ()
        Check.notNull (nameof derivation) (box derivation)
        let d = derivation.Derived
        let g = d.Graph
        let eq = g.Equations
        let jac = Compile.Jacobians d
        let projection = Compile.projection g eq.Layout
        let transition = Compile.transition g eq.Layout
        let H = (List.head eq.State).Size
        let cell = Cell.custom eq.Name eq.InputSize H g.StateSize eq.Layout transition
        let cell =
            match projection with
            | Some(project, projected) ->
                { cell with
                    Transition = (fun theta -> let step = projected theta in fun x s -> step (project theta x) s)
                    InputProjection = Some project
                    ProjectedTransition = Some projected }
            | None -> cell
        { cell with
            Jacobians = Some(fun theta x s -> jac.Dense(theta, x, s))
            StructuredJacobians = Some(fun theta x s -> jac.Structured(theta, x, s))
            RowParameters = true
            Equations = unicodeEquations g }

    /// The cell of the equations (Equations.derive, then Equations.cellOf): it unrolls, trains and
    /// has closed-form c_t and b_t on every BPTT route, with no hand-written Jacobian.
    [<CompiledName("Cell")>]
    let cell (equations: CellEquations) : Cell = cellOf (derive equations)

    /// A cell evaluated from the equations with no derived Jacobians, for equations the rules cannot
    /// differentiate (a user function without a derivative): the autodiff route only.
    [<CompiledName("AutodiffCell")>]
    let autodiffCell (equations: CellEquations) : Cell =
        Native.ensure ()
        let g = Graph equations
        let H = (List.head equations.State).Size
        let cell = Cell.custom equations.Name equations.InputSize H g.StateSize equations.Layout (Compile.transition g equations.Layout)
        { cell with RowParameters = true; Equations = unicodeEquations g }
