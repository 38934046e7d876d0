using Microsoft.FSharp.Core;

namespace SeqNets.CSharp;

/// <summary>
/// The hand-derived local derivatives of one step of a cell, for every batch row:
/// c_t = ∂s_t/∂s_(t−1) and b_t = ∂s_t/∂θ with s_(t−1) held fixed.
/// </summary>
public sealed class CellJacobians
{
    /// <summary>Pairs the two Jacobians of one step.</summary>
    /// <param name="state">c_t = ∂s_t/∂s_(t−1), shape [B; S; S].</param>
    /// <param name="parameters">b_t = ∂s_t/∂θ, shape [B; S; P].</param>
    /// <exception cref="ArgumentNullException">Either tensor is null.</exception>
    public CellJacobians(Tensor state, Tensor parameters)
    {
        Guard.NotNull(state, nameof(state));
        Guard.NotNull(parameters, nameof(parameters));
        State = state;
        Parameters = parameters;
    }

    /// <summary>c_t = ∂s_t/∂s_(t−1): [B; S; S].</summary>
    public Tensor State { get; }

    /// <summary>b_t = ∂s_t/∂θ: [B; S; P].</summary>
    public Tensor Parameters { get; }
}

/// <summary>
/// A recurrent cell as a value: sizes, a parameter layout and the transition s_t = f(θ, x_t, s_(t−1)),
/// with (for the built-in cells) hand-derived Jacobians. Cells hold no tensors; a
/// <see cref="RecurrentNetwork"/> holds the parameters.
/// </summary>
public sealed class RecurrentCell
{
    private RecurrentCell(Cell core)
    {
        Core = core;
        Layout = new CellLayout(core.Layout);
    }

    internal Cell Core { get; }

    /// <summary>A short name such as <c>lstm</c> or <c>gru-pytorch</c>.</summary>
    public string Name => Core.Name;

    /// <summary>I: the width of each input x_t.</summary>
    public int InputSize => Core.InputSize;

    /// <summary>H: the width of each output h_t, which is the first H entries of the state.</summary>
    public int HiddenSize => Core.HiddenSize;

    /// <summary>S: the width of the flat state s_t; for an LSTM s = [h; c], so S = 2H.</summary>
    public int StateSize => Core.StateSize;

    /// <summary>P: the number of parameters, the length of θ.</summary>
    public long ParameterCount => Core.ParameterCount;

    /// <summary>The cell's update equations in plain text, for display.</summary>
    public string Equations => Core.Equations;

    /// <summary>Whether the cell carries hand-derived Jacobians (c_t, b_t); without them only the autodiff route applies.</summary>
    public bool HasJacobians => OptionModule.IsSome(Core.Jacobians);

    /// <summary>The named blocks of θ (PyTorch's <c>weight_ih</c>, <c>weight_hh</c>, … for the built-in cells).</summary>
    public CellLayout Layout { get; }

    /// <summary>The parameter blocks in the order they occupy θ, each with its name and shape.</summary>
    public IReadOnlyList<ParameterShape> ParameterBlocks => Layout.Blocks;

    /// <summary>
    /// An Elman cell h_t = φ(W x_t + b_ih + U h_(t−1) + b_hh) in PyTorch's <c>nn.RNN</c> layout;
    /// its state is h (S = H).
    /// </summary>
    /// <param name="inputSize">I, the width of each input.</param>
    /// <param name="hiddenSize">H, the width of the hidden state.</param>
    /// <param name="activation">The nonlinearity φ.</param>
    /// <returns>The cell, with hand-derived Jacobians.</returns>
    /// <exception cref="ArgumentException">A size is not positive.</exception>
    public static RecurrentCell Elman(int inputSize, int hiddenSize, Activation activation = Activation.Tanh)
    {
        SeqNetsEngine.EnsureLoaded();
        Guard.Defined(activation, nameof(activation));
        var phi = activation == Activation.Tanh ? Cells.Activation.Tanh : Cells.Activation.Relu;
        return new RecurrentCell(Cells.Elman.Create(phi, inputSize, hiddenSize));
    }

    /// <summary>
    /// A gated recurrent unit in PyTorch's <c>nn.GRU</c> layout (gate rows r, z, n), in PyTorch's
    /// form or the lecture's; its state is h (S = H).
    /// </summary>
    /// <param name="inputSize">I, the width of each input.</param>
    /// <param name="hiddenSize">H, the width of the hidden state.</param>
    /// <param name="form">Where the reset gate acts on the candidate state.</param>
    /// <returns>The cell, with hand-derived Jacobians.</returns>
    /// <exception cref="ArgumentException">A size is not positive.</exception>
    public static RecurrentCell Gru(int inputSize, int hiddenSize, GruForm form = GruForm.PyTorch)
    {
        SeqNetsEngine.EnsureLoaded();
        Guard.Defined(form, nameof(form));
        var f = form == GruForm.PyTorch ? Cells.GruForm.PyTorch : Cells.GruForm.Lecture;
        return new RecurrentCell(Cells.Gru.Create(f, inputSize, hiddenSize));
    }

