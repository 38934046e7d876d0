namespace SeqNets.CSharp;

/// <summary>
/// A recurrent cell together with its parameters θ [P] (and, when <see cref="NetworkOptions.OutputSize"/>
/// is set, an output layer y_t = V h_t + c with parameters w_o). It unrolls sequences and computes
/// every piece of backpropagation through time by the hand-derived routes and by autodiff. It owns
/// native memory: dispose it when done.
/// </summary>
/// <remarks>
/// Tensors are time first: inputs are [T; B; I], states [B; S], and an initial state may be omitted
/// (zeros), shared by every row ([S]) or given per row ([B; S]). Every tensor a method returns is
/// the caller's to dispose; intermediate tensors are freed before the method returns.
/// </remarks>
public sealed class RecurrentNetwork : IDisposable
{
    private readonly Tensor _theta;
    private readonly Tensor? _wo;
    private readonly OutputLayer? _outputLayer;
    private bool _disposed;

    /// <summary>
    /// A network over <paramref name="cell"/> with parameters drawn from U(−1/√H, 1/√H) by a
    /// generator seeded with <see cref="NetworkOptions.Seed"/>, as PyTorch initialises recurrent layers.
    /// </summary>
    /// <param name="cell">The recurrent cell.</param>
    /// <param name="options">Seed, precision, output layer and loss; <see cref="NetworkOptions.Default"/> when null.</param>
    /// <exception cref="ArgumentNullException"><paramref name="cell"/> is null.</exception>
    /// <exception cref="ArgumentException">The options name an undefined precision or loss, or a non-positive output size.</exception>
    public RecurrentNetwork(RecurrentCell cell, NetworkOptions? options = null)
        : this(cell, options, null)
    {
    }

    /// <summary>
    /// The network of the public constructor, or, when <paramref name="theta"/> is given, one whose
    /// θ is that tensor, which the network then owns (the output layer is still drawn from the seed).
    /// </summary>
    private RecurrentNetwork(RecurrentCell cell, NetworkOptions? options, Tensor? theta)
    {
        SeqNetsEngine.EnsureLoaded();
        Guard.NotNull(cell, nameof(cell));
        options ??= NetworkOptions.Default;
        CheckOptions(options);
        Cell = cell;
        Options = options;
        var dtype = options.Precision == Precision.Float64 ? torch.float64 : torch.float32;
        using var generator = new torch.Generator(options.Seed);
        // The network owns these: keep them out of any dispose scope the caller has open.
        _theta = (theta ?? CellModule.InitParameters(cell.Core, dtype, generator)).DetachFromDisposeScope();
        if (options.OutputSize is int outputSize)
        {
            _outputLayer = OutputLayerModule.Create(cell.HiddenSize, outputSize);
            _wo = OutputLayerModule.InitParameters(_outputLayer, dtype, generator).DetachFromDisposeScope();
        }
    }

    private static void CheckOptions(NetworkOptions options)
    {
        if (!Enum.IsDefined(options.Precision))
            throw new ArgumentException($"options: expected Precision Float32 or Float64, but got {options.Precision}.", nameof(options));
        if (!Enum.IsDefined(options.Loss))
            throw new ArgumentException($"options: expected Loss MeanSquared or CrossEntropy, but got {options.Loss}.", nameof(options));
        if (options.OutputSize is <= 0)
            throw new ArgumentException($"options: expected a positive OutputSize or null, but got {options.OutputSize}.", nameof(options));
    }

