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
      /// Whether Transition also accepts θ as [B; P] (a copy of the parameters per row); lets
      /// autodiff compute per-row parameter Jacobians in one backward pass.
      RowParameters: bool
      /// Half-width a of the uniform U(−a, a) initialisation of θ.
      InitScale: float
      /// The cell's equations, for printing.
      Equations: string }
    /// P: number of parameters.
    member c.ParameterCount = int c.Layout.Count
    override c.ToString() =
        $"{c.Name} (I = {c.InputSize}, H = {c.HiddenSize}, S = {c.StateSize}, P = {c.ParameterCount})"
    /// What F# Interactive shows: the name and the sizes.
    member c.Display = c.ToString()

[<RequireQualifiedAccess>]
module Cell =
    /// A user-defined cell: its transition s_t = f(θ, x_t, s_{t−1}) over a parameter layout. The
    /// first hiddenSize entries of the state are its output. It unrolls, trains and is verified by
    /// autodiff like a built-in cell; add hand-derived Jacobians with Cell.withJacobians.
    [<CompiledName("Custom")>]
    let custom (name: string) (inputSize: int) (hiddenSize: int) (stateSize: int) (layout: ParameterLayout)
               (transition: Tensor -> Tensor -> Tensor -> Tensor) : Cell =
        Native.ensure ()
        Check.positive (nameof inputSize) inputSize
        Check.positive (nameof hiddenSize) hiddenSize
        Check.positive (nameof stateSize) stateSize
        if hiddenSize > stateSize then
            Check.fail (nameof hiddenSize) $"hiddenSize: expected at most stateSize = {stateSize}, but got {hiddenSize}."
        { Name = name
          InputSize = inputSize
          HiddenSize = hiddenSize
          StateSize = stateSize
          Layout = layout
          Transition = transition
          InputProjection = None
          ProjectedTransition = None
          Jacobians = None
          RowParameters = false
          InitScale = 1.0 / sqrt (float hiddenSize)
          Equations = "user-defined" }

    /// A built-in cell from its input projection, its projected transition and its hand-derived
    /// Jacobians, with Transition θ x s = projected θ (project θ x) s (views of θ taken once per
    /// unroll: `projected θ` is applied once, then stepped).
    let internal fromProjection (name: string) (inputSize: int) (hiddenSize: int) (stateSize: int) (layout: ParameterLayout)
                                (equations: string) (project: Tensor -> Tensor -> Tensor)
                                (projected: Tensor -> Tensor -> Tensor -> Tensor)
                                (jacobians: Tensor -> Tensor -> Tensor -> StepJacobians) : Cell =
        { Name = name
          InputSize = inputSize
          HiddenSize = hiddenSize
          StateSize = stateSize
          Layout = layout
          Transition = (fun theta -> let step = projected theta in fun x s -> step (project theta x) s)
          InputProjection = Some project
          ProjectedTransition = Some projected
          Jacobians = Some jacobians
          RowParameters = true
          InitScale = 1.0 / sqrt (float hiddenSize)
          Equations = equations }

    /// The cell with hand-derived Jacobians (c_t, b_t) = jacobians θ x_t s_{t−1}.
    [<CompiledName("WithJacobians")>]
    let withJacobians (jacobians: Tensor -> Tensor -> Tensor -> StepJacobians) (cell: Cell) =
        { cell with Jacobians = Some jacobians }

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
    [<CompiledName("InitParameters")>]
    let initParameters (cell: Cell) (dtype: torch.ScalarType) (generator: torch.Generator) : Tensor =
        Native.ensure ()
        let u = torch.rand([| int64 cell.ParameterCount |], dtype = dtype, generator = generator)
        (u * 2.0 - 1.0) * cell.InitScale