    /// <summary>
    /// A long short-term memory cell in PyTorch's <c>nn.LSTM</c> layout (gate rows i, f, g, o); its
    /// state is s = [h; c], so S = 2H.
    /// </summary>
    /// <param name="inputSize">I, the width of each input.</param>
    /// <param name="hiddenSize">H, the width of the hidden state and of the memory cell.</param>
    /// <returns>The cell, with hand-derived Jacobians.</returns>
    /// <exception cref="ArgumentException">A size is not positive.</exception>
    public static RecurrentCell Lstm(int inputSize, int hiddenSize)
    {
        SeqNetsEngine.EnsureLoaded();
        return new RecurrentCell(Cells.Lstm.Create(inputSize, hiddenSize));
    }

    /// <summary>
    /// A multiplicative RNN (Sutskever, Martens and Hinton 2011), whose hidden-to-hidden matrix
    /// depends on the input through F factors; its state is h (S = H).
    /// </summary>
    /// <param name="inputSize">I, the width of each input.</param>
    /// <param name="hiddenSize">H, the width of the hidden state.</param>
    /// <param name="factors">F, the number of factors of the input-dependent matrix.</param>
    /// <returns>The cell, with hand-derived Jacobians.</returns>
    /// <exception cref="ArgumentException">A size is not positive.</exception>
    public static RecurrentCell MultiplicativeRnn(int inputSize, int hiddenSize, int factors)
    {
        SeqNetsEngine.EnsureLoaded();
        return new RecurrentCell(Cells.MultiplicativeRnn.Create(inputSize, hiddenSize, factors));
    }

    /// <summary>
    /// A user-defined cell with transition s_t = <paramref name="transition"/>(θ, x_t, s_(t−1)), where
    /// θ is [P], x_t is [B; I], s_(t−1) is [B; S] and the result is [B; S]; its first H state entries
    /// are its output. It unrolls, trains, checkpoints, samples and exports like a built-in cell, and
    /// autodiff verifies it; pass <paramref name="jacobians"/> to give it hand-derived c_t and b_t as well.
    /// </summary>
    /// <remarks>
    /// <para>
    /// With <paramref name="rowParameters"/> the cell declares that its transition also accepts θ as
    /// [B; P], one copy of the parameters per batch row, and then <see cref="CellLayout.View"/> gives
    /// each block as [B; shape]. Autodiff then computes the local Jacobians of a whole trajectory in
    /// one backward pass instead of one pass per state entry (T·B·S of them), several times faster for
    /// small cells, at the cost of a copy of θ per entry. A transition written with
    /// broadcasting products, such as <c>W.matmul(x.unsqueeze(-1)).squeeze(-1)</c> for W x, works for
    /// both shapes of θ. Mind that TorchSharp's <c>matmul</c> ends the process on a shape mismatch (its
    /// native entry point does not catch libtorch's errors, unlike <c>torch.mm</c>, <c>torch.bmm</c> and
    /// <c>torch.einsum</c>, which raise an exception): SeqNets' own products check shapes first.
    /// </para>
    /// <para>
    /// The shapes the functions return are checked at every call: a transition that does not return
    /// [B; S], or Jacobians that are not c_t [B; S; S] and b_t [B; S; P], raise an
    /// <see cref="ArgumentException"/> naming the cell, the function, the shape expected and the shape
    /// returned. To load checkpoints that hold the cell, <see cref="Register"/> it first.
    /// </para>
    /// <para>
    /// Both functions act row by row: they may be called with any number of rows (the Jacobians of
    /// many steps are evaluated at once, the steps stacked as rows), so a result takes its row count
    /// from x, as in <c>torch.zeros(x.shape[0], S, S)</c>.
    /// </para>
    /// </remarks>
    /// <param name="name">A short name for messages, display and checkpoints (see <see cref="Register"/>).</param>
    /// <param name="inputSize">I, the width of each input.</param>
    /// <param name="hiddenSize">H, the width of the output, at most <paramref name="stateSize"/>.</param>
    /// <param name="stateSize">S, the width of the flat state.</param>
    /// <param name="layout">The named blocks of θ; use <see cref="CellLayout.View"/> inside the transition.</param>
    /// <param name="transition">The step function (θ, x_t, s_(t−1)) ↦ s_t.</param>
    /// <param name="jacobians">Optional hand-derived (θ, x_t, s_(t−1)) ↦ (c_t [B; S; S], b_t [B; S; P]).</param>
    /// <param name="rowParameters">Whether <paramref name="transition"/> also accepts θ as [B; P] (one copy per row).</param>
    /// <returns>The cell.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/>, <paramref name="layout"/> or <paramref name="transition"/> is null.</exception>
    /// <exception cref="ArgumentException">The name is empty, a size is not positive, or H exceeds S.</exception>
    public static RecurrentCell Custom(
        string name,
        int inputSize,
        int hiddenSize,
        int stateSize,
        CellLayout layout,
        Func<Tensor, Tensor, Tensor, Tensor> transition,
        Func<Tensor, Tensor, Tensor, CellJacobians>? jacobians = null,
        bool rowParameters = false)
    {
        SeqNetsEngine.EnsureLoaded();
        Guard.NotNull(name, nameof(name));
        Guard.NotNull(layout, nameof(layout));
        Guard.NotNull(transition, nameof(transition));
        // The core checks the shape of every result and names the cell when it is wrong.
        var core = CellModule.Custom(name, inputSize, hiddenSize, stateSize, layout.Core,
            FuncConvert.FromFunc<Tensor, Tensor, Tensor, Tensor>((theta, x, s) => transition(theta, x, s)));
        if (jacobians is not null)
        {
            StepJacobians Derivatives(Tensor theta, Tensor x, Tensor s)
            {
                var j = jacobians(theta, x, s)
                    ?? throw new ArgumentException(
                        $"jacobians: cell '{name}': its Jacobians function returned null, but expected c_t [B; S; S] and b_t [B; S; P].",
                        nameof(jacobians));
                return new StepJacobians(j.State, j.Parameters);
            }
            core = CellModule.WithJacobians(FuncConvert.FromFunc<Tensor, Tensor, Tensor, StepJacobians>(Derivatives), core);
        }
        if (rowParameters) core = CellModule.WithRowParameters(core);
        return new RecurrentCell(core);
    }