    /// <summary>
    /// A network whose θ is read from a PyTorch state dict: the file that
    /// <c>torch.save(nn.RNN(I, H).state_dict(), path)</c> writes, or <c>nn.GRU</c> or <c>nn.LSTM</c>
    /// likewise, with the keys <c>weight_ih_l0</c>, <c>weight_hh_l0</c>, <c>bias_ih_l0</c> and
    /// <c>bias_hh_l0</c>. θ already has PyTorch's blocks and gate order, so the values are copied one
    /// for one.
    /// </summary>
    /// <remarks>
    /// A state dict does not record the nonlinearity of <c>nn.RNN</c>, so the cell says it, and the
    /// cell's I and H must match the file's shapes. Without <paramref name="options"/> the network
    /// takes the file's precision (float32 or float64); with them it takes theirs, converting the
    /// values. An output layer (<see cref="NetworkOptions.OutputSize"/>) is not part of the file and
    /// is drawn from <see cref="NetworkOptions.Seed"/> as usual.
    /// </remarks>
    /// <param name="cell">An Elman cell (<c>nn.RNN</c>), a GRU in PyTorch's form (<c>nn.GRU</c>) or an LSTM (<c>nn.LSTM</c>), with the file's I and H.</param>
    /// <param name="path">The <c>.pt</c> file, in the zip format <c>torch.save</c> has written since PyTorch 1.6.</param>
    /// <param name="options">Precision, seed of an output layer and loss; null for the defaults in the file's precision.</param>
    /// <returns>The network, which the caller disposes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="cell"/> or <paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException">The cell has no PyTorch module (the lecture's GRU, the multiplicative RNN, a custom cell), or the options are invalid.</exception>
    /// <exception cref="SeqNetsStateDictException">The file is missing, not a zip-format state dict, or has a key, shape or dtype other than the cell's.</exception>
    public static RecurrentNetwork ImportPyTorch(RecurrentCell cell, string path, NetworkOptions? options = null)
    {
        SeqNetsEngine.EnsureLoaded();
        Guard.NotNull(cell, nameof(cell));
        PyTorchForm.PathArgument(path, nameof(path));
        if (options is not null) CheckOptions(options);
        if (PyTorchForm.WhyNot(cell) is string why)
            throw new ArgumentException(
                $"cell: expected a cell with a PyTorch module ({PyTorchForm.Cells}), but got '{cell.Name}': {why}.", nameof(cell));
        using var scope = torch.NewDisposeScope();
        var theta = PyTorchForm.Translate(() => SeqNets.Interop.ImportCell(cell.Core, path)); // [P]
        var precision = theta.dtype == torch.float64 ? Precision.Float64 : Precision.Float32;
        options ??= NetworkOptions.Default.WithPrecision(precision);
        if (options.Precision != precision)
            theta = theta.to_type(options.Precision == Precision.Float64 ? torch.float64 : torch.float32);
        return new RecurrentNetwork(cell, options, theta.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Writes θ as the state dict of the one-layer PyTorch module with the cell's I and H, which
    /// <c>nn.RNN</c>, <c>nn.GRU</c> or <c>nn.LSTM</c> loads with <c>load_state_dict(torch.load(path))</c>.
    /// The file holds <c>weight_ih_l0</c>, <c>weight_hh_l0</c>, <c>bias_ih_l0</c> and <c>bias_hh_l0</c>
    /// in the network's precision, and is written under a temporary name and then renamed, so an
    /// interrupted export leaves any earlier file intact.
    /// </summary>
    /// <remarks>An output layer is not part of a PyTorch recurrent layer's state dict and is not written.</remarks>
    /// <param name="path">The <c>.pt</c> file; its folder is created when missing.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="InvalidOperationException">The network's cell has no PyTorch module: the lecture's GRU, the multiplicative RNN or a custom cell.</exception>
    /// <exception cref="IOException">The file cannot be written.</exception>
    /// <exception cref="ObjectDisposedException">The network has been disposed.</exception>
    public void ExportPyTorch(string path)
    {
        SeqNetsEngine.EnsureLoaded();
        ObjectDisposedException.ThrowIf(_disposed, this);
        PyTorchForm.PathArgument(path, nameof(path));
        if (PyTorchForm.WhyNot(Cell) is string why)
            throw new InvalidOperationException(
                $"The network's cell '{Cell.Name}' cannot be exported as a PyTorch state dict: {why}.");
        try
        {
            SeqNets.Interop.ExportCell(Core, _theta, path);
        }
        catch (ArgumentException e) when (e.ParamName == "cell")
        {
            // A custom cell that borrows a built-in name but not its layout.
            throw new InvalidOperationException(
                $"The network's cell '{Cell.Name}' cannot be exported as a PyTorch state dict: {e.Message}", e);
        }
    }

    /// <summary>The recurrent cell the network runs.</summary>
    public RecurrentCell Cell { get; }

    /// <summary>The options the network was created with.</summary>
    public NetworkOptions Options { get; }

    /// <summary>The flat cell parameters θ: [P]. The network owns this tensor; do not dispose it.</summary>
    public Tensor Parameters
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _theta;
        }
    }

