/// A small symbolic language for recurrent cells: expressions over the step's input x_t, the
/// named parts of the previous state s_{t−1} and named blocks of θ, with matrix–vector products,
/// sums, Hadamard products, σ / tanh / ReLU, concatenation, slices and named intermediates:
///
///   z_t = σ(W_z x_t + U_z h_{t−1} + b_z)        h_t = z_t ⊙ h_{t−1} + (1 − z_t) ⊙ tanh(…)
///
/// A cell written this way (CellEquations) is evaluated, differentiated by rules (Symbolic.Derive)
/// and rendered (Symbolic.Render) from the one definition. This file holds the expression type,
/// its notation (Unicode and LaTeX) and the shape checking that turns a definition into a graph.
/// Every expression is a column vector per batch row; sizes are checked when the cell is built.
namespace SeqNets

open System
open System.Collections.Generic
open System.Text

/// An elementwise function the derivation rules do not know, given by its forward map and,
/// optionally, its derivative φ'(a) (both elementwise, Tensor → Tensor). Without a derivative a
/// cell that uses it can only be differentiated by autodiff (Equations.autodiffCell).
[<AllowNullLiteral>]
type ElementwiseFunction(name: string, forward: Tensor -> Tensor, derivative: (Tensor -> Tensor) option) =
    /// The name the function is written with, e.g. "softplus".
    member _.Name = name
    /// φ(a), elementwise.
    member _.Forward = forward
    /// φ'(a), elementwise, when known.
    member _.Derivative = derivative
    override _.ToString() = name

/// The elementwise nonlinearities of the language.
[<RequireQualifiedAccess>]
type Nonlinearity =
    /// σ(a) = 1 / (1 + e^(−a)); σ' = σ (1 − σ).
    | Sigmoid
    /// tanh(a); tanh' = 1 − tanh².
    | Tanh
    /// max(a, 0); ReLU'(a) = 1 for a > 0 and 0 otherwise (0 at a = 0, as libtorch's autograd).
    | Relu
    /// a itself.
    | Identity
    /// A function of the user's (see ElementwiseFunction).
    | Function of ElementwiseFunction

/// A reference to a named block of θ (a ParameterLayout block) or to a range of its rows (first
/// axis), written as Symbol in equations: e.g. rows 0..H of PyTorch's weight_hh written U_r.
type BlockRef =
    { /// The name of the block in the cell's ParameterLayout.
      Block: string
      /// First row and number of rows, or None for the whole block.
      Rows: (int * int) option
      /// How the reference is written, e.g. "U_r" (an underscore starts a subscript).
      Symbol: string }

