/// Recurrent networks as values and pipelines:
///
///   Rnn.lstm 3 5 |> Rnn.init 42 |> Rnn.unroll xs           // states [T+1; B; S]
///
/// A CellModel is a cell with its parameters θ; every function takes the model last, so that
/// analyses read as pipelines. ∂s_t/∂θ comes by any route of the lecture's identity
///   a_t = ∂s_t/∂θ = b_t + Σ_{i<t} (Π_{j=i+1..t} c_j) b_i,   a_t = b_t + c_t a_{t−1}
/// or by reverse-mode autodiff, and Rnn.identity compares them.
/// Legend: T time, B batch, I input, H hidden, S state, P parameters, K lags.
namespace SeqNets.FSharp

open System.Diagnostics
open TorchSharp
open SeqNets

/// A cell with its flat parameters θ ([P]) and their dtype.
[<NoComparison; NoEquality; StructuredFormatDisplay("{Display}")>]
type CellModel =
    { /// The cell: one step s_t = f(x_t, s_{t−1}; θ).
      Cell: Cell
      /// θ: [P], in the cell's parameter layout.
      Theta: Tensor
      /// The dtype of θ, of the inputs and of every result.
      Dtype: torch.ScalarType }
    /// The text F# Interactive shows, e.g. `lstm (I = 3, H = 5, S = 10, P = 200), float64, θ in [-0.447, 0.447]`.
    member n.Display = n.ToString()
    override n.ToString() =
        use _ = torch.no_grad ()
        let lo = (use m = n.Theta.min () in m.to_type(torch.float64).item<float> ())
        let hi = (use m = n.Theta.max () in m.to_type(torch.float64).item<float> ())
        $"{n.Cell}, {Show.dtype n.Dtype}, θ in [{lo:g3}, {hi:g3}]"

/// How θ of a fresh network is drawn: the cell's U(−a, a) initialisation times Scale.
type InitOptions =
    { /// Seed of the generator.
      Seed: int
      /// float64 (the default, for checking derivatives) or float32.
      Dtype: torch.ScalarType
      /// Factor on the cell's initialisation: below 1 gradients tend to vanish, above 1 to explode.
      Scale: float }

/// The route to ∂s_t/∂θ.
type Route =
    /// a_t = b_t + c_t a_{t−1} with the hand-derived c_t, b_t.
    | ByRecurrence
    /// a_t = b_t + Σ_{i<t} (Π_{j=i+1..t} c_j) b_i, term by term.
    | ByClosedForm
    /// The closed form keeping only its last τ terms (truncated BPTT).
    | ByTruncatedSum of tau: int
    /// Reverse-mode autodiff through the whole unrolled graph.
    | ByAutodiff