    /// <summary>
    /// The flat output-layer parameters w_o = [V [O; H] flattened; c [O]], or null without an output
    /// layer. The network owns this tensor; do not dispose it.
    /// </summary>
    public Tensor? OutputParameters
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _wo;
        }
    }

    private torch.ScalarType DType => _theta.dtype;

    private SeqNets.Cell Core => Cell.Core;

    /// <summary>
    /// The named block of θ, e.g. <c>weight_ih</c>, as a view with the block's shape; writing to the
    /// view writes to the network's parameters.
    /// </summary>
    /// <param name="name">A block name from <see cref="RecurrentCell.ParameterBlocks"/>.</param>
    /// <returns>A view of θ.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException">The cell has no block of that name; the message lists the known ones.</exception>
    public Tensor GetParameter(string name)
    {
        SeqNetsEngine.EnsureLoaded();
        ObjectDisposedException.ThrowIf(_disposed, this);
        Guard.NotNull(name, nameof(name));
        return Cell.Layout.View(_theta, name);
    }

    /// <summary>Runs s_t = f(θ, x_t, s_(t−1)) over a whole sequence.</summary>
    /// <param name="inputs">x_1 … x_T: [T; B; I], in the network's precision.</param>
    /// <param name="initialState">s_0: null for zeros, [S] shared by every row, or [B; S].</param>
    /// <returns>Every state [T+1; B; S] and every output [T; B; H].</returns>
    /// <exception cref="ArgumentNullException"><paramref name="inputs"/> is null.</exception>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or dtype, or non-finite entries.</exception>
    public UnrollResult Unroll(Tensor inputs, Tensor? initialState = null)
    {
        using var scope = Enter(inputs, ref initialState);
        var states = Recurrence.Unroll(Core, _theta, inputs, initialState!); // [T+1; B; S]
        var outputs = Recurrence.Outputs(Core, states); // [T; B; H]
        return new UnrollResult(states.MoveToOuterDisposeScope(), outputs.MoveToOuterDisposeScope());
    }

    /// <summary>One step of the cell: (h_t, s_t) from x_t and s_(t−1).</summary>
    /// <param name="input">x_t: [B; I], in the network's precision.</param>
    /// <param name="state">s_(t−1): null for zeros, [S] shared by every row, or [B; S].</param>
    /// <returns>The output h_t [B; H] and the new state s_t [B; S].</returns>
    /// <exception cref="ArgumentNullException"><paramref name="input"/> is null.</exception>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or dtype, or non-finite entries.</exception>
    public StepResult Step(Tensor input, Tensor? state = null)
    {
        SeqNetsEngine.EnsureLoaded();
        ObjectDisposedException.ThrowIf(_disposed, this);
        Guard.StepInput(input, Core, DType, nameof(input));
        using var scope = torch.NewDisposeScope();
        var s = Guard.State(state, Core, DType, input.shape[0], nameof(state));
        var (output, next) = CellModule.Step(Core, _theta, input, s); // [B; H], [B; S]
        return new StepResult(output.MoveToOuterDisposeScope(), next.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The hand-derived local Jacobians c_t = ∂s_t/∂s_(t−1) and b_t = ∂s_t/∂θ at every step of the
    /// trajectory that starts from <paramref name="initialState"/>.
    /// </summary>
    /// <param name="inputs">x_1 … x_T: [T; B; I].</param>
    /// <param name="initialState">s_0: null for zeros, [S] or [B; S].</param>
    /// <returns>c [T; B; S; S] and b [T; B; S; P].</returns>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or dtype, or non-finite entries.</exception>
    /// <exception cref="InvalidOperationException">The cell has no hand-derived Jacobians; use <see cref="JacobiansByAutodiff"/>.</exception>
    public BpttJacobians Jacobians(Tensor inputs, Tensor? initialState = null)
    {
        RequireJacobians(nameof(JacobiansByAutodiff));
        using var scope = Enter(inputs, ref initialState);
        var states = Recurrence.Unroll(Core, _theta, inputs, initialState!);
        var j = Bptt.Jacobians(Core, _theta, inputs, states);
        return new BpttJacobians(j.State.MoveToOuterDisposeScope(), j.Parameters.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The same c_t and b_t as <see cref="Jacobians"/>, computed by reverse-mode autodiff one step
    /// at a time; it works for every cell, with or without hand-derived Jacobians.
    /// </summary>
    /// <param name="inputs">x_1 … x_T: [T; B; I].</param>
    /// <param name="initialState">s_0: null for zeros, [S] or [B; S].</param>
    /// <returns>c [T; B; S; S] and b [T; B; S; P].</returns>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or dtype, or non-finite entries.</exception>
    public BpttJacobians JacobiansByAutodiff(Tensor inputs, Tensor? initialState = null)
    {
        using var scope = Enter(inputs, ref initialState);
        var states = Recurrence.Unroll(Core, _theta, inputs, initialState!);
        var j = Bptt.JacobiansByAutodiff(Core, _theta, inputs, states);
        return new BpttJacobians(j.State.MoveToOuterDisposeScope(), j.Parameters.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// a_t = ∂s_t/∂θ for t = 1..T by the chosen route: the recurrence a_t = b_t + c_t a_(t−1), the
    /// closed-form sum b_t + Σ_(i&lt;t) (Π_(j=i+1..t) c_j) b_i, or autodiff through the unrolled graph.
    /// </summary>
    /// <param name="inputs">x_1 … x_T: [T; B; I].</param>
    /// <param name="initialState">s_0: null for zeros, [S] or [B; S].</param>
    /// <param name="route">The route; the first two need hand-derived Jacobians.</param>
    /// <returns>∂s_t/∂θ: [T; B; S; P].</returns>
    /// <exception cref="ArgumentException">A tensor is malformed, or the route needs Jacobians the cell lacks.</exception>
    public Tensor StateParameterJacobian(Tensor inputs, Tensor? initialState = null, BpttRoute route = BpttRoute.ClosedForm)
    {
        CheckRoute(route);
        using var scope = Enter(inputs, ref initialState);
        return StateParameterJacobianUnchecked(inputs, initialState!, route).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The closed form truncated to its last τ terms, Σ_(t−τ&lt;i≤t) (Π_(j=i+1..t) c_j) b_i: the
    /// gradient that flows back at most τ steps (truncated BPTT). With τ ≥ T it equals the full closed form.
    /// </summary>
    /// <param name="tau">τ ≥ 1, how many steps back the gradient may flow.</param>
    /// <param name="inputs">x_1 … x_T: [T; B; I].</param>
    /// <param name="initialState">s_0: null for zeros, [S] or [B; S].</param>
    /// <returns>The truncated ∂s_t/∂θ: [T; B; S; P].</returns>
    /// <exception cref="ArgumentException"><paramref name="tau"/> is not positive or a tensor is malformed.</exception>
    /// <exception cref="InvalidOperationException">The cell has no hand-derived Jacobians.</exception>
    public Tensor TruncatedStateParameterJacobian(int tau, Tensor inputs, Tensor? initialState = null)
    {
        Guard.Positive(tau, nameof(tau));
        RequireJacobians(null);
        using var scope = Enter(inputs, ref initialState);
        var states = Recurrence.Unroll(Core, _theta, inputs, initialState!);
        var j = Bptt.Jacobians(Core, _theta, inputs, states);
        return Bptt.ByTruncatedSum(tau, j).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// ∂L/∂θ, ∂L/∂w_o and ∂L/∂s_0 of the sequence loss L = 1/T Σ_t ℓ(V h_t + c, o_t). The hand-derived
    /// routes assemble it in closed form from δ_t = ∂ℓ_t/∂y_t and ∂s_t/∂θ; the autodiff route runs
    /// reverse mode through the whole unrolled graph.
    /// </summary>
    /// <param name="inputs">x_1 … x_T: [T; B; I].</param>
    /// <param name="targets">o_1 … o_T: [T; B; O] floats for mean squared error, [T; B] int64 classes for cross-entropy.</param>
    /// <param name="initialState">s_0: null for zeros, [S] or [B; S].</param>
    /// <param name="route">The route to ∂s_t/∂θ; the first two need hand-derived Jacobians.</param>
    /// <returns>The three gradients.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="inputs"/> or <paramref name="targets"/> is null.</exception>
    /// <exception cref="ArgumentException">A tensor is malformed, or the route needs Jacobians the cell lacks.</exception>
    /// <exception cref="InvalidOperationException">The network has no output layer (<see cref="NetworkOptions.OutputSize"/> unset).</exception>
    public LossGradients LossGradient(Tensor inputs, Tensor targets, Tensor? initialState = null, BpttRoute route = BpttRoute.ClosedForm)
    {
        CheckRoute(route);
        Guard.NotNull(targets, nameof(targets));
        if (_outputLayer is null || _wo is null)
            throw new InvalidOperationException(
                "The network has no output layer, so it has no loss: create it with NetworkOptions.WithOutputSize(O).");
        using var scope = Enter(inputs, ref initialState);
        var loss = Options.Loss == LossKind.CrossEntropy ? SeqNets.Loss.CrossEntropy : SeqNets.Loss.MeanSquared;
        if (route == BpttRoute.Autodiff)
        {
            var (gTheta, gWo, gS0) = Autodiff.lossGradient(Core, _outputLayer, loss, _theta, _wo, inputs, initialState!, targets);
            return new LossGradients(gTheta.MoveToOuterDisposeScope(), gWo.MoveToOuterDisposeScope(), gS0.MoveToOuterDisposeScope());
        }
        var states = Recurrence.Unroll(Core, _theta, inputs, initialState!);
        var j = Bptt.Jacobians(Core, _theta, inputs, states);
        var a = route == BpttRoute.Recurrence ? Bptt.ByRecurrence(j) : Bptt.ByClosedForm(j);
        var g = Bptt.LossGradient(Core, _outputLayer, loss, _wo, states, j, a, targets);
        return new LossGradients(g.Cell.MoveToOuterDisposeScope(), g.Output.MoveToOuterDisposeScope(), g.InitialState.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Checks the BPTT identity on one trajectory: the hand-derived c_t and b_t against autodiff's,
    /// and the recurrence, the closed form and autodiff against each other, with the time each took.
    /// Use float64 for tight agreement.
    /// </summary>
    /// <remarks>
    /// A cell without hand-derived Jacobians (a <see cref="RecurrentCell.Custom"/> cell given only its
    /// transition) is checked with autodiff's local c_t and b_t in the closed form and the recurrence:
    /// the three routes must still agree, and <see cref="IdentityReport.HandDerived"/> is false, its
    /// two Jacobian errors 0 by construction.
    /// </remarks>
    /// <param name="inputs">x_1 … x_T: [T; B; I].</param>
    /// <param name="initialState">s_0: null for zeros, [S] or [B; S].</param>
    /// <returns>The four largest relative disagreements and the timings.</returns>
    /// <exception cref="ArgumentException">A tensor has the wrong shape or dtype, or non-finite entries.</exception>
    public IdentityReport VerifyIdentity(Tensor inputs, Tensor? initialState = null)
    {
        using var scope = Enter(inputs, ref initialState);
        var result = Verify.Identity(Core, new VerificationCase(_theta, inputs, initialState!, Regime.Moderate));
        return new IdentityReport(result);
    }

    /// <summary>Frees the native memory of the parameters; the network cannot be used afterwards.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _theta.Dispose();
        _wo?.Dispose();
    }

    /// <summary>Loads the engine, checks the sequence and opens a dispose scope in which s_0 is resolved to [B; S].</summary>
    private DisposeScope Enter(Tensor inputs, ref Tensor? initialState)
    {
        SeqNetsEngine.EnsureLoaded();
        ObjectDisposedException.ThrowIf(_disposed, this);
        Guard.Sequence(inputs, Core, DType, nameof(inputs));
        var scope = torch.NewDisposeScope();
        try
        {
            initialState = Guard.State(initialState, Core, DType, inputs.shape[1], nameof(initialState));
            return scope;
        }
        catch
        {
            scope.Dispose();
            throw;
        }
    }

    private Tensor StateParameterJacobianUnchecked(Tensor inputs, Tensor s0, BpttRoute route)
    {
        if (route == BpttRoute.Autodiff)
            return Bptt.ByAutodiff(Core, _theta, inputs, s0);
        var states = Recurrence.Unroll(Core, _theta, inputs, s0);
        var j = Bptt.Jacobians(Core, _theta, inputs, states);
        return route == BpttRoute.Recurrence ? Bptt.ByRecurrence(j) : Bptt.ByClosedForm(j);
    }

    private void CheckRoute(BpttRoute route)
    {
        Guard.Defined(route, nameof(route));
        if (route != BpttRoute.Autodiff && !Cell.HasJacobians)
            throw new ArgumentException(
                $"route: expected {nameof(BpttRoute.Autodiff)} for cell '{Cell.Name}', which has no hand-derived Jacobians, but got {route}.",
                nameof(route));
    }

    private void RequireJacobians(string? alternative)
    {
        if (!Cell.HasJacobians)
            throw new InvalidOperationException(
                $"Cell '{Cell.Name}' has no hand-derived Jacobians"
                + (alternative is null ? "; give Custom a jacobians function to use this." : $"; use {alternative} instead."));
    }
}