/// A vector expression of the language, one column vector per batch row. Build expressions with
/// the operators (+, −, * for matrix–vector and Hadamard products, tanh) and the Expr module.
[<RequireQualifiedAccess>]
type Expr =
    /// x_t, the step's input [I].
    | Input
    /// The named part of the previous state s_{t−1}, e.g. h_{t−1}.
    | Previous of part: string
    /// A vector block of θ (or rows of it), e.g. a bias.
    | Parameter of BlockRef
    /// A scalar constant; it broadcasts against any vector (as in 1 − z).
    | Constant of float
    /// W v: a matrix block of θ (or rows of it) times a vector.
    | MatVec of BlockRef * Expr
    /// The lecture's multiplicative module: (U(z) x)_i = Σ_jk U_ijk x_j z_k, U a [m; n; d] block.
    | Bilinear of BlockRef * x: Expr * z: Expr
    /// a + b.
    | Add of Expr * Expr
    /// a − b.
    | Subtract of Expr * Expr
    /// −a.
    | Negate of Expr
    /// a ⊙ b, elementwise; either side may be a Constant.
    | Hadamard of Expr * Expr
    /// φ(a), elementwise.
    | Apply of Nonlinearity * Expr
    /// [a; b; …], the vectors stacked.
    | Concat of Expr list
    /// Entries start .. start + count − 1 of a vector.
    | Slice of Expr * start: int * count: int
    /// A named intermediate (let z = …): evaluated once, written by its name.
    | Named of name: string * Expr

    /// a + b.
    static member (+)(a: Expr, b: Expr) = Expr.Add(a, b)
    /// a + c, c broadcast.
    static member (+)(a: Expr, c: float) = Expr.Add(a, Expr.Constant c)
    /// c + a, c broadcast.
    static member (+)(c: float, a: Expr) = Expr.Add(Expr.Constant c, a)
    /// a − b.
    static member (-)(a: Expr, b: Expr) = Expr.Subtract(a, b)
    /// a − c, c broadcast.
    static member (-)(a: Expr, c: float) = Expr.Subtract(a, Expr.Constant c)
    /// c − a, c broadcast (as in 1 − z).
    static member (-)(c: float, a: Expr) = Expr.Subtract(Expr.Constant c, a)
    /// −a.
    static member (~-)(a: Expr) = Expr.Negate a
    /// a ⊙ b, the Hadamard (elementwise) product, as tensors' * is.
    static member (*)(a: Expr, b: Expr) = Expr.Hadamard(a, b)
    /// c a.
    static member (*)(c: float, a: Expr) = Expr.Hadamard(Expr.Constant c, a)
    /// a c.
    static member (*)(a: Expr, c: float) = Expr.Hadamard(a, Expr.Constant c)
    /// W v, the matrix–vector product of a matrix block and a vector.
    static member (*)(w: BlockRef, v: Expr) = Expr.MatVec(w, v)
    /// tanh(a), so that F#'s tanh applies to expressions.
    static member Tanh(a: Expr) = Expr.Apply(Nonlinearity.Tanh, a)
    /// The expression in the Unicode notation of terminals.
    override e.ToString() = Notation.Expr(NotationStyle.Unicode, e)

/// How equations and derivations are written out.
and [<RequireQualifiedAccess>] NotationStyle =
    /// Unicode text for terminals: h_(t−1), ⊙, σ, ∂.
    | Unicode
    /// LaTeX: h_{t-1}, \odot, \sigma, \partial.
    | Latex