    /// <summary>
    /// Registers how to build the user-defined cell called <paramref name="name"/> at given input and
    /// hidden sizes, so that checkpoints holding it can be loaded: a checkpoint stores a cell by its
    /// name, sizes and parameter layout, and rebuilds a user-defined one through this function.
    /// </summary>
    /// <remarks>
    /// Register before loading, once per process; a later registration of the same name replaces the
    /// earlier one. The cell <paramref name="make"/> builds must carry <paramref name="name"/> and
    /// the sizes asked for, and have the layout and state size of the saved one, or the load is refused
    /// with a <see cref="SeqNetsCheckpointException"/> that says which.
    /// </remarks>
    /// <param name="name">The cell's name, as <see cref="Custom"/> was given it.</param>
    /// <param name="make">Builds the cell from (inputSize, hiddenSize).</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> or <paramref name="make"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty or names a built-in cell.</exception>
    public static void Register(string name, Func<int, int, RecurrentCell> make)
    {
        Guard.NotNull(name, nameof(name));
        Guard.NotNull(make, nameof(make));
        if (string.IsNullOrWhiteSpace(name))
            throw new ArgumentException("name: expected a cell name, but got an empty one.", nameof(name));
        if (BuiltInNames.Contains(name))
            throw new ArgumentException(
                $"name: expected the name of a user-defined cell, but '{name}' is a built-in cell's, which checkpoints rebuild themselves.",
                nameof(name));
        Cell Build(int inputSize, int hiddenSize)
        {
            var cell = make(inputSize, hiddenSize)
                ?? throw new ArgumentException($"make: the function registered for cell '{name}' returned null.", nameof(make));
            if (cell.Name != name || cell.InputSize != inputSize || cell.HiddenSize != hiddenSize)
                throw new ArgumentException(
                    $"make: the function registered for cell '{name}' was asked for I = {inputSize}, H = {hiddenSize}, "
                    + $"but built {cell}.", nameof(make));
            return cell.Core;
        }
        CellCatalog.Register(name, FuncConvert.FromFunc<int, int, Cell>(Build));
    }

    private static readonly string[] BuiltInNames = ["elman-tanh", "elman-relu", "gru-pytorch", "gru-lecture", "lstm", "mrnn"];

    /// <summary>The facade's cell for a core cell, such as one rebuilt from a checkpoint.</summary>
    internal static RecurrentCell Of(Cell core) => new(core);

    /// <summary>Whether the transition also accepts θ as [B; P], one copy of the parameters per row (see <see cref="Custom"/>).</summary>
    public bool HasRowParameters => Core.RowParameters;

    /// <summary>
    /// A cell written as equations (<see cref="CellEquations"/>): its transition is evaluated from the
    /// equations and its c_t and b_t are derived by rules, so every BPTT route and
    /// <see cref="RecurrentNetwork.VerifyIdentity"/> apply to it with no hand-written Jacobian.
    /// </summary>
    /// <param name="equations">The equations.</param>
    /// <returns>The cell, with derived Jacobians.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="equations"/> is null.</exception>
    /// <exception cref="ArgumentException">The equations use an undeclared block, have mismatched sizes (the message names the sub-expression and both shapes), miss an update, or use a function the rules cannot differentiate.</exception>
    public static RecurrentCell FromEquations(CellEquations equations)
    {
        SeqNetsEngine.EnsureLoaded();
        Guard.NotNull(equations, nameof(equations));
        return new RecurrentCell(global::SeqNets.Equations.Cell(equations.ToCore()));
    }

    /// <summary>Shows the cell's name and its sizes I, H, S and P.</summary>
    /// <returns>A one-line description of the cell.</returns>
    public override string ToString() => Core.ToString();
}
