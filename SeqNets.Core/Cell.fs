/// A recurrent cell as a value: sizes, a parameter layout and pure functions of (θ, x_t, s_{t−1}).
///
///   s_t = f(x_t, s_{t−1}; θ)        h_t = the first H entries of s_t
///
/// The state s is one flat vector per batch row ([B; S]); for an LSTM s = [h; c], so S = 2H.
/// The hand-derived Jacobians of a cell are
///   c_t = ∂f/∂s_{t−1}  [B; S; S]      b_t = ∂f/∂θ  [B; S; P]
/// the two sequences of the lecture's identity ∂s_t/∂θ = b_t + Σ_{i<t} (Π_{j=i+1..t} c_j) b_i.
namespace SeqNets

open System
open TorchSharp

/// One term of b_t kept as a differential: for a use y = W[rows] v of a parameter block the term
/// maps dθ to J (dW[rows] v), J = ∂s_t/∂y, so its entries of b_t are J ⊗ vᵀ (θ row-major:
/// ∂s_i/∂W_jk = J_ij v_k). A bias has no factor (J itself); a three-way block U (the multiplicative
/// module, y = U(z) x) has two, x then z (J ⊗ xᵀ ⊗ zᵀ).
type ParameterTerm =
    { /// Where the term's entries start in θ (the block's offset plus its first row's).
      Offset: int64
      /// J = ∂s_t/∂y: [B; S; R] for R rows.
      Jacobian: Tensor
      /// The vectors the rows multiply, [B; K] each, in θ's order.
      Factors: Tensor list }
    /// Number of entries of θ the term covers: R · K₁ · K₂ ….
    member t.Count = t.Factors |> List.fold (fun n (f: Tensor) -> n * f.shape[int (f.dim ()) - 1]) t.Jacobian.shape[2]

/// The local derivatives of one step with b_t structured: c_t dense and b_t as a sum of terms, each
/// a Jacobian J with the vectors it is an outer product with (never a dense Kronecker block).
type StructuredJacobians =
    { /// c_t = ∂s_t/∂s_{t−1}: [B; S; S].
      State: Tensor
      /// b_t dθ = Σ_k J_k (dW_k v_k), terms in θ's order (terms may overlap: they add).
      Parameters: ParameterTerm list }

/// The local derivatives of one step, for every batch row.
type StepJacobians =
    { /// c_t = ∂s_t/∂s_{t−1}: [B; S; S].
      State: Tensor
      /// b_t = ∂s_t/∂θ (s_{t−1} held fixed): [B; S; P].
      Parameters: Tensor }

/// A recurrent cell. Build one with the functions of the Cells modules or Cell.custom.
[<NoComparison; NoEquality; StructuredFormatDisplay("{Display}")>]
type Cell =
    { /// A short name, e.g. "elman-tanh".
      Name: string
      /// I: width of x_t.
      InputSize: int
      /// H: width of the output h_t, the first H entries of the state.
      HiddenSize: int
      /// S: width of the flat state s_t.
      StateSize: int
      /// The named blocks of θ.
      Layout: ParameterLayout
      /// f(θ, x_t, s_{t−1}) = s_t, with x_t [B; I] and s_{t−1} [B; S].
      Transition: Tensor -> Tensor -> Tensor -> Tensor
      /// The part of the pre-activations that depends on the input alone: θ → x [..; I] → [..; G].
      /// Computing it for every step at once (one matrix product, or a table lookup for one-hot
      /// inputs) is how the fast path runs the same equations.
      InputProjection: (Tensor -> Tensor -> Tensor) option
      /// s_t from a projected input: θ → px_t [B; G] → s_{t−1} → s_t, so that
      /// Transition θ x s = ProjectedTransition θ (InputProjection θ x) s.
      ProjectedTransition: (Tensor -> Tensor -> Tensor -> Tensor) option
      /// The hand-derived (c_t, b_t), when the cell has them.
      Jacobians: (Tensor -> Tensor -> Tensor -> StepJacobians) option
      /// The hand-derived ∂s_t/∂x_t [B; S; I], when the cell has it: what a stack of cells needs to
      /// chain one layer's Jacobians through the next (Stack.fs).
      InputJacobian: (Tensor -> Tensor -> Tensor -> Tensor) option
      /// (c_t, b_t) with b_t kept structured (see StructuredJacobians), when the cell has them: cells
      /// written as equations (Equations.cell) and the built-in cells, from their equations.
      StructuredJacobians: (Tensor -> Tensor -> Tensor -> StructuredJacobians) option
      /// Whether Transition also accepts θ as [B; P] (a copy of the parameters per row); lets
      /// autodiff compute per-row parameter Jacobians in one backward pass.
      RowParameters: bool
      /// Half-width a of the uniform U(−a, a) initialisation of θ.
      InitScale: float
      /// For a stack of cells (Stack.create), its layers, bottom first; empty for a single cell.
      Components: Cell list
      /// The cell's equations, for printing.
      Equations: string }
    /// P: number of parameters, in 64 bits (a layout past 2³¹ scalars is legal; one past 2⁶³ is an
    /// ArgumentException when the layout is made).
    member c.ParameterCount = c.Layout.Count
    override c.ToString() =
        $"{c.Name} (I = {c.InputSize}, H = {c.HiddenSize}, S = {c.StateSize}, P = {c.ParameterCount})"
    /// What F# Interactive shows: the name and the sizes.
    member c.Display = c.ToString()

