/// Derivation of c_t = ∂s_t/∂s_{t−1} and b_t = ∂s_t/∂θ from a cell's equations by rules, not by
/// autodiff. Conventions: numerator layout (c_t[i, j] = ∂s_t[i]/∂s_{t−1}[j], so c_t is [S; S]
/// with rows for the new state), θ flattened row-major as PyTorch stores it (∂(W v)/∂vec(W) = I ⊗ vᵀ),
/// ReLU'(0) = 0 as libtorch's autograd.
///
/// The rules, for the adjoint Ā = ∂s_t/∂e of a node e (one block row per state part), pushed from
/// each node to its arguments in reverse topological order:
///   sum       e = Σ ±a_k          Ā_{a_k} += ±Ā
///   Hadamard  e = a ⊙ b           Ā_a += Ā diag(b),  Ā_b += Ā diag(a)
///   φ         e = φ(a)            Ā_a += Ā diag(φ'(a))
///   matrix    e = W v             Ā_v += Ā W;   the use of W contributes Ā (dW v) to b_t dθ
///   module    e = U(z) x          Ā_x += Ā U(z), Ā_z += Ā U(·)x;   contributes Ā (dU(z) x)
///   stack     e = [a; b]          Ā_a += Ā [I; 0],  …       slice: Ā_a += Ā [0 I 0]ᵀ
/// seeded with ∂s_t[p]/∂(update of part p) = I. Then c_t's block (p, q) is Ā_p of s_{t−1}'s part q,
/// and b_t is kept as the differential dθ ↦ Σ_uses Ā_use (dW_use v_use): structured linear operators
/// (diagonals, parameter matrices, products, blocks), simplified (zeros and identities removed,
/// diagonals merged), never a dense Kronecker product until it is evaluated.
namespace SeqNets

open System
open System.Collections.Generic

/// A linear operator per batch row from a node's space [n] to a state part's [n_p], kept structured.
[<CustomEquality; NoComparison>]
type internal Op =
    | OZero
    | OIdentity
    /// c · A.
    | OScale of float * Op
    /// diag(v) for a node v.
    | ODiag of int
    /// A matrix block of θ (or rows of it), the same for every row.
    | OMatrix of BlockRef
    /// U(z) = Σ_k U[:, :, k] z_k (axis 2: [m; n]) or U(·)x = Σ_j U[:, j, :] x_j (axis 1: [m; d]).
    | OContract of BlockRef * vector: int * axis: int
    /// A₁ A₂ … (at least two factors), left to right.
    | OProduct of Op list
    /// A₁ + A₂ + … (at least two terms).
    | OSum of Op list
    /// [0 … A … 0]: each A (offset, its width, A) placed at its offset in a zero operator `width` columns wide.
    | OColumns of width: int * (int * int * Op) list
    /// Columns start .. start + count − 1 of an operator `width` columns wide.
    | OColumnSlice of Op * width: int * start: int * count: int
    // Structural equality with a cached hash: operators are keys of the evaluators' memo tables.
    member private o.Case =
        match o with
        | OZero -> 0 | OIdentity -> 1 | OScale _ -> 2 | ODiag _ -> 3 | OMatrix _ -> 4 | OContract _ -> 5
        | OProduct _ -> 6 | OSum _ -> 7 | OColumns _ -> 8 | OColumnSlice _ -> 9
    override o.Equals(other: obj) =
        match other with
        | :? Op as p ->
            Object.ReferenceEquals(o, p)
            || (o.Case = p.Case
                && match o, p with
                   | OZero, OZero | OIdentity, OIdentity -> true
                   | OScale(c, a), OScale(d, b) -> c = d && a.Equals b
                   | ODiag a, ODiag b -> a = b
                   | OMatrix a, OMatrix b -> a = b
                   | OContract(a, v, k), OContract(b, w, l) -> a = b && v = w && k = l
                   | OProduct xs, OProduct ys | OSum xs, OSum ys -> xs.Length = ys.Length && List.forall2 (fun (x: Op) y -> x.Equals y) xs ys
                   | OColumns(w, xs), OColumns(v, ys) ->
                       w = v && xs.Length = ys.Length && List.forall2 (fun (i, n, x: Op) (j, m, y) -> i = j && n = m && x.Equals y) xs ys
                   | OColumnSlice(a, w, s, c), OColumnSlice(b, v, t, d) -> w = v && s = t && c = d && a.Equals b
                   | _ -> false)
        | _ -> false
    override o.GetHashCode() =
        match o with
        | OZero -> 17
        | OIdentity -> 19
        | OScale(c, a) -> hash c * 31 + a.GetHashCode()
        | ODiag a -> 23 + 31 * a
        | OMatrix b -> hash b
        | OContract(b, v, k) -> hash b + 31 * v + k
        | OProduct xs -> xs |> List.fold (fun h x -> h * 37 + x.GetHashCode()) 3
        | OSum xs -> xs |> List.fold (fun h x -> h * 41 + x.GetHashCode()) 5
        | OColumns(w, xs) -> xs |> List.fold (fun h (i, n, x) -> h * 43 + i + 5 * n + x.GetHashCode()) w
        | OColumnSlice(a, w, s, c) -> a.GetHashCode() * 47 + w * 7 + s * 3 + c

