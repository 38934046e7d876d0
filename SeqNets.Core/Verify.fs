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
      /// Time for the hand-derived c_t, b_t and the closed-form sum.
      ClosedFormTime: System.TimeSpan
      /// Time for the hand-derived c_t, b_t and the recurrence.
      RecurrenceTime: System.TimeSpan
      /// Time for reverse-mode autodiff of ∂s_t/∂θ.
      AutodiffTime: System.TimeSpan }
    /// The largest of the four disagreements.
    member r.WorstError =
        List.max [ r.StateJacobianError; r.ParameterJacobianError; r.RecurrenceVsClosedForm; r.ClosedFormVsAutodiff ]

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

    /// Every route to ∂s_t/∂θ on one case, compared. Needs a cell with hand-derived Jacobians.
    [<CompiledName("Identity")>]
    let identity (cell: Cell) (case: VerificationCase) : IdentityResult =
        use _ = SignalShield.enter ()
        use _ = torch.NewDisposeScope()
        let theta, xs, s0 = case.Theta, case.Inputs, case.InitialState
        let states = Recurrence.unroll cell theta xs s0
        let (j, closed), tClosed = timed (fun () -> let j = Bptt.jacobians cell theta xs states in j, Bptt.byClosedForm j)
        let recurrence, tRec = timed (fun () -> Bptt.byRecurrence (Bptt.jacobians cell theta xs states))
        let autodiff, tAuto = timed (fun () -> Bptt.byAutodiff cell theta xs s0)
        let ja = Bptt.jacobiansByAutodiff cell theta xs states
        { StateJacobianError = Tensors.relativeError j.State ja.State
          ParameterJacobianError = Tensors.relativeError j.Parameters ja.Parameters
          RecurrenceVsClosedForm = Tensors.relativeError recurrence closed
          ClosedFormVsAutodiff = Tensors.relativeError closed autodiff
          Magnitude = Tensors.maxAbs autodiff
          ClosedFormTime = tClosed
          RecurrenceTime = tRec
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
