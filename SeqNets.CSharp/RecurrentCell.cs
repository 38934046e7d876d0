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
    public int ParameterCount => Core.ParameterCount;

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
    /// are its output. It unrolls and is verified by autodiff like a built-in cell; pass
    /// <paramref name="jacobians"/> to give it hand-derived c_t and b_t as well.
    /// </summary>
    /// <param name="name">A short name for messages and display.</param>
    /// <param name="inputSize">I, the width of each input.</param>
    /// <param name="hiddenSize">H, the width of the output, at most <paramref name="stateSize"/>.</param>
    /// <param name="stateSize">S, the width of the flat state.</param>
    /// <param name="layout">The named blocks of θ; use <see cref="CellLayout.View"/> inside the transition.</param>
    /// <param name="transition">The step function (θ, x_t, s_(t−1)) ↦ s_t.</param>
    /// <param name="jacobians">Optional hand-derived (θ, x_t, s_(t−1)) ↦ (c_t [B; S; S], b_t [B; S; P]).</param>
    /// <returns>The cell.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/>, <paramref name="layout"/> or <paramref name="transition"/> is null.</exception>
    /// <exception cref="ArgumentException">A size is not positive, or H exceeds S.</exception>
    public static RecurrentCell Custom(
        string name,
        int inputSize,
        int hiddenSize,
        int stateSize,
        CellLayout layout,
        Func<Tensor, Tensor, Tensor, Tensor> transition,
        Func<Tensor, Tensor, Tensor, CellJacobians>? jacobians = null)
    {
        SeqNetsEngine.EnsureLoaded();
        Guard.NotNull(name, nameof(name));
        Guard.NotNull(layout, nameof(layout));
        Guard.NotNull(transition, nameof(transition));
        Tensor Step(Tensor theta, Tensor x, Tensor s)
        {
            var next = transition(theta, x, s);
            if (next is null || next.dim() != 2 || next.shape[0] != x.shape[0] || next.shape[1] != stateSize)
                throw new InvalidOperationException(
                    $"The transition of cell '{name}' must return a [B; S] tensor with B = {x.shape[0]} and S = {stateSize}, "
                    + $"but it returned {(next is null ? "null" : "shape " + Guard.ShapeText(next))}.");
            return next;
        }
        var core = CellModule.Custom(name, inputSize, hiddenSize, stateSize, layout.Core,
            FuncConvert.FromFunc<Tensor, Tensor, Tensor, Tensor>(Step));
        if (jacobians is not null)
        {
            StepJacobians Derivatives(Tensor theta, Tensor x, Tensor s)
            {
                var j = jacobians(theta, x, s)
                    ?? throw new InvalidOperationException($"The Jacobians function of cell '{name}' returned null.");
                long B = x.shape[0], S = stateSize, P = layout.Count;
                if (!j.State.shape.SequenceEqual(new[] { B, S, S }) || !j.Parameters.shape.SequenceEqual(new[] { B, S, P }))
                    throw new InvalidOperationException(
                        $"The Jacobians function of cell '{name}' must return c_t [{B}; {S}; {S}] and b_t [{B}; {S}; {P}], "
                        + $"but it returned {Guard.ShapeText(j.State)} and {Guard.ShapeText(j.Parameters)}.");
                return new StepJacobians(j.State, j.Parameters);
            }
            core = CellModule.WithJacobians(FuncConvert.FromFunc<Tensor, Tensor, Tensor, StepJacobians>(Derivatives), core);
        }
        return new RecurrentCell(core);
    }

    /// <summary>Shows the cell's name and its sizes I, H, S and P.</summary>
    /// <returns>A one-line description of the cell.</returns>
    public override string ToString() => Core.ToString();
}
