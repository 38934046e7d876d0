/// Cells written as equations, from F#: open this module and write a cell as the lecture does,
///
///   let h = previous "h"
///   let z = named "z" (σ (W_z * x + U_z * h + b_z))
///   let hNext = z * h + (1.0 - z) * tanh (W_h * x + U_h * (r * h) + b_h)
///
/// with `W * v` the matrix–vector product, `a * b` the Hadamard product ⊙, `1.0 - z`, σ, tanh and
/// relu. `cell` makes a Cell whose c_t and b_t SeqNets derives by rules, so every route of Rnn and
/// Bptt applies to it with no hand-written Jacobian; `derive` and `show` write the derivation out.
namespace SeqNets.FSharp

open SeqNets

module Symbolic =
    /// x_t, the step's input.
    [<CompiledName("X")>]
    let x: Expr = Expr.Input

    /// The part called name of the previous state s_{t−1}, e.g. previous "h" is h_{t−1}.
    [<CompiledName("Previous")>]
    let previous (part: string) : Expr =
        Args.notNull (nameof part) (box part)
        Expr.Previous part

    /// The matrix block called name (for W * v).
    [<CompiledName("Matrix")>]
    let matrix (name: string) : BlockRef =
        Args.notNull (nameof name) (box name)
        Block.named name

    /// Rows start .. start + count − 1 of the block called name, written as symbol (e.g. the r rows
    /// of PyTorch's weight_hh written U_r).
    [<CompiledName("Rows")>]
    let rows (name: string) (start: int) (count: int) (symbol: string) : BlockRef =
        Args.notNull (nameof name) (box name)
        Args.notNull (nameof symbol) (box symbol)
        Block.rows name start count symbol

    /// The vector block called name (a bias, or a vector such as IndRNN's u).
    [<CompiledName("Vector")>]
    let vector (name: string) : Expr =
        Args.notNull (nameof name) (box name)
        Expr.vector name

    /// Rows start .. start + count − 1 of the vector block called name, written as symbol.
    [<CompiledName("VectorRows")>]
    let vectorRows (name: string) (start: int) (count: int) (symbol: string) : Expr = Expr.parameter (rows name start count symbol)

    /// σ(e), the logistic function.
    [<CompiledName("Sigma")>]
    let σ (e: Expr) : Expr = Expr.sigmoid e

    /// σ(e), for those who prefer letters.
    [<CompiledName("Sigmoid")>]
    let sigmoid (e: Expr) : Expr = Expr.sigmoid e

    /// ReLU(e) = max(e, 0).
    [<CompiledName("Relu")>]
    let relu (e: Expr) : Expr = Expr.relu e

    /// The intermediate e called name: evaluated once and written name_t.
    [<CompiledName("Named")>]
    let named (name: string) (e: Expr) : Expr =
        Args.notNull (nameof name) (box name)
        Expr.named name e

    /// [e₁; e₂; …].
    [<CompiledName("Concat")>]
    let concat (parts: Expr list) : Expr = Expr.concat parts

    /// Entries start .. start + count − 1 of e.
    [<CompiledName("Slice")>]
    let slice (start: int) (count: int) (e: Expr) : Expr = Expr.slice start count e

    /// The multiplicative module U(z) v: (U(z) v)_i = Σ_jk U_ijk v_j z_k for a [m; n; d] block U.
    [<CompiledName("Bilinear")>]
    let bilinear (u: BlockRef) (v: Expr) (z: Expr) : Expr = Expr.bilinear u v z

    /// An elementwise function of your own (forward and, for the rules, its derivative).
    [<CompiledName("Map")>]
    let map (name: string) (forward: Tensor -> Tensor) (derivative: (Tensor -> Tensor) option) (e: Expr) : Expr =
        Expr.map (ElementwiseFunction(name, forward, derivative)) e

    /// The equations of a cell: name, input size I, state parts (name, size) in order (the first is
    /// the output h), parameter blocks (name, shape) in the order of θ, and each part's new value.
    [<CompiledName("Equations")>]
    let equations (name: string) (inputSize: int) (state: (string * int) list) (blocks: (string * int list) list) (updates: (string * Expr) list) : CellEquations =
        Args.notNull (nameof name) (box name)
        Args.notNull (nameof blocks) (box blocks)
        let layout = ParameterLayout(blocks |> List.map (fun (n, shape) -> n, shape |> List.map int64))
        Equations.create name inputSize state layout updates

    /// The cell of the equations (see equations), with c_t and b_t derived by rules.
    [<CompiledName("Cell")>]
    let cell (name: string) (inputSize: int) (state: (string * int) list) (blocks: (string * int list) list) (updates: (string * Expr) list) : Cell =
        Equations.cell (equations name inputSize state blocks updates)

    /// The derivation of equations: c_t and b_t by rules, and warnings.
    [<CompiledName("Derive")>]
    let derive (e: CellEquations) : Derivation = Equations.derive e

    /// A derivation written out as Unicode text: equations, the chain of rules, c_t, b_t and the identity for t = 1, 2, 3.
    [<CompiledName("Show")>]
    let show (d: Derivation) : string = Derivation.text d