[<RequireQualifiedAccess>]
module Cell =
    let private fail (argument: string) (message: string) : 'a = raise (ArgumentException(message, argument))

    /// Checks a result of one of a cell's functions: [B; dims…], where B is the batch of x.
    let internal checkResult (cellName: string) (what: string) (argument: string) (legend: string) (x: Tensor) (dims: int64 list) (result: Tensor) =
        if isNull result then
            fail argument $"{argument}: cell '{cellName}': its {what} returned null, but expected a {legend} tensor."
        let expected = Array.ofList (x.shape[0] :: dims)
        if result.shape <> expected then
            let e = "[" + String.Join("; ", expected) + "]"
            fail argument
                $"{argument}: cell '{cellName}': its {what} returned shape {Check.shapeText result}, but expected {legend} = {e} (x_t is {Check.shapeText x})."

    /// The transition with its result's shape checked at every step ([B; S]), so that a user's
    /// function that returns the wrong shape is named at once rather than deep inside the unroll.
    let internal checkedTransition (name: string) (stateSize: int) (transition: Tensor -> Tensor -> Tensor -> Tensor) =
        fun (theta: Tensor) ->
            let step = transition theta
            fun (x: Tensor) (s: Tensor) ->
                let next = step x s
                checkResult name "transition" "transition" "[B; S]" x [ int64 stateSize ] next
                next

    /// A user-defined cell: its transition s_t = f(θ, x_t, s_{t−1}) over a parameter layout. The
    /// first hiddenSize entries of the state are its output. It unrolls, trains and is verified by
    /// autodiff like a built-in cell; add hand-derived Jacobians with Cell.withJacobians. The
    /// transition and the Jacobians are functions of each row: they are called with the rows of x
    /// and s, whatever their number (Bptt evaluates the Jacobians of many steps at once, the steps
    /// stacked as rows), so results take their row count from x.
    [<CompiledName("Custom")>]
    let custom (name: string) (inputSize: int) (hiddenSize: int) (stateSize: int) (layout: ParameterLayout)
               (transition: Tensor -> Tensor -> Tensor -> Tensor) : Cell =
        Native.ensure ()
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof hiddenSize) hiddenSize
        Check.positive (nameof stateSize) stateSize
        if hiddenSize > stateSize then
            Check.fail (nameof hiddenSize) $"hiddenSize: expected at most stateSize = {stateSize}, but got {hiddenSize}."
        Check.notNull (nameof layout) layout
        Check.notNull (nameof transition) transition
        if String.IsNullOrWhiteSpace name then Check.fail (nameof name) "name: expected a non-empty cell name, but got an empty one."
        { Name = name
          InputSize = inputSize
          HiddenSize = hiddenSize
          StateSize = stateSize
          Layout = layout
          Transition = checkedTransition name stateSize transition
          InputProjection = None
          ProjectedTransition = None
          Jacobians = None
          InputJacobian = None
          StructuredJacobians = None
          RowParameters = false
          InitScale = 1.0 / sqrt (float hiddenSize)
          Components = []
          Equations = "user-defined" }

    /// A built-in cell from its input projection, its projected transition and its hand-derived
    /// Jacobians, with Transition θ x s = projected θ (project θ x) s (views of θ taken once per
    /// unroll: `projected θ` is applied once, then stepped).
    let internal fromProjection (name: string) (inputSize: int) (hiddenSize: int) (stateSize: int) (layout: ParameterLayout)
                                (equations: string) (project: Tensor -> Tensor -> Tensor)
                                (projected: Tensor -> Tensor -> Tensor -> Tensor)
                                (jacobians: Tensor -> Tensor -> Tensor -> StepJacobians)
                                (inputJacobian: Tensor -> Tensor -> Tensor -> Tensor) : Cell =
        { Name = name
          InputSize = inputSize
          HiddenSize = hiddenSize
          StateSize = stateSize
          Layout = layout
          // Staged: θ's views are taken once per θ (per unroll), not once per step.
          Transition = (fun theta -> let step, proj = projected theta, project theta in fun x s -> step (proj x) s)
          InputProjection = Some project
          ProjectedTransition = Some projected
          Jacobians = Some jacobians
          InputJacobian = Some inputJacobian
          StructuredJacobians = None
          RowParameters = true
          InitScale = 1.0 / sqrt (float hiddenSize)
          Components = []
          Equations = equations }

    /// The cell with hand-derived Jacobians (c_t, b_t) = jacobians θ x_t s_{t−1}. Their shapes are
    /// checked at every call: c_t [B; S; S] and b_t [B; S; P], or an ArgumentException names the cell.
    [<CompiledName("WithJacobians")>]
    let withJacobians (jacobians: Tensor -> Tensor -> Tensor -> StepJacobians) (cell: Cell) =
        Check.notNull (nameof jacobians) jacobians
        let S, P = int64 cell.StateSize, int64 cell.ParameterCount
        let name = cell.Name
        let checkedJacobians theta (x: Tensor) s =
            let j = jacobians theta x s
            checkResult name "Jacobians' State (c_t)" "jacobians" "[B; S; S]" x [ S; S ] j.State
            checkResult name "Jacobians' Parameters (b_t)" "jacobians" "[B; S; P]" x [ S; P ] j.Parameters
            j
        // The given ones are the cell's now: structured Jacobians derived from other equations no longer apply.
        { cell with Jacobians = Some checkedJacobians; StructuredJacobians = None }

    /// The cell with a hand-derived input Jacobian ∂s_t/∂x_t = inputJacobian θ x_t s_{t−1}
    /// ([B; S; I], checked at every call), which lets a stack chain this cell's Jacobians through
    /// the layer above it.
    [<CompiledName("WithInputJacobian")>]
    let withInputJacobian (inputJacobian: Tensor -> Tensor -> Tensor -> Tensor) (cell: Cell) =
        Check.notNull (nameof inputJacobian) inputJacobian
        let S, I = int64 cell.StateSize, int64 cell.InputSize
        let name = cell.Name
        let checkedInput theta (x: Tensor) s =
            let e = inputJacobian theta x s
            checkResult name "input Jacobian (∂s_t/∂x_t)" "inputJacobian" "[B; S; I]" x [ S; I ] e
            e
        { cell with InputJacobian = Some checkedInput }

    /// Declares that the cell's transition accepts θ as [B; P] too (see Cell.RowParameters).
    [<CompiledName("WithRowParameters")>]
    let withRowParameters (cell: Cell) = { cell with RowParameters = true }

    let internal checkTheta (cell: Cell) (name: string) (theta: Tensor) =
        Check.notNull name theta
        Check.floating name theta
        Check.dims name "[P]" 1 theta
        Check.size name "[P]" 0 "P" (int64 cell.ParameterCount) theta

    let internal checkStep (cell: Cell) (theta: Tensor) (x: Tensor) (s: Tensor) =
        checkTheta cell "theta" theta
        Check.notNull "x" x
        Check.notNull "state" s
        Check.dims "x" "[B; I]" 2 x
        Check.size "x" "[B; I]" 1 "I" (int64 cell.InputSize) x
        Check.sameDtype "x" theta x
        Check.dims "state" "[B; S]" 2 s
        Check.size "state" "[B; S]" 1 "S" (int64 cell.StateSize) s
        Check.size "state" "[B; S]" 0 $"B (the batch of x)" x.shape[0] s
        Check.sameDtype "state" theta s

    /// The output h_t of a state s_t: its first H entries ([B; S] → [B; H]).
    [<CompiledName("Output")>]
    let output (cell: Cell) (s: Tensor) : Tensor = s.narrow(-1L, 0L, int64 cell.HiddenSize)

    /// One step, input → state → output × state: (h_t, s_t) for x_t [B; I] and s_{t−1} [B; S].
    [<CompiledName("Step")>]
    let step (cell: Cell) (theta: Tensor) (x: Tensor) (s: Tensor) : Tensor * Tensor =
        checkStep cell theta x s
        let s' = cell.Transition theta x s
        output cell s', s'

    /// The hand-derived (c_t, b_t) of one step; ArgumentException for a cell without them.
    [<CompiledName("StepJacobians")>]
    let jacobians (cell: Cell) (theta: Tensor) (x: Tensor) (s: Tensor) : StepJacobians =
        checkStep cell theta x s
        match cell.Jacobians with
        | Some j -> j theta x s
        | None -> Check.fail "cell" $"cell: expected a cell with hand-derived Jacobians, but '{cell.Name}' has none; use the autodiff route."

    /// Fresh parameters drawn from U(−a, a) with a = cell.InitScale (PyTorch's default for
    /// recurrent layers: a = 1/√H), from the given generator.
    /// A stack draws each layer's block with that layer's own scale, bottom layer first.
    [<CompiledName("InitParameters")>]
    let rec initParameters (cell: Cell) (dtype: torch.ScalarType) (generator: torch.Generator) : Tensor =
        Native.ensure ()
        match cell.Components with
        | [] ->
            let u = torch.rand([| int64 cell.ParameterCount |], dtype = dtype, generator = generator)
            (u * 2.0 - 1.0) * cell.InitScale
        | layers -> torch.cat([| for c in layers -> initParameters c dtype generator |], 0L)
