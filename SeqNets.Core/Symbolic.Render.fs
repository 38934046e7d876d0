/// A cell's equations and its derived c_t and b_t written out, in LaTeX or in Unicode for
/// terminals, in the lecture's notation (⊙ for Hadamard products, σ, diag(·)), and the unrolled
/// identity ∂s_t/∂θ = b_t + Σ_{i<t} (Π_{j=i+1..t} c_j) b_i for t = 1, 2, 3 with the cell's own terms.
/// docs/derivations.md is made from these (`seqnets derive <cell> --markdown`).
namespace SeqNets

open System
open System.Collections.Generic
open System.Text

[<RequireQualifiedAccess>]
module internal Render =
    type Ctx =
        { Style: NotationStyle
          Graph: Graph
          /// The step written, "t" or a number, and the one before it.
          Now: string
          Before: string
          /// Update nodes, written as their state part at the step.
          Parts: IReadOnlyDictionary<int, string> }

    let context (style: NotationStyle) (g: Graph) (step: int option) =
        let parts = Dictionary<int, string>()
        g.Updates |> Array.iteri (fun k u -> let name, _, _ = g.Parts[k] in if not (parts.ContainsKey u) then parts[u] <- name)
        { Style = style
          Graph = g
          Now = (match step with Some j -> string j | None -> "t")
          Before = (match step with Some j -> string (j - 1) | None -> "t-1")
          Parts = parts }

    let latex (c: Ctx) = c.Style = NotationStyle.Latex
    let sym (c: Ctx) (name: string) (time: string option) = Notation.Symbol(c.Style, time, name)
    let paren (c: Ctx) (s: string) = if latex c then "\\left(" + s + "\\right)" else "(" + s + ")"
    let space (c: Ctx) = if latex c then "\\, " else " "
    let odot (c: Ctx) = if latex c then " \\odot " else " ⊙ "
    let neg (c: Ctx) = if latex c then "-" else "−"
    let plusMinus (c: Ctx) (negative: bool) = if negative then (if latex c then " - " else " − ") else " + "

    /// How a node is called when it has a name: its intermediate's name or its state part.
    let shortName (c: Ctx) (id: int) =
        match c.Parts.TryGetValue id with
        | true, p -> Some(sym c p (Some c.Now))
        | _ -> c.Graph.NameOf id |> Option.map (fun n -> sym c n (Some c.Now))

    /// A node written out (top: its definition, not its name), with its precedence: 0 sum, 1 product, 2 atom.
    let rec node (c: Ctx) (top: bool) (id: int) : string * int =
        match (if top then None else shortName c id) with
        | Some s -> s, 2
        | None ->
            let g = c.Graph
            match g.Kind id with
            | NInput -> sym c "x" (Some c.Now), 2
            | NPrevious p -> sym c p (Some c.Before), 2
            | NParameter r -> sym c r.Symbol None, 2
            | NConstant k -> Notation.Number k, 2
            | NProjected(offset, n) -> $"px[{offset}:{offset + n}]", 2
            | NMatVec(r, v) -> sym c r.Symbol None + space c + at c 2 v, 1
            | NBilinear(r, x, z) -> sym c r.Symbol None + paren c (fst (node c false z)) + space c + at c 2 x, 1
            | NSum terms ->
                let text =
                    terms
                    |> List.mapi (fun k (coef, t) ->
                        let magnitude = abs coef
                        let body = if magnitude = 1.0 then at c (if coef < 0.0 then 1 else 0) t else Notation.Number magnitude + space c + at c 1 t
                        if k = 0 then (if coef < 0.0 then neg c + body else body) else plusMinus c (coef < 0.0) + body)
                String.Join("", text), 0
            | NMul(a, b) ->
                match g.Kind a, g.Kind b with
                | NConstant -1.0, _ -> neg c + at c 1 b, 0
                | NConstant k, _ -> Notation.Number k + space c + at c 1 b, 1
                | _, NConstant k -> Notation.Number k + space c + at c 1 a, 1
                | _ -> at c 1 a + odot c + at c 1 b, 1
            | NApply(f, a) -> Notation.Nonlinearity(c.Style, f) + paren c (fst (node c false a)), 2
            | NDeriv(f, a) ->
                let output = match f with Nonlinearity.Sigmoid | Nonlinearity.Tanh -> g.Find(NApply(f, a)) |> Option.bind (shortName c) | _ -> None
                match f, output with
                | Nonlinearity.Sigmoid, Some y -> y + odot c + paren c ((if latex c then "1 - " else "1 − ") + y), 1
                | Nonlinearity.Tanh, Some y -> (if latex c then $"1 - {y}^{{2}}" else $"1 − {y}²"), 0
                | Nonlinearity.Relu, _ -> (if latex c then "\\mathbb{1}\\left[" + fst (node c false a) + " > 0\\right]" else "𝟙[" + fst (node c false a) + " > 0]"), 2
                | Nonlinearity.Identity, _ -> "1", 2
                | _ -> Notation.Nonlinearity(c.Style, f) + "'" + paren c (fst (node c false a)), 2
            | NConcat xs ->
                let inner = xs |> List.map (fun x -> fst (node c false x))
                (if latex c then "\\begin{bmatrix} " + String.Join(" \\\\ ", inner) + " \\end{bmatrix}" else "[" + String.Join("; ", inner) + "]"), 2
            | NSlice(a, s, n) -> (if latex c then $"{at c 2 a}_{{[{s}:{s + n}]}}" else $"{at c 2 a}[{s}:{s + n}]"), 2
    and at (c: Ctx) (p: int) (id: int) =
        let s, q = node c false id
        if q < p then paren c s else s

    /// An operator written out, with its precedence.
    let rec op (c: Ctx) (o: Op) : string * int =
        match o with
        | OZero -> "0", 2
        | OIdentity -> "I", 2
        | OScale(-1.0, a) -> neg c + opAt c 1 a, 0
        | OScale(k, a) -> Notation.Number k + space c + opAt c 1 a, 1
        | ODiag v -> (if latex c then "\\mathrm{diag}" else "diag") + paren c (fst (node c false v)), 2
        | OMatrix r -> sym c r.Symbol None, 2
        | OContract(r, v, 2) -> sym c r.Symbol None + paren c (fst (node c false v)), 2
        | OContract(r, v, _) -> sym c r.Symbol None + paren c (if latex c then "\\cdot" else "·") + space c + at c 2 v, 1
        | OProduct xs -> String.Join(space c, xs |> List.map (opAt c 1)), 1
        | OSum xs ->
            let text =
                xs
                |> List.mapi (fun k x ->
                    match x with
                    | OScale(w, a) when w < 0.0 ->
                        let body = if w = -1.0 then opAt c 1 a else Notation.Number(-w) + space c + opAt c 1 a
                        if k = 0 then neg c + body else plusMinus c true + body
                    | _ -> (if k = 0 then "" else " + ") + opAt c 0 x)
            String.Join("", text), 0
        | OColumns(width, pieces) ->
            let cells = ResizeArray<string>()
            let mutable at = 0
            for offset, n, p in pieces |> List.sortBy (fun (o, _, _) -> o) do
                if offset > at then cells.Add "0"
                cells.Add(fst (op c p))
                at <- offset + n
            if width > at then cells.Add "0"
            (if latex c then "\\begin{bmatrix} " + String.Join(" & ", cells) + " \\end{bmatrix}" else "[" + String.Join(" | ", cells) + "]"), 2
        | OColumnSlice(a, _, s, n) -> (if latex c then $"{opAt c 2 a}_{{[:, {s}:{s + n}]}}" else $"{opAt c 2 a}[:, {s}:{s + n}]"), 2
    and opAt (c: Ctx) (p: int) (o: Op) =
        let s, q = op c o
        if q < p then paren c s else s

    let partial (c: Ctx) (num: string) (den: string) =
        if latex c then $"\\frac{{\\partial {num}}}{{\\partial {den}}}" else $"∂{num}/∂{den}"

    let dOf (c: Ctx) = if latex c then "\\mathrm{d}" else "d"

    /// The nodes that have a definition line (named intermediates and updates), in id order.
    let defined (g: Graph) =
        let updates = g.Updates |> Set.ofArray
        (g.Names |> List.map fst |> Set.ofList) + updates |> Set.toList

    /// lhs = rhs for every intermediate and update, in order of definition.
    let equations (c: Ctx) : (string * string) list =
        let g = c.Graph
        [ for id in defined g do
              let lhs = shortName c id |> Option.get
              yield lhs, fst (node c true id) ]

    /// ∂(part)_t/∂z_t for every named intermediate z (and update used by another part), last first.
    let chain (c: Ctx) (d: Derived) : (string * string) list =
        let g = c.Graph
        [ for id in defined g |> List.rev do
              match d.Adjoints.TryGetValue id with
              | true, adj ->
                  for p in 0 .. adj.Length - 1 do
                      let part, _, _ = g.Parts[p]
                      if adj[p] <> OZero && not (g.Updates[p] = id) then
                          yield partial c (sym c part (Some c.Now)) (shortName c id |> Option.get), fst (op c adj[p])
              | _ -> () ]

    /// The blocks of c_t: ∂(part p)_t/∂(part q)_{t−1}, the nonzero ones.
    let state (c: Ctx) (d: Derived) : (string * string) list =
        let g = c.Graph
        [ for p in 0 .. g.Parts.Length - 1 do
              for q in 0 .. g.Parts.Length - 1 do
                  if d.State[p, q] <> OZero then
                      let pn, _, _ = g.Parts[p]
                      let qn, _, _ = g.Parts[q]
                      yield partial c (sym c pn (Some c.Now)) (sym c qn (Some c.Before)), fst (op c d.State[p, q]) ]

    /// A use of a block as a differential: dW x, db, dU(z) x.
    let site (c: Ctx) (s: Site) =
        let W = dOf c + sym c s.Ref.Symbol None
        match s.Factors with
        | [] -> W
        | [ v ] -> W + space c + at c 2 v
        | [ x; z ] -> W + paren c (fst (node c false z)) + space c + at c 2 x
        | _ -> W

    /// J = ∂s_t/∂y, the parts stacked.
    let jacobian (c: Ctx) (j: Op[]) =
        if j.Length = 1 then opAt c 1 j[0]
        else
            let rows = j |> Array.map (fun o -> fst (op c o))
            if latex c then "\\begin{bmatrix} " + String.Join(" \\\\ ", rows) + " \\end{bmatrix}" else "[" + String.Join("; ", rows) + "]"

    /// b_t dθ as a sum of J (dW v + …), one term per distinct J, in layout order.
    let parameters (c: Ctx) (d: Derived) : string list =
        let groups = ResizeArray<Op[] * ResizeArray<Site>>()
        for s in d.Sites do
            match groups |> Seq.tryFind (fun (j, _) -> Array.forall2 (fun (a: Op) b -> a.Equals b) j s.Jacobian) with
            | Some(_, members) -> members.Add s
            | None -> groups.Add(s.Jacobian, ResizeArray [ s ])
        [ for j, members in groups ->
              let uses = String.Join(" + ", members |> Seq.map (site c))
              let isIdentity = j.Length = 1 && j[0] = OIdentity
              if isIdentity then uses
              elif members.Count = 1 && members[0].Factors.IsEmpty then jacobian c j + space c + uses
              else jacobian c j + space c + paren c uses ]

    /// Whether the cell uses c or b as a name, so that the Jacobians need other letters.
    let clash (g: Graph) =
        let bases = (g.Parts |> List.map (fun (n, _, _) -> n)) @ (g.Names |> List.map snd)
        bases |> List.exists (fun n -> n = "c" || n = "b" || n.StartsWith "c_" || n.StartsWith "b_")

    /// (c, b) symbols at a step: c_t, b_t, or 𝒞_t, ℬ_t when the cell has its own c or b.
    let jacobianSymbols (c: Ctx) (g: Graph) (step: string) =
        match clash g, latex c with
        | false, true -> $"c_{{{step}}}", $"b_{{{step}}}"
        | false, false -> $"c_{step}", $"b_{step}"
        | true, true -> $"\\mathcal{{C}}_{{{step}}}", $"\\mathcal{{B}}_{{{step}}}"
        | true, false -> $"𝒞_{step}", $"ℬ_{step}"

    /// The state's symbol: its only part, or s.
    let stateName (g: Graph) = match g.Parts with [ name, _, _ ] -> name | _ -> "s"

    let theta (c: Ctx) = if latex c then "\\theta" else "θ"

    /// ∂s_t/∂θ for t = 1, 2, 3 in terms of c_j and b_j, then with the cell's terms: c_j written
    /// out for a one-part state, in blocks ∂(part)_j/∂(part)_{j−1} for a state of several parts.
    let identity (style: NotationStyle) (d: Derived) : (string * string) list * (string * string) list =
        let g = d.Graph
        let c = context style g None
        let s = stateName g
        let lhs t = partial c (sym c s (Some(string t))) (theta c)
        let cb j = jacobianSymbols c g (string j)
        let terms (t: int) (cj: int -> string) =
            [ for i in t .. -1 .. 1 ->
                  let product = [ for j in t .. -1 .. i + 1 -> cj j ]
                  String.Join(space c, product @ [ snd (cb i) ]) ]
        let general = [ for t in 1 .. 3 -> lhs t, String.Join(" + ", terms t (fun j -> fst (cb j))) ]
        let written =
            match g.Parts with
            | [ _ ] when d.State[0, 0] <> OZero ->
                [ for t in 2 .. 3 -> lhs t, String.Join(" + ", terms t (fun j -> opAt (context style g (Some j)) 1 d.State[0, 0])) ]
            | [ _ ] -> [ for t in 2 .. 3 -> lhs t, snd (cb t) ]
            | parts ->
                let n = parts.Length
                [ for j in 2 .. 3 ->
                      let cj = context style g (Some j)
                      let entry p q =
                          let pn, _, _ = parts[p]
                          let qn, _, _ = parts[q]
                          if d.State[p, q] = OZero then "0" else partial cj (sym cj pn (Some cj.Now)) (sym cj qn (Some cj.Before))
                      let rows = [ for p in 0 .. n - 1 -> [ for q in 0 .. n - 1 -> entry p q ] ]
                      let matrix =
                          if latex c then "\\begin{bmatrix} " + String.Join(" \\\\ ", rows |> List.map (fun r -> String.Join(" & ", r))) + " \\end{bmatrix}"
                          else "[" + String.Join("; ", rows |> List.map (fun r -> String.Join(", ", r))) + "]"
                      fst (cb j), matrix ]
        general, written