/// Symbols and expressions written out, in Unicode (for terminals) or LaTeX, in the lecture's
/// notation: ⊙ for Hadamard products, σ, tanh, diag(·), subscript t for the step.
and [<AbstractClass; Sealed>] internal Notation private () =
    static let greek =
        dict [ 'α', "alpha"; 'β', "beta"; 'γ', "gamma"; 'δ', "delta"; 'ε', "epsilon"; 'ζ', "zeta"; 'η', "eta"
               'θ', "theta"; 'ι', "iota"; 'κ', "kappa"; 'λ', "lambda"; 'μ', "mu"; 'ν', "nu"; 'ξ', "xi"; 'π', "pi"
               'ρ', "rho"; 'σ', "sigma"; 'τ', "tau"; 'υ', "upsilon"; 'φ', "phi"; 'χ', "chi"; 'ψ', "psi"; 'ω', "omega" ]

    /// A name such as "W_hx", "α_f" or "n~" (a trailing ~ is a tilde accent), with an optional
    /// time subscript ("t", "t-1", "2").
    static member Symbol(style: NotationStyle, time: string option, name: string) : string =
        let baseName, sub =
            match name.IndexOf '_' with
            | -1 -> name, None
            | i -> name.Substring(0, i), Some(name.Substring(i + 1))
        let tilde = baseName.EndsWith "~"
        let baseName = if tilde then baseName.TrimEnd '~' else baseName
        match style with
        | NotationStyle.Latex ->
            let letters =
                baseName |> Seq.map (fun ch ->
                    match greek.TryGetValue ch with
                    | true, g -> "\\" + g
                    | _ -> string ch) |> List.ofSeq
            let b = String.Join("", letters)
            let b = if letters.Length > 1 && not (b.StartsWith "\\") then $"\\mathit{{{b}}}" else b
            let b = if tilde then $"\\tilde{{{b}}}" else b
            match sub, time with
            | None, None -> b
            | Some s, None -> $"{b}_{{{s}}}"
            | None, Some t -> $"{b}_{{{t}}}"
            | Some s, Some t -> $"{b}_{{{s},{t}}}"
        | NotationStyle.Unicode ->
            let b = if tilde then baseName + "\u0303" else baseName
            let time = time |> Option.map (fun t -> t.Replace("-", "−"))
            match sub, time with
            | None, None -> b
            | Some s, None -> $"{b}_{s}"
            | None, Some t when t.Length = 1 -> $"{b}_{t}"
            | None, Some t -> $"{b}_({t})"
            | Some s, Some t -> $"{b}_({s},{t})"

    /// σ, tanh, ReLU, … in the style.
    static member Nonlinearity(style: NotationStyle, f: Nonlinearity) =
        match style, f with
        | NotationStyle.Latex, Nonlinearity.Sigmoid -> "\\sigma"
        | NotationStyle.Latex, Nonlinearity.Tanh -> "\\tanh"
        | NotationStyle.Latex, Nonlinearity.Relu -> "\\mathrm{ReLU}"
        | NotationStyle.Latex, Nonlinearity.Identity -> "\\mathrm{id}"
        | NotationStyle.Latex, Nonlinearity.Function g -> $"\\mathrm{{{g.Name}}}"
        | _, Nonlinearity.Sigmoid -> "σ"
        | _, Nonlinearity.Tanh -> "tanh"
        | _, Nonlinearity.Relu -> "ReLU"
        | _, Nonlinearity.Identity -> "id"
        | _, Nonlinearity.Function g -> g.Name

    /// A constant, integers without a decimal point.
    static member Number(c: float) =
        if c = Math.Round c && abs c < 1e15 then string (int64 c)
        else c.ToString("R", Globalization.CultureInfo.InvariantCulture)

    /// A user expression written out (named intermediates by their names, at step t).
    static member Expr(style: NotationStyle, e: Expr) : string =
        let latex = style = NotationStyle.Latex
        let odot = if latex then " \\odot " else " ⊙ "
        let minus = if latex then " - " else " − "
        let space = if latex then "\\, " else " "
        let paren (s: string) = if latex then "\\left(" + s + "\\right)" else "(" + s + ")"
        // Precedence: 0 sum, 1 product, 2 atom.
        let rec go (e: Expr) : string * int =
            match e with
            | Expr.Input -> Notation.Symbol(style, Some "t", "x"), 2
            | Expr.Previous p -> Notation.Symbol(style, Some "t-1", p), 2
            | Expr.Parameter b -> Notation.Symbol(style, None, b.Symbol), 2
            | Expr.Constant c -> Notation.Number c, 2
            | Expr.Named(n, _) -> Notation.Symbol(style, Some "t", n), 2
            | Expr.MatVec(w, v) -> Notation.Symbol(style, None, w.Symbol) + space + prec 2 v, 1
            | Expr.Bilinear(u, x, z) -> Notation.Symbol(style, None, u.Symbol) + paren (fst (go z)) + space + prec 2 x, 1
            | Expr.Add(a, b) -> fst (go a) + " + " + prec 0 b, 0
            | Expr.Subtract(a, b) -> fst (go a) + minus + prec 1 b, 0
            | Expr.Negate a -> (if latex then "-" else "−") + prec 1 a, 0
            | Expr.Hadamard(Expr.Constant c, a) -> Notation.Number c + space + prec 1 a, 1
            | Expr.Hadamard(a, b) -> prec 1 a + odot + prec 1 b, 1
            | Expr.Apply(Nonlinearity.Identity, a) -> go a
            | Expr.Apply(f, a) -> Notation.Nonlinearity(style, f) + paren (fst (go a)), 2
            | Expr.Concat parts ->
                let inner = parts |> List.map (go >> fst)
                (if latex then "\\begin{bmatrix} " + String.Join(" \\\\ ", inner) + " \\end{bmatrix}"
                 else "[" + String.Join("; ", inner) + "]"), 2
            | Expr.Slice(a, s, c) -> (if latex then $"{prec 2 a}_{{[{s}:{s + c}]}}" else $"{prec 2 a}[{s}:{s + c}]"), 2
        and prec (p: int) (e: Expr) =
            let s, q = go e
            if q < p then paren s else s
        fst (go e)