[<RequireQualifiedAccess>]
module Rnn =
    /// An Elman cell h_t = tanh(W x_t + b_ih + U h_{t−1} + b_hh) with I inputs and H hidden units.
    [<CompiledName("Elman")>]
    let elman (inputSize: int) (hiddenSize: int) : Cell = Cells.Elman.create Cells.Tanh inputSize hiddenSize

    /// An Elman cell with ReLU in place of tanh.
    [<CompiledName("ElmanRelu")>]
    let elmanRelu (inputSize: int) (hiddenSize: int) : Cell = Cells.Elman.create Cells.Relu inputSize hiddenSize

    /// A GRU in the lecture's form (the reset gate applied to h_{t−1} before U_n).
    [<CompiledName("Gru")>]
    let gru (inputSize: int) (hiddenSize: int) : Cell = Cells.Gru.create Cells.Lecture inputSize hiddenSize

    /// A GRU in PyTorch's nn.GRU form (the reset gate applied after U_n h_{t−1} + b_hn).
    [<CompiledName("GruPyTorch")>]
    let gruPyTorch (inputSize: int) (hiddenSize: int) : Cell = Cells.Gru.create Cells.PyTorch inputSize hiddenSize

    /// An LSTM with state s = [h; c] (S = 2H), in nn.LSTM's layout.
    [<CompiledName("Lstm")>]
    let lstm (inputSize: int) (hiddenSize: int) : Cell = Cells.Lstm.create inputSize hiddenSize

    /// A multiplicative RNN with the given number of factors.
    [<CompiledName("Multiplicative")>]
    let multiplicative (inputSize: int) (hiddenSize: int) (factors: int) : Cell =
        Cells.MultiplicativeRnn.create inputSize hiddenSize factors

    /// Seed 0, float64, the cell's own initialisation scale.
    [<CompiledName("Defaults")>]
    let defaults = { Seed = 0; Dtype = torch.float64; Scale = 1.0 }

    let private checkCell (cell: Cell) =
        Args.notNull (nameof cell) (box cell)

    let private checkNetwork (net: CellModel) =
        Args.notNull (nameof net) (box net)
        checkCell net.Cell
        Args.floating "net.Theta" net.Theta
        if net.Theta.dim () <> 1L || net.Theta.shape[0] <> int64 net.Cell.ParameterCount then
            Args.fail "net" $"net: expected θ of shape [{net.Cell.ParameterCount}] for {net.Cell}, but got {Args.shapeText net.Theta}."
        if net.Theta.dtype <> net.Dtype then
            Args.fail "net" $"net: expected θ of dtype {net.Dtype} (the network's Dtype), but got {net.Theta.dtype}."

    /// The network of a cell and given parameters θ ([P], float32 or float64).
    [<CompiledName("Network")>]
    let network (cell: Cell) (theta: Tensor) : CellModel =
        checkCell cell
        Args.floating (nameof theta) theta
        if theta.dim () <> 1L || theta.shape[0] <> int64 cell.ParameterCount then
            Args.fail (nameof theta) $"theta: expected shape [{cell.ParameterCount}] (P of {cell}), but got {Args.shapeText theta}."
        { Cell = cell; Theta = theta; Dtype = theta.dtype }

    /// A network with fresh parameters drawn as the options say.
    [<CompiledName("InitWith")>]
    let initWith (options: InitOptions) (cell: Cell) : CellModel =
        checkCell cell
        if options.Dtype <> torch.float32 && options.Dtype <> torch.float64 then
            Args.fail (nameof options) $"options: expected Dtype float32 or float64, but got {options.Dtype}."
        if not (System.Double.IsFinite options.Scale) then
            Args.fail (nameof options) $"options: expected a finite Scale, but got {options.Scale}."
        use g = new torch.Generator(uint64 (uint32 options.Seed))
        let theta = Cell.initParameters cell options.Dtype g * options.Scale // [P]
        { Cell = cell; Theta = theta; Dtype = options.Dtype }

    /// A float64 network with fresh parameters from the given seed (Rnn.defaults otherwise).
    [<CompiledName("Init")>]
    let init (seed: int) (cell: Cell) : CellModel = initWith { defaults with Seed = seed } cell

    /// The network with θ multiplied by k (k < 1 pushes towards vanishing, k > 1 towards exploding gradients).
    [<CompiledName("Scale")>]
    let scale (k: float) (net: CellModel) : CellModel =
        checkNetwork net
        { net with Theta = net.Theta * k }

    /// The zero initial state s_0 for a batch of B rows: [B; S].
    [<CompiledName("ZeroState")>]
    let zeroState (batch: int) (net: CellModel) : Tensor =
        checkNetwork net
        Args.positive (nameof batch) batch
        torch.zeros([| int64 batch; int64 net.Cell.StateSize |], dtype = net.Dtype)

    let private initial (xs: Tensor) (net: CellModel) =
        Args.floating (nameof xs) xs
        if xs.dim () <> 3L then
            Args.fail (nameof xs) $"xs: expected a [T; B; I] tensor (3 dimensions), but got shape {Args.shapeText xs}."
        if xs.shape[1] = 0L then Args.fail (nameof xs) $"xs: expected at least one batch row, but got shape {Args.shapeText xs}."
        zeroState (int xs.shape[1]) net

    /// Every state of the unroll of xs [T; B; I] from s_0 ([B; S] or [S]), s_0 first: [T+1; B; S].
    [<CompiledName("UnrollFrom")>]
    let unrollFrom (s0: Tensor) (xs: Tensor) (net: CellModel) : Tensor =
        checkNetwork net
        Recurrence.unroll net.Cell net.Theta xs s0

    /// Every state of the unroll of xs [T; B; I] from s_0 = 0, s_0 first: [T+1; B; S].
    [<CompiledName("Unroll")>]
    let unroll (xs: Tensor) (net: CellModel) : Tensor = unrollFrom (initial xs net) xs net

    /// The outputs h_1 … h_T of the unroll of xs from s_0 = 0: [T; B; H].
    [<CompiledName("Outputs")>]
    let outputs (xs: Tensor) (net: CellModel) : Tensor = Recurrence.outputs net.Cell (unroll xs net)

    /// The hand-derived c_t = ∂s_t/∂s_{t−1} [T; B; S; S] and b_t = ∂s_t/∂θ [T; B; S; P] along the
    /// unroll of xs from s_0 = 0.
    [<CompiledName("Jacobians")>]
    let jacobians (xs: Tensor) (net: CellModel) : TrajectoryJacobians =
        Bptt.jacobians net.Cell net.Theta xs (unroll xs net)

    /// The same c_t and b_t by autodiff, one step at a time (for any cell, hand-derived or not).
    [<CompiledName("JacobiansByAutodiff")>]
    let jacobiansByAutodiff (xs: Tensor) (net: CellModel) : TrajectoryJacobians =
        Bptt.jacobiansByAutodiff net.Cell net.Theta xs (unroll xs net)

    /// a_t = ∂s_t/∂θ for t = 1..T along the unroll of xs from s0, by the given route: [T; B; S; P].
    [<CompiledName("StateParameterJacobianFrom")>]
    let dsdθFrom (s0: Tensor) (route: Route) (xs: Tensor) (net: CellModel) : Tensor =
        let states = unrollFrom s0 xs net // [T+1; B; S]; checks every argument
        let hand () = Bptt.jacobians net.Cell net.Theta xs states
        match route with
        | ByRecurrence -> Bptt.byRecurrence (hand ())
        | ByClosedForm -> Bptt.byClosedForm (hand ())
        | ByTruncatedSum tau ->
            Args.positive "route" tau
            Bptt.byTruncatedSum tau (hand ())
        | ByAutodiff -> Bptt.byAutodiff net.Cell net.Theta xs states[0L]

    /// a_t = ∂s_t/∂θ for t = 1..T along the unroll of xs from s_0 = 0, by the given route: [T; B; S; P].
    [<CompiledName("StateParameterJacobian")>]
    let dsdθ (route: Route) (xs: Tensor) (net: CellModel) : Tensor = dsdθFrom (initial xs net) route xs net

    /// The terms of the closed form of a_t (1 ≤ t ≤ T) by lag k = t − i: entry k is
    /// (Π_{j=i+1..t} c_j) b_i, so entry 0 is b_t and their sum is a_t: [t; B; S; P]. Their sizes
    /// show how the contribution of step i vanishes or explodes with the distance k.
    [<CompiledName("ClosedFormTerms")>]
    let closedFormTerms (t: int) (xs: Tensor) (net: CellModel) : Tensor =
        let j = jacobians xs net
        let T = int j.State.shape[0]
        if t < 1 || t > T then Args.fail (nameof t) $"t: expected a time step in 1..{T} (T of xs), but got {t}."
        let B, S = j.State.shape[1], j.State.shape[2]
        let mutable product = torch.eye(S, dtype = net.Dtype).expand(B, S, S) // Π_{j=i+1..t} c_j, empty for i = t: [B; S; S]
        torch.stack(
            [| for k in 0 .. t - 1 ->
                   let i = t - k // 1-based step of the term
                   if k > 0 then product <- product.matmulChecked j.State[int64 i] // times c_{i+1}
                   product.matmulChecked j.Parameters[int64 (i - 1)] |], // [B; S; P]
            0L) // [t; B; S; P]

    /// Every route to ∂s_t/∂θ along the unroll of xs from s_0 = 0, compared (relative errors
    /// against autodiff) and timed, as the seqnets verify command does for random cases.
    [<CompiledName("Identity")>]
    let identity (xs: Tensor) (net: CellModel) : IdentityResult =
        use _ = torch.NewDisposeScope()
        let states = unroll xs net // [T+1; B; S]: checks xs against the network
        Verify.identity net.Cell { Theta = net.Theta; Inputs = xs; InitialState = states[0L]; Regime = Moderate }