/// Writing out derivations: equations, c_t, b_t and the unrolled identity.
[<RequireQualifiedAccess; CompilationRepresentation(CompilationRepresentationFlags.ModuleSuffix)>]
module Derivation =
    let private lines (style: NotationStyle) (pairs: (string * string) list) =
        pairs |> List.map (fun (l, r) -> l + " = " + r)

    /// The equations, one per line (intermediates and updates in order of definition).
    [<CompiledName("EquationLines")>]
    let equations (style: NotationStyle) (derivation: Derivation) : string list =
        let d = derivation.Derived
        lines style (Render.equations (Render.context style d.Graph None))

    /// The blocks of c_t = ∂s_t/∂s_{t−1} (numerator layout), the nonzero ones, one per line;
    /// "c_t = 0" when the state never feeds back.
    [<CompiledName("StateJacobianLines")>]
    let stateJacobian (style: NotationStyle) (derivation: Derivation) : string list =
        let d = derivation.Derived
        let c = Render.context style d.Graph None
        match Render.state c d with
        | [] -> [ fst (Render.jacobianSymbols c d.Graph "t") + " = 0" ]
        | blocks -> lines style blocks

    /// b_t as the differential b_t dθ = Σ J (dW v) (θ row-major: a term J (dW v) is the block J ⊗ vᵀ of b_t).
    [<CompiledName("ParameterJacobian")>]
    let parameterJacobian (style: NotationStyle) (derivation: Derivation) : string =
        let d = derivation.Derived
        let c = Render.context style d.Graph None
        let _, b = Render.jacobianSymbols c d.Graph "t"
        b + Render.space c + Render.dOf c + Render.theta c + " = " + String.Join(" + ", Render.parameters c d)

    /// ∂s_t/∂θ for t = 1, 2, 3 in terms of c_j and b_j, then with the cell's terms (b_j is b_t at t = j).
    [<CompiledName("IdentityLines")>]
    let identity (style: NotationStyle) (derivation: Derivation) : string list =
        let general, pieces = Render.identity style derivation.Derived
        lines style general @ lines style pieces

    /// Everything, as Unicode text for a terminal.
    [<CompiledName("Text")>]
    let text (derivation: Derivation) : string =
        let style = NotationStyle.Unicode
        let d = derivation.Derived
        let c = Render.context style d.Graph None
        let sb = StringBuilder()
        let section (title: string) (body: string list) =
            sb.AppendLine(title) |> ignore
            for l in body do sb.AppendLine("  " + l) |> ignore
            sb.AppendLine() |> ignore
        let cSym, bSym = Render.jacobianSymbols c d.Graph "t"
        section $"{derivation.Name}: equations" (equations style derivation)
        section "chain rule through the intermediates" (lines style (Render.chain c d))
        section $"{cSym} = ∂s_t/∂s_(t−1), in blocks (numerator layout)" (stateJacobian style derivation)
        section $"{bSym} = ∂s_t/∂θ as a differential (θ row-major: J (dW v) is the block J ⊗ vᵀ)" [ parameterJacobian style derivation ]
        section "the identity ∂s_t/∂θ = b_t + Σ_(i<t) (Π_(j=i+1..t) c_j) b_i for t = 1, 2, 3" (identity style derivation)
        if not derivation.Warnings.IsEmpty then section "warnings" derivation.Warnings
        sb.ToString().TrimEnd() + "\n"

    /// Everything, as LaTeX (one aligned block per part).
    [<CompiledName("Latex")>]
    let latex (derivation: Derivation) : string =
        let style = NotationStyle.Latex
        let d = derivation.Derived
        let c = Render.context style d.Graph None
        let aligned (pairs: (string * string) list) =
            "\\begin{aligned}\n" + String.Join(" \\\\\n", pairs |> List.map (fun (l, r) -> $"{l} &= {r}")) + "\n\\end{aligned}\n"
        let cSym, bSym = Render.jacobianSymbols c d.Graph "t"
        let stateBlocks = match Render.state c d with [] -> [ cSym, "0" ] | b -> b
        let general, pieces = Render.identity style d
        String.Join("\n",
            [ $"%% {derivation.Name}: equations"; aligned (Render.equations c)
              "% chain rule through the intermediates"; aligned (Render.chain c d)
              $"%% {cSym}: the blocks of ds_t/ds_(t-1)"; aligned stateBlocks
              $"%% {bSym}: ds_t/dtheta as a differential"
              aligned [ bSym + "\\, \\mathrm{d}\\theta", String.Join(" \\\\\n&\\quad + ", Render.parameters c d) ]
              "% the identity for t = 1, 2, 3"; aligned general; aligned pieces ])

    /// A size written with the names of the sizes that divide it (28 with H = 7 is 4H).
    let private sizeText (sizes: (string * int) list) (v: int64) =
        match sizes |> List.tryFind (fun (_, n) -> int64 n = v) with
        | Some(name, _) -> name
        | None when v = 0L -> "0"
        | None ->
            match sizes |> List.tryFind (fun (_, n) -> v % int64 n = 0L && v / int64 n <= 8L) with
            | Some(name, n) -> $"{v / int64 n}{name}"
            | None -> string v

    /// A page section in Markdown with LaTeX math: the title as a heading, the intro paragraph (if
    /// not empty), the layout, the equations, the chain of rules, c_t, b_t and the identity for
    /// t = 1, 2, 3. Sizes are written with the given names where they divide them (e.g.
    /// ["I", 5; "H", 7]: 28 is 4H).
    [<CompiledName("Markdown")>]
    let markdown (title: string) (intro: string) (sizes: (string * int) list) (derivation: Derivation) : string =
        let style = NotationStyle.Latex
        let d = derivation.Derived
        let g = d.Graph
        let c = Render.context style g None
        let size = sizeText sizes
        let sb = StringBuilder()
        let line (s: string) = sb.Append(s).Append('\n') |> ignore
        let aligned (pairs: (string * string) list) =
            line "$$"
            line "\\begin{aligned}"
            pairs |> List.iteri (fun k (l, r) -> line ($"{l} &= {r}" + (if k < pairs.Length - 1 then " \\\\" else "")))
            line "\\end{aligned}"
            line "$$"
            line ""
        let cSym, bSym = Render.jacobianSymbols c g "t"
        let eq = derivation.Equations
        line $"## {title}"
        line ""
        if not (String.IsNullOrWhiteSpace intro) then
            line (intro.Trim())
            line ""
        let partsText = String.Join("; ", g.Parts |> List.map (fun (n, _, _) -> Notation.Symbol(style, Some "t", n)))
        let stateText = if g.Parts.Length = 1 then $"$s_t = {partsText}$" else $"$s_t = [{partsText}]$"
        let sizeIs (name: string) (v: int64) = match size v with s when s = name -> $"${name}$" | s -> $"${name} = {s}$"
        let sText = sizeIs "S" (int64 g.StateSize)
        let iText = match size (int64 eq.InputSize) with "I" -> "$I$ entries" | s -> $"$I = {s}$"
        line $"State {stateText} ({sText}), input $x_t$ ({iText}). The blocks of $\\theta$, in order, each row-major:"
        line ""
        line "| block | shape | rows as written in the equations |"
        line "| --- | --- | --- |"
        for b in eq.Layout.Blocks do
            let shape = String.Join("; ", b.Shape |> Array.map size)
            let uses =
                d.Sites
                |> List.filter (fun s -> s.Ref.Block = b.Name)
                |> List.map (fun s ->
                    let rows =
                        match s.Ref.Rows with
                        | Some(a, n) when not (a = 0 && int64 n = b.Shape[0]) -> Some $"{size (int64 a)}..{size (int64 (a + n))}"
                        | _ -> None
                    rows, Notation.Symbol(style, None, s.Ref.Symbol))
                |> List.distinct
                |> List.map (fun (rows, symbol) -> match rows with None -> $"${symbol}$" | Some r -> $"${r}$: ${symbol}$")
            line $"""| `{b.Name}` | $[{shape}]$ | {String.Join(", ", uses)} |"""
        line ""
        line "**Equations.**"
        line ""
        aligned (Render.equations c)
        let chain = Render.chain c d
        if not chain.IsEmpty then
            line "**The rules through the intermediates**, from the last to the first ($\\partial s_t/\\partial z_t$ per part of the state, simplified):"
            line ""
            aligned chain
        line $"**${cSym} = \\partial s_t / \\partial s_{{t-1}}$** in blocks (numerator layout: rows for $s_t$, columns for $s_{{t-1}}$; blocks not shown are 0):"
        line ""
        aligned (match Render.state c d with [] -> [ cSym, "0" ] | b -> b)
        line $"**${bSym} = \\partial s_t / \\partial \\theta$** as a differential. $\\theta$ is row-major, so a term $J\\,(\\mathrm{{d}}W\\, v)$ is the block $J \\otimes v^\\top$ of ${bSym}$ (columns of $W$'s rows), and $J\\,\\mathrm{{d}}b$ is the block $J$:"
        line ""
        let ps = Render.parameters c d
        line "$$"
        line "\\begin{aligned}"
        ps |> List.iteri (fun k p -> line ((if k = 0 then bSym + "\\, \\mathrm{d}\\theta &= " else "&\\quad + ") + p + (if k < ps.Length - 1 then " \\\\" else "")))
        line "\\end{aligned}"
        line "$$"
        line ""
        let general, pieces = Render.identity style d
        let stateSymbol = Notation.Symbol(style, None, Render.stateName g)
        let cj, bi, bj = cSym.Replace("{t}", "{j}"), bSym.Replace("{t}", "{i}"), bSym.Replace("{t}", "{j}")
        line $"**The identity** $\\partial {stateSymbol}_t/\\partial\\theta = {bSym} + \\sum_{{i<t}} \\big(\\prod_{{j=i+1}}^{{t}} {cj}\\big) {bi}$ for $t = 1, 2, 3$, and with this cell's terms (${bj}$ is ${bSym}$ above at $t = j$):"
        line ""
        aligned (general @ pieces)
        if not derivation.Warnings.IsEmpty then
            for w in derivation.Warnings do line $"> Warning: {w}"
            line ""
        sb.ToString()