/// References to parameter blocks, for equations.
[<RequireQualifiedAccess>]
module Block =
    /// The whole block called name, written as its name.
    [<CompiledName("Named")>]
    let named (name: string) : BlockRef = { Block = name; Rows = None; Symbol = name }

    /// Rows start .. start + count − 1 of the block called name, written as symbol (e.g. rows
    /// 0..H of weight_hh written U_r).
    [<CompiledName("Rows")>]
    let rows (name: string) (start: int) (count: int) (symbol: string) : BlockRef =
        { Block = name; Rows = Some(start, count); Symbol = symbol }

    /// The same reference written as symbol.
    [<CompiledName("WithSymbol")>]
    let withSymbol (symbol: string) (r: BlockRef) : BlockRef = { r with Symbol = symbol }

/// Building expressions: the leaves, the nonlinearities and the structural operations (the
/// arithmetic is on the operators of Expr).
[<RequireQualifiedAccess>]
module Expr =
    /// x_t.
    [<CompiledName("Input")>]
    let input = Expr.Input
    /// The part called name of s_{t−1}.
    [<CompiledName("Previous")>]
    let previous (part: string) = Expr.Previous part
    /// A vector block of θ (or rows of it).
    [<CompiledName("Parameter")>]
    let parameter (r: BlockRef) = Expr.Parameter r
    /// The whole vector block called name.
    [<CompiledName("Vector")>]
    let vector (name: string) = Expr.Parameter(Block.named name)
    /// A scalar constant.
    [<CompiledName("Constant")>]
    let constant (c: float) = Expr.Constant c
    /// W v.
    [<CompiledName("MatVec")>]
    let matVec (w: BlockRef) (v: Expr) = Expr.MatVec(w, v)
    /// The multiplicative module U(z) x: (U(z) x)_i = Σ_jk U_ijk x_j z_k for a [m; n; d] block U.
    [<CompiledName("Bilinear")>]
    let bilinear (u: BlockRef) (x: Expr) (z: Expr) = Expr.Bilinear(u, x, z)
    /// σ(e).
    [<CompiledName("Sigmoid")>]
    let sigmoid (e: Expr) = Expr.Apply(Nonlinearity.Sigmoid, e)
    /// tanh(e).
    [<CompiledName("Tanh")>]
    let tanh (e: Expr) = Expr.Apply(Nonlinearity.Tanh, e)
    /// ReLU(e) = max(e, 0).
    [<CompiledName("Relu")>]
    let relu (e: Expr) = Expr.Apply(Nonlinearity.Relu, e)
    /// f(e) for a nonlinearity of the user's.
    [<CompiledName("Map")>]
    let map (f: ElementwiseFunction) (e: Expr) = Expr.Apply(Nonlinearity.Function f, e)
    /// The intermediate e, called name (written name_t).
    [<CompiledName("Named")>]
    let named (name: string) (e: Expr) = Expr.Named(name, e)
    /// [e₁; e₂; …].
    [<CompiledName("Concat")>]
    let concat (parts: Expr list) = Expr.Concat parts
    /// Entries start .. start + count − 1 of e.
    [<CompiledName("Slice")>]
    let slice (start: int) (count: int) (e: Expr) = Expr.Slice(e, start, count)

/// The named parts of a state s = [part₁; part₂; …]; the first is the output h.
type StatePart =
    { /// The part's name, e.g. "h" or "c"; s_{t−1}'s part is written h_{t−1}.
      Name: string
      /// Its width.
      Size: int }

/// A recurrent cell written as equations: s_t's parts as expressions of x_t, s_{t−1} and θ.
[<NoComparison; NoEquality>]
type CellEquations =
    { /// A short name, e.g. "mgu".
      Name: string
      /// I: width of x_t.
      InputSize: int
      /// The parts of the state in order; the first is the output h_t (H = its size).
      State: StatePart list
      /// The named blocks of θ, in the order they are stored.
      Layout: ParameterLayout
      /// The new value of every state part, by name.
      Updates: (string * Expr) list }

