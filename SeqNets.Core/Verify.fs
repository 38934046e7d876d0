/// Checking the closed-form BPTT identity of a cell against autodiff on concrete cases.
/// Legend: T time, B batch, I input, S state, P parameters.
namespace SeqNets

open System.Diagnostics
open TorchSharp

/// How large the random weights of a verification case are.
type Regime =
    /// θ scaled by 0.1: products of c_j shrink and gradients vanish.
    | Vanishing
    /// PyTorch's default initialisation.
    | Moderate
    /// θ scaled by 3: products of c_j can grow and gradients explode.
    | Exploding
    member r.Scale = match r with Vanishing -> 0.1 | Moderate -> 1.0 | Exploding -> 3.0

/// One concrete trajectory to verify on.
[<NoComparison; NoEquality>]
type VerificationCase =
    { Theta: Tensor
      Inputs: Tensor
      InitialState: Tensor
      Regime: Regime }

/// Largest relative disagreements (max |x − y| / max |y|) and the time each route took.
type IdentityResult =
    { /// Hand-derived c_t against autodiff's.
      StateJacobianError: float
      /// Hand-derived b_t against autodiff's.
      ParameterJacobianError: float
      /// (a) recurrence against (b) closed form.
      RecurrenceVsClosedForm: float
      /// (b) closed form against (c) autodiff.
      ClosedFormVsAutodiff: float
      /// Largest |∂s_t/∂θ| of the case (how far it vanished or exploded).
      Magnitude: float
      /// Whether the closed form used the cell's hand-derived c_t, b_t (false: autodiff's local
      /// Jacobians, for a cell without them; the two Jacobian errors are then 0 by construction).
      HandDerived: bool
      /// Time for the hand-derived c_t, b_t and the closed-form sum.
      ClosedFormTime: System.TimeSpan
      /// Time for the hand-derived c_t, b_t and the recurrence.
      RecurrenceTime: System.TimeSpan
      /// Time for reverse-mode autodiff of ∂s_t/∂θ.
      AutodiffTime: System.TimeSpan }
    /// The largest of the four disagreements.
    member r.WorstError =
        List.max [ r.StateJacobianError; r.ParameterJacobianError; r.RecurrenceVsClosedForm; r.ClosedFormVsAutodiff ]

/// ∂h_t/∂θ at one step by the closed form (one suffix sweep) against reverse-mode autodiff at that
/// step: the check of the identity that scales to long sequences.
type StepIdentityResult =
    { /// The step t checked.
      Step: int
      /// Closed form (sweep over c_j and b_j) against autodiff, max |x − y| / max |y|.
      ClosedFormVsAutodiff: float
      /// Largest |∂h_t/∂θ|.
      Magnitude: float
      /// Time of the unroll, the Jacobians of steps 1..t and the sweep.
      ClosedFormTime: System.TimeSpan
      /// Time of reverse-mode autodiff of ∂h_t/∂θ.
      AutodiffTime: System.TimeSpan }

[<RequireQualifiedAccess>]
module Verify =
    /// A random case: θ from the cell's initialisation times the regime's scale, inputs and s_0
    /// standard normal, T steps of B rows.
    [<CompiledName("RandomCase")>]
    let randomCase (cell: Cell) (dtype: torch.ScalarType) (regime: Regime) (steps: int) (batch: int) (generator: torch.Generator) =
        Check.positive "steps" steps
        Check.positive "batch" batch
        { Theta = Cell.initParameters cell dtype generator * regime.Scale
          Inputs = torch.randn([| int64 steps; int64 batch; int64 cell.InputSize |], dtype = dtype, generator = generator)
          InitialState = torch.randn([| int64 batch; int64 cell.StateSize |], dtype = dtype, generator = generator) * 0.5
          Regime = regime }

    let private timed f =
        let sw = Stopwatch.StartNew()
        let r = f ()
        r, sw.Elapsed

    /// Every route to ∂s_t/∂θ on one case, compared. A cell without hand-derived Jacobians is
    /// checked with autodiff's local c_t, b_t in the closed form (Bptt.localJacobians): the
    /// recurrence, the closed-form sum and reverse mode through the whole graph must still agree.
    [<CompiledName("Identity")>]
    let identity (cell: Cell) (case: VerificationCase) : IdentityResult =
        use _ = SignalShield.enter ()
        use _ = torch.NewDisposeScope()
        let theta, xs, s0 = case.Theta, case.Inputs, case.InitialState
        let states = Recurrence.unroll cell theta xs s0
        let (j, closed), tClosed = timed (fun () -> let j = Bptt.localJacobians cell theta xs states in j, Bptt.byClosedForm j)
        let recurrence, tRec = timed (fun () -> Bptt.byRecurrence (Bptt.localJacobians cell theta xs states))
        let autodiff, tAuto = timed (fun () -> Bptt.byAutodiff cell theta xs s0)
        let ja = Bptt.jacobiansByAutodiff cell theta xs states
        { StateJacobianError = Tensors.relativeError j.State ja.State
          ParameterJacobianError = Tensors.relativeError j.Parameters ja.Parameters
          RecurrenceVsClosedForm = Tensors.relativeError recurrence closed
          ClosedFormVsAutodiff = Tensors.relativeError closed autodiff
          Magnitude = Tensors.maxAbs autodiff
          HandDerived = cell.Jacobians.IsSome
          ClosedFormTime = tClosed
          RecurrenceTime = tRec
          AutodiffTime = tAuto }

    /// ∂h_t/∂θ at step t (1-based) of one case by the closed form (Bptt.outputAtStep: structured b_t
    /// when the cell has it, dense otherwise) against autodiff (Bptt.outputByAutodiffAt), timed.
    [<CompiledName("IdentityAt")>]
    let identityAt (cell: Cell) (case: VerificationCase) (t: int) : StepIdentityResult =
        use _ = SignalShield.enter ()
        use _ = torch.NewDisposeScope()
        let theta, xs, s0 = case.Theta, case.Inputs, case.InitialState
        let closed, tClosed =
            timed (fun () ->
                let states = Recurrence.unroll cell theta xs s0
                Bptt.outputAtStep cell theta xs states t)
        let autodiff, tAuto = timed (fun () -> Bptt.outputByAutodiffAt cell theta xs s0 t)
        { Step = t
          ClosedFormVsAutodiff = Tensors.relativeError closed autodiff
          Magnitude = Tensors.maxAbs autodiff
          ClosedFormTime = tClosed
          AutodiffTime = tAuto }

    /// The built-in cells at the given sizes: Elman (tanh, ReLU), GRU (lecture and PyTorch
    /// forms), LSTM and the multiplicative RNN (with H + 1 factors).
    [<CompiledName("BuiltInCells")>]
    let builtInCells (inputSize: int) (hiddenSize: int) : Cell list =
        [ Cells.Elman.create Cells.Tanh inputSize hiddenSize
          Cells.Elman.create Cells.Relu inputSize hiddenSize
          Cells.Gru.create Cells.Lecture inputSize hiddenSize
          Cells.Gru.create Cells.PyTorch inputSize hiddenSize
          Cells.Lstm.create inputSize hiddenSize
          Cells.MultiplicativeRnn.create inputSize hiddenSize (hiddenSize + 1) ]