/// One use of (rows of) a parameter block: y = W[rows] v (one factor v), a bias y = b[rows] (no
/// factor) or y = U[rows](z) x (factors x, z). Its part of b_t dθ is J (dW[rows] v), J = ∂s_t/∂y.
type internal Site =
    { Ref: BlockRef
      Factors: int list
      /// J = ∂s_t/∂y per state part: [n_p; rows].
      Jacobian: Op[] }

/// What the rules derive from one cell's equations.
type internal Derived =
    { Graph: Graph
      /// c_t in blocks: State[p, q] = ∂s_t[part p]/∂s_{t−1}[part q].
      State: Op[,]
      /// The uses of parameter blocks, in layout order then row order.
      Sites: Site list
      /// ∂s_t/∂z (per part) of every named intermediate, for showing the chain of rules.
      Adjoints: IReadOnlyDictionary<int, Op[]>
      Warnings: string list }

[<RequireQualifiedAccess>]
module internal Derive =
    let notDifferentiable (cellName: string) (name: string) =
        Check.fail "equations"
            ($"equations of '{cellName}': the nonlinearity '{name}' is not differentiable by the rules; give Jacobians "
             + "(its derivative: ElementwiseFunction with a derivative, or Cell.withJacobians) or use the autodiff route (Equations.autodiffCell).")

    // ---- vector expressions built by the rules (interned in the cell's graph) ----

    let isConstant (g: Graph) (id: int) = match g.Kind id with NConstant c -> Some c | _ -> None

    /// a ⊙ b, with constants folded and 1 dropped.
    let mul (g: Graph) (a: int) (b: int) =
        match isConstant g a, isConstant g b with
        | Some 1.0, _ -> b
        | _, Some 1.0 -> a
        | Some c, Some d -> g.Intern(NConstant(c * d))
        | _ -> g.Intern(NMul(a, b))

    /// Σ c_k v_k, with the terms of equal nodes merged and zero coefficients dropped.
    let sumOf (g: Graph) (terms: (float * int) list) =
        let merged =
            terms
            |> List.fold (fun (acc: (int * float) list) (c, v) ->
                match List.tryFindIndex (fun (w, _) -> w = v) acc with
                | Some k -> acc |> List.mapi (fun j (w, d) -> if j = k then w, d + c else w, d)
                | None -> acc @ [ v, c ]) []
            |> List.filter (fun (_, c) -> c <> 0.0)
            |> List.sortBy (fun (_, c) -> if c > 0.0 then 0 else 1) // a − b rather than −b + a
        match merged with
        | [] -> None
        | [ v, 1.0 ] -> Some v
        | [ v, c ] -> Some(mul g (g.Intern(NConstant c)) v)
        | _ -> Some(g.Intern(NSum(merged |> List.map (fun (v, c) -> c, v))))

    // ---- operators, simplified as they are built ----

    let rec scale (c: float) (a: Op) =
        match a with
        | _ when c = 1.0 -> a
        | _ when c = 0.0 -> OZero
        | OZero -> OZero
        | OScale(d, b) -> scale (c * d) b
        | _ -> OScale(c, a)

    let private factors (a: Op) = match a with OProduct xs -> xs | _ -> [ a ]

    /// A B, with zeros, identities and scales pulled out and neighbouring diagonals merged.
    let rec product (g: Graph) (a: Op) (b: Op) : Op =
        match a, b with
        | OZero, _ | _, OZero -> OZero
        | OIdentity, x | x, OIdentity -> x
        | OScale(c, x), y -> scale c (product g x y)
        | x, OScale(c, y) -> scale c (product g x y)
        | _ ->
            let xs = factors a
            let ys = factors b
            let merged =
                match List.last xs, List.head ys with
                | ODiag u, ODiag v -> List.take (xs.Length - 1) xs @ [ ODiag(mul g u v) ] @ List.tail ys
                | _ -> xs @ ys
            match merged with
            | [ single ] -> single
            | many -> OProduct many

    /// A₁ + A₂ + …, with zeros dropped and diagonal terms (diag(v), c·I) merged into one diagonal.
    let sum (g: Graph) (terms: Op list) : Op =
        let rec flatten (t: Op) = match t with OSum xs -> List.collect flatten xs | OZero -> [] | t -> [ t ]
        let terms = List.collect flatten terms
        let diagonal (t: Op) =
            match t with
            | OIdentity -> Some(1.0, None)
            | ODiag v -> Some(1.0, Some v)
            | OScale(c, OIdentity) -> Some(c, None)
            | OScale(c, ODiag v) -> Some(c, Some v)
            | _ -> None
        let diag, rest = terms |> List.partition (diagonal >> Option.isSome)
        let diagTerms = diag |> List.choose diagonal
        let diagOp =
            match diagTerms with
            | [] -> []
            | [ c, None ] -> [ scale c OIdentity ]
            | [ c, Some v ] -> [ scale c (ODiag v) ]
            | _ when diagTerms |> List.forall (snd >> Option.isNone) -> [ scale (diagTerms |> List.sumBy fst) OIdentity ]
            | _ ->
                let one = lazy (g.Intern(NConstant 1.0))
                let vs = diagTerms |> List.map (fun (c, v) -> c, (match v with Some v -> v | None -> one.Force()))
                match sumOf g vs with
                | Some v -> [ ODiag v ]
                | None -> []
        match diagOp @ rest with
        | [] -> OZero
        | [ single ] -> single
        | many -> OSum many

    /// Columns start .. start + count − 1 of an operator `width` columns wide.
    let columnSlice (a: Op) (width: int) (start: int) (count: int) =
        match a with
        | OZero -> OZero
        | _ when start = 0 && count = width -> a
        | _ -> OColumnSlice(a, width, start, count)

    // ---- the derivation ----

    /// Whether a node depends on θ or on s_{t−1} (only those carry a derivative).
    let private relevance (g: Graph) =
        let r = Array.zeroCreate g.Count
        for id in 0 .. g.Count - 1 do
            r[id] <-
                match g.Kind id with
                | NInput | NConstant _ | NProjected _ -> false
                | NPrevious _ | NParameter _ | NMatVec _ | NBilinear _ -> true
                | NSum ts -> ts |> List.exists (fun (_, t) -> r[t])
                | NMul(a, b) -> r[a] || r[b]
                | NApply(_, a) | NDeriv(_, a) | NSlice(a, _, _) -> r[a]
                | NConcat xs -> xs |> List.exists (fun x -> r[x])
        r

    /// c_t and b_t of a cell's equations by the rules above.
    let derive (equations: CellEquations) : Derived =
        let g = Graph equations
        let parts = g.Parts |> Array.ofList
        let P = parts.Length
        let relevant = relevance g
        let contributions = Dictionary<int, ResizeArray<Op>[]>()
        let add (node: int) (p: int) (op: Op) =
            if relevant[node] && op <> OZero then
                let slots =
                    match contributions.TryGetValue node with
                    | true, s -> s
                    | _ ->
                        let s = Array.init P (fun _ -> ResizeArray())
                        contributions[node] <- s
                        s
                slots[p].Add op
        for p in 0 .. P - 1 do add g.Updates[p] p OIdentity
        let adjoints = Dictionary<int, Op[]>()
        let state = Array2D.create P P OZero
        let sites = Dictionary<BlockRef * int list, Op[]>()
        let siteOrder = ResizeArray<BlockRef * int list>()
        let addSite (r: BlockRef) (fs: int list) (adj: Op[]) =
            let key = r, fs
            match sites.TryGetValue key with
            | true, j -> sites[key] <- Array.map2 (fun a b -> sum g [ a; b ]) j adj
            | _ ->
                sites[key] <- adj
                siteOrder.Add key
        // Children have smaller ids than their parents: decreasing ids visit every consumer of a
        // node before the node itself.
        for node in g.Count - 1 .. -1 .. 0 do
            match contributions.TryGetValue node with
            | false, _ -> ()
            | true, slots ->
                let adj = slots |> Array.map (fun c -> sum g (List.ofSeq c))
                adjoints[node] <- adj
                let push (child: int) (f: Op -> Op) = adj |> Array.iteri (fun p a -> add child p (f a))
                match g.Kind node with
                | NInput | NConstant _ | NProjected _ | NDeriv _ -> ()
                | NPrevious part ->
                    let q = parts |> Array.findIndex (fun (n, _, _) -> n = part)
                    for p in 0 .. P - 1 do state[p, q] <- adj[p]
                | NParameter r -> addSite r [] adj
                | NMatVec(r, v) ->
                    addSite r [ v ] adj
                    push v (fun a -> product g a (OMatrix r))
                | NBilinear(r, x, z) ->
                    addSite r [ x; z ] adj
                    push x (fun a -> product g a (OContract(r, z, 2)))
                    push z (fun a -> product g a (OContract(r, x, 1)))
                | NSum terms -> for c, t in terms do push t (scale c)
                | NMul(a, b) ->
                    match isConstant g a, isConstant g b with
                    | Some c, _ -> push b (scale c)
                    | _, Some c -> push a (scale c)
                    | None, None ->
                        push a (fun adjE -> product g adjE (ODiag b))
                        push b (fun adjE -> product g adjE (ODiag a))
                | NApply(f, a) ->
                    match f with
                    | Nonlinearity.Function fn when fn.Derivative.IsNone -> notDifferentiable equations.Name fn.Name
                    | _ -> ()
                    push a (fun adjE -> product g adjE (ODiag(g.Intern(NDeriv(f, a)))))
                | NConcat xs ->
                    let width = g.Size node
                    let mutable offset = 0
                    for x in xs do
                        let o, n = offset, g.Size x
                        push x (fun a -> columnSlice a width o n)
                        offset <- offset + n
                | NSlice(a, start, count) ->
                    let width = g.Size a
                    push a (fun adjE -> OColumns(width, [ start, count, adjE ]))
        let blockIndex name = equations.Layout.Blocks |> List.findIndex (fun b -> b.Name = name)
        let orderedSites =
            siteOrder
            |> Seq.map (fun (r, fs) -> { Ref = r; Factors = fs; Jacobian = sites[(r, fs)] })
            |> Seq.sortBy (fun s -> blockIndex s.Ref.Block, (match s.Ref.Rows with Some(start, _) -> start | None -> 0))
            |> List.ofSeq
        let warnings =
            [ if state |> Seq.cast<Op> |> Seq.forall ((=) OZero) then
                  yield
                      "the state never feeds back: no update depends on s_{t-1}, so c_t ≡ 0 and "
                      + "∂s_t/∂θ = b_t (every other term of the identity vanishes)."
              for b in equations.Layout.Blocks do
                  let uses = orderedSites |> List.filter (fun s -> s.Ref.Block = b.Name)
                  if uses.IsEmpty then
                      yield $"the parameter block '{b.Name}' is not used by the equations: its columns of b_t are 0."
                  else
                      let rows = int b.Shape[0]
                      let covered = Array.zeroCreate rows
                      for s in uses do
                          let start, count = match s.Ref.Rows with Some(a, c) -> a, c | None -> 0, rows
                          for k in start .. start + count - 1 do covered[k] <- true
                      match Array.tryFindIndex not covered with
                      | Some k -> yield $"row {k} of the parameter block '{b.Name}' is not used by the equations: its columns of b_t are 0."
                      | None -> () ]
        { Graph = g
          State = state
          Sites = orderedSites
          Adjoints = adjoints
          Warnings = warnings }

/// What the rules derived from a cell's equations: c_t and b_t as structured operators, and
/// warnings (e.g. a state that never feeds back). Render it with the Derivation module; make it a
/// cell with Equations.cellOf.
[<Sealed>]
type Derivation internal (derived: Derived) =
    /// The cell's name.
    member _.Name = derived.Graph.Equations.Name
    /// The equations derived.
    member _.Equations = derived.Graph.Equations
    /// Things that are legal but probably not meant, such as c_t ≡ 0 or an unused parameter block.
    member _.Warnings: string list = derived.Warnings
    member internal _.Derived = derived
    override d.ToString() = $"derivation of {d.Name}: c_t and b_t by the rules ({derived.Sites.Length} uses of parameter blocks)"