/// One node of a checked cell's graph; children are node ids (smaller than the node's own).
type internal NodeKind =
    | NInput
    | NPrevious of part: string
    | NParameter of BlockRef
    | NConstant of float
    | NMatVec of BlockRef * int
    | NBilinear of BlockRef * int * int
    /// Σ_k sign_k · term_k (sums, differences and negations flattened).
    | NSum of (float * int) list
    | NMul of int * int
    | NApply of Nonlinearity * int
    /// φ'(a), elementwise: appears in derived expressions.
    | NDeriv of Nonlinearity * int
    | NConcat of int list
    | NSlice of int * start: int * count: int
    /// Entries offset .. offset + size − 1 of the input projection px_t (step graphs only).
    | NProjected of offset: int * size: int

/// A cell's equations checked and interned as a graph: equal subexpressions are one node, node
/// ids are a topological order (children first), and every node knows its size (0 for a scalar).
type internal Graph(equations: CellEquations) =
    do Check.notNull "equations" (box equations)
    let fail (message: string) : 'a = Check.fail "equations" $"equations of '{equations.Name}': {message}"
    let text (e: Expr) =
        let s = Notation.Expr(NotationStyle.Unicode, e)
        if s.Length > 120 then s.Substring(0, 117) + "..." else s
    let shapeText (size: int) = if size = 0 then "a scalar" else $"[{size}]"
    let kinds = ResizeArray<NodeKind>()
    let sizes = ResizeArray<int>()
    let index = Dictionary<NodeKind, int>(HashIdentity.Structural)
    let names = Dictionary<int, string>()
    let byName = Dictionary<string, int>()
    let layout = equations.Layout
    let parts =
        equations.State
        |> List.mapFold (fun offset (p: StatePart) -> (p.Name, offset, p.Size), offset + p.Size) 0
        |> fst

    let block (role: string) (dims: int) (r: BlockRef) (where: Expr) =
        let b =
            match layout.Blocks |> List.tryFind (fun b -> b.Name = r.Block) with
            | Some b -> b
            | None ->
                let known = String.Join(", ", layout.Blocks |> List.map _.Name)
                fail $"'{text where}' uses the undeclared parameter block '{r.Block}'; the layout declares {known}."
        if b.Shape.Length <> dims then
            let shape = "[" + String.Join("; ", b.Shape) + "]"
            fail $"'{text where}' uses block '{r.Block}' as a {role} ({dims} dimensions), but it is {shape}."
        let rows = int b.Shape[0]
        match r.Rows with
        | Some(start, count) when start < 0 || count <= 0 || start + count > rows ->
            fail $"'{text where}' takes rows {start}..{start + count - 1} of block '{r.Block}', which has rows 0..{rows - 1}."
        | Some(_, count) -> count, b.Shape |> Array.map int
        | None -> rows, b.Shape |> Array.map int

    let sizeOf (kind: NodeKind) =
        let s (i: int) = sizes[i]
        match kind with
        | NInput -> equations.InputSize
        | NPrevious p -> parts |> List.pick (fun (n, _, size) -> if n = p then Some size else None)
        | NParameter r
        | NMatVec(r, _)
        | NBilinear(r, _, _) ->
            let b = layout.Block r.Block
            match r.Rows with Some(_, count) -> count | None -> int b.Shape[0]
        | NConstant _ -> 0
        | NSum terms -> terms |> List.map (snd >> s) |> List.max
        | NMul(a, b) -> max (s a) (s b)
        | NApply(_, a) | NDeriv(_, a) -> s a
        | NConcat xs -> xs |> List.sumBy s
        | NSlice(_, _, count) -> count
        | NProjected(_, size) -> size

    let intern (kind: NodeKind) =
        match index.TryGetValue kind with
        | true, id -> id
        | _ ->
            let id = kinds.Count
            let size = sizeOf kind
            kinds.Add kind
            sizes.Add size
            index[kind] <- id
            id

    let resolved = Dictionary<Expr, int>(HashIdentity.Reference)
    let rec resolve (e: Expr) : int =
        match resolved.TryGetValue e with
        | true, id -> id
        | _ ->
            let id = resolveNew e
            resolved[e] <- id
            id
    and terms (sign: float) (e: Expr) : (float * int) list =
        match e with
        | Expr.Add(a, b) -> terms sign a @ terms sign b
        | Expr.Subtract(a, b) -> terms sign a @ terms (-sign) b
        | Expr.Negate a -> terms (-sign) a
        | _ -> [ sign, resolve e ]
    and resolveNew (e: Expr) : int =
        match e with
        | Expr.Input -> intern NInput
        | Expr.Previous p ->
            if not (parts |> List.exists (fun (n, _, _) -> n = p)) then
                let known = String.Join(", ", parts |> List.map (fun (n, _, _) -> n))
                fail $"'{text e}' reads the state part '{p}', but the state has parts {known}."
            intern (NPrevious p)
        | Expr.Parameter r ->
            block "vector" 1 r e |> ignore
            intern (NParameter r)
        | Expr.Constant c ->
            if not (Double.IsFinite c) then fail $"the constant {c} is not finite."
            intern (NConstant c)
        | Expr.MatVec(r, v) ->
            let _, shape = block "matrix" 2 r e
            let vi = resolve v
            if sizes[vi] <> shape[1] then
                let rows = match r.Rows with Some(_, c) -> c | None -> shape[0]
                fail $"in '{text e}', {r.Symbol} is [{rows}; {shape[1]}] but '{text v}' is {shapeText sizes[vi]}."
            intern (NMatVec(r, vi))
        | Expr.Bilinear(r, x, z) ->
            let _, shape = block "three-way tensor" 3 r e
            let xi, zi = resolve x, resolve z
            let rows = match r.Rows with Some(_, c) -> c | None -> shape[0]
            if sizes[xi] <> shape[1] then
                fail $"in '{text e}', {r.Symbol} is [{rows}; {shape[1]}; {shape[2]}] but its vector '{text x}' is {shapeText sizes[xi]} (expected [{shape[1]}])."
            if sizes[zi] <> shape[2] then
                fail $"in '{text e}', {r.Symbol} is [{rows}; {shape[1]}; {shape[2]}] but its context '{text z}' is {shapeText sizes[zi]} (expected [{shape[2]}])."
            intern (NBilinear(r, xi, zi))
        | Expr.Add _ | Expr.Subtract _ | Expr.Negate _ ->
            let ts = terms 1.0 e
            let vectors = ts |> List.filter (fun (_, i) -> sizes[i] > 0)
            match vectors with
            | (_, first) :: rest ->
                match rest |> List.tryFind (fun (_, i) -> sizes[i] <> sizes[first]) with
                | Some(_, other) ->
                    fail $"in '{text e}', the terms have different sizes: {shapeText sizes[first]} and {shapeText sizes[other]}."
                | None -> ()
            | [] -> ()
            match ts with
            | [ 1.0, single ] -> single
            | _ -> intern (NSum ts)
        | Expr.Hadamard(a, b) ->
            let ai, bi = resolve a, resolve b
            if sizes[ai] > 0 && sizes[bi] > 0 && sizes[ai] <> sizes[bi] then
                fail $"in '{text e}', '{text a}' is {shapeText sizes[ai]} but '{text b}' is {shapeText sizes[bi]}."
            intern (NMul(ai, bi))
        | Expr.Apply(Nonlinearity.Identity, a) -> resolve a
        | Expr.Apply(f, a) -> intern (NApply(f, resolve a))
        | Expr.Concat [] -> fail "a concatenation needs at least one vector."
        | Expr.Concat xs ->
            let ids = xs |> List.map resolve
            match List.tryFindIndex (fun i -> sizes[i] = 0) ids with
            | Some k -> fail $"in '{text e}', part {k + 1} ('{text xs[k]}') is a scalar; only vectors can be stacked."
            | None -> ()
            match ids with
            | [ single ] -> single
            | _ -> intern (NConcat ids)
        | Expr.Slice(a, start, count) ->
            let ai = resolve a
            if start < 0 || count <= 0 || start + count > sizes[ai] then
                fail $"'{text e}' takes entries {start}..{start + count - 1} of '{text a}', which is {shapeText sizes[ai]}."
            if start = 0 && count = sizes[ai] then ai else intern (NSlice(ai, start, count))
        | Expr.Named(name, a) ->
            if String.IsNullOrWhiteSpace name then fail $"an intermediate needs a name, but got '{name}'."
            if parts |> List.exists (fun (n, _, _) -> n = name) then
                fail $"the intermediate '{name}' has the name of a state part; give it another name."
            let ai = resolve a
            match byName.TryGetValue name with
            | true, other when other <> ai -> fail $"the name '{name}' is given to two different expressions."
            | _ -> ()
            if not (names.ContainsKey ai) then names[ai] <- name
            byName[name] <- ai
            ai

    do
        if String.IsNullOrWhiteSpace equations.Name then fail "expected a name."
        if equations.InputSize <= 0 then fail $"expected a positive input size I, but got {equations.InputSize}."
        if equations.State.IsEmpty then fail "expected at least one state part."
        for p in equations.State do
            if p.Size <= 0 then fail $"state part '{p.Name}': expected a positive size, but got {p.Size}."
        match equations.State |> List.countBy _.Name |> List.tryFind (fun (_, n) -> n > 1) with
        | Some(name, _) -> fail $"the state part '{name}' is declared twice."
        | None -> ()
        for name, _ in equations.Updates do
            if not (equations.State |> List.exists (fun p -> p.Name = name)) then
                let known = String.Join(", ", equations.State |> List.map _.Name)
                fail $"an update is given for '{name}', which is not a state part (the parts are {known})."
        match equations.Updates |> List.countBy fst |> List.tryFind (fun (_, n) -> n > 1) with
        | Some(name, _) -> fail $"the state part '{name}' is updated twice."
        | None -> ()

    // Resolved in the order the updates are given, so intermediates are numbered (and written
    // out) in the order the updates use them.
    let updates =
        let ids =
            equations.Updates
            |> List.map (fun (part, e) ->
                let id = resolve e
                let size = (equations.State |> List.find (fun p -> p.Name = part)).Size
                if sizes[id] <> size then
                    fail $"the update of '{part}' ('{text e}') is {shapeText sizes[id]}, but the part is [{size}]."
                part, id)
            |> dict
        [| for p in equations.State ->
               match ids.TryGetValue p.Name with
               | true, id -> id
               | _ -> fail $"the state part '{p.Name}' has no update; give its new value {p.Name}_t." |]

    /// The equations the graph was made from.
    member _.Equations = equations
    /// Number of nodes.
    member _.Count = kinds.Count
    member _.Kind(id: int) = kinds[id]
    member _.Size(id: int) = sizes[id]
    /// The user's name of a node, if it has one.
    member _.NameOf(id: int) = match names.TryGetValue id with | true, n -> Some n | _ -> None
    /// The named intermediates, in definition order.
    member _.Names = names |> Seq.sortBy (fun kv -> kv.Key) |> Seq.map (fun kv -> kv.Key, kv.Value) |> List.ofSeq
    /// (name, offset, size) of every state part, in order.
    member _.Parts = parts
    /// The node of every part's update, in the order of the parts.
    member _.Updates = updates
    /// S.
    member _.StateSize = parts |> List.sumBy (fun (_, _, size) -> size)
    /// The node of a kind, if the graph has it.
    member _.Find(kind: NodeKind) = match index.TryGetValue kind with | true, id -> Some id | _ -> None
    /// A node for a kind, interned (derived expressions are made this way).
    member _.Intern(kind: NodeKind) = intern kind
    /// The node of an expression of the user's (checked).
    member _.Resolve(e: Expr) = resolve e
