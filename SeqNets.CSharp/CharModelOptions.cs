namespace SeqNets.CSharp;

/// <summary>The recurrent family of every layer of a <see cref="CharLanguageModel"/>.</summary>
public enum CellKind
{
    /// <summary>An Elman cell with tanh, h_t = tanh(W x_t + U h_(t−1) + b); libtorch's fused kernel applies.</summary>
    ElmanTanh,

    /// <summary>An Elman cell with the rectifier, h_t = max(0, W x_t + U h_(t−1) + b); libtorch's fused kernel applies.</summary>
    ElmanRelu,

    /// <summary>A GRU in PyTorch's form, the reset gate inside the recurrent product; libtorch's fused kernel applies.</summary>
    Gru,

    /// <summary>A GRU in the lecture's (Cho et al. 2014) form; it runs the equations step by step.</summary>
    GruLecture,

    /// <summary>A long short-term memory cell with state s = [h; c]; libtorch's fused kernel applies.</summary>
    Lstm,

    /// <summary>A multiplicative RNN with <see cref="CharModelOptions.Factors"/> factors; it runs the equations step by step.</summary>
    MultiplicativeRnn,
}

/// <summary>
/// The shape of a <see cref="CharLanguageModel"/>: the cell family, the hidden width, the number of
/// stacked layers, the precision and the seed of the initial parameters. Immutable; change it with
/// <c>WithCell</c>, <c>WithHiddenSize</c>, … or a <c>with</c> expression. Invalid values are refused
/// with an <see cref="ArgumentException"/> whose parameter name is the property's.
/// </summary>
public sealed record CharModelOptions
{
    /// <summary>Options with the defaults: one LSTM layer of 128 units, float32, seed 1.</summary>
    public CharModelOptions()
    {
    }

    /// <summary>The defaults: one LSTM layer of 128 units, float32, seed 1.</summary>
    public static CharModelOptions Default { get; } = new();

    /// <summary>The recurrent family of every layer.</summary>
    public CellKind Cell { get; init; } = CellKind.Lstm;

    /// <summary>F, the number of factors of a multiplicative RNN; null means F = H. Other cells ignore it.</summary>
    public int? Factors { get; init; }

    /// <summary>H, the number of hidden units of each layer.</summary>
    public int HiddenSize { get; init; } = 128;

    /// <summary>L, the number of stacked recurrent layers.</summary>
    public int Layers { get; init; } = 1;

    /// <summary>The floating-point type of the parameters; float32 trains faster, float64 checks tighter.</summary>
    public Precision Precision { get; init; } = Precision.Float32;

    /// <summary>The seed of the generator that draws the initial parameters, so equal options give equal models.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>These options with another cell family.</summary>
    /// <param name="cell">The recurrent family of every layer.</param>
    /// <returns>A copy with <see cref="Cell"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="cell"/> is not a defined value.</exception>
    public CharModelOptions WithCell(CellKind cell) => Checked(this with { Cell = cell });

    /// <summary>These options with a multiplicative RNN of <paramref name="factors"/> factors.</summary>
    /// <param name="factors">F, the number of factors, positive.</param>
    /// <returns>A copy with <see cref="Cell"/> set to <see cref="CellKind.MultiplicativeRnn"/> and <see cref="Factors"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="factors"/> is not positive.</exception>
    public CharModelOptions WithMultiplicativeRnn(int factors) =>
        Checked(this with { Cell = CellKind.MultiplicativeRnn, Factors = factors });

    /// <summary>These options with another number of multiplicative-RNN factors.</summary>
    /// <param name="factors">F, positive.</param>
    /// <returns>A copy with <see cref="Factors"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="factors"/> is not positive.</exception>
    public CharModelOptions WithFactors(int factors) => Checked(this with { Factors = factors });

    /// <summary>These options with another hidden width.</summary>
    /// <param name="hiddenSize">H, positive.</param>
    /// <returns>A copy with <see cref="HiddenSize"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="hiddenSize"/> is not positive.</exception>
    public CharModelOptions WithHiddenSize(int hiddenSize) => Checked(this with { HiddenSize = hiddenSize });

    /// <summary>These options with another number of stacked layers.</summary>
    /// <param name="layers">L, positive.</param>
    /// <returns>A copy with <see cref="Layers"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="layers"/> is not positive.</exception>
    public CharModelOptions WithLayers(int layers) => Checked(this with { Layers = layers });

    /// <summary>These options with another precision.</summary>
    /// <param name="precision">The floating-point type of the parameters.</param>
    /// <returns>A copy with <see cref="Precision"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="precision"/> is not a defined value.</exception>
    public CharModelOptions WithPrecision(Precision precision) => Checked(this with { Precision = precision });

    /// <summary>These options with another seed for the initial parameters.</summary>
    /// <param name="seed">The seed.</param>
    /// <returns>A copy with <see cref="Seed"/> replaced.</returns>
    public CharModelOptions WithSeed(ulong seed) => this with { Seed = seed };

    /// <summary>
    /// Checks every property, throwing an <see cref="ArgumentException"/> whose parameter name is the
    /// first invalid property's and whose message says what was expected and what arrived.
    /// </summary>
    /// <exception cref="ArgumentException">A property is out of range.</exception>
    public void Validate()
    {
        Property.Defined(Cell, nameof(Cell));
        if (Factors is int f) Property.Positive(f, nameof(Factors));
        Property.Positive(HiddenSize, nameof(HiddenSize));
        Property.Positive(Layers, nameof(Layers));
        Property.Defined(Precision, nameof(Precision));
    }

    private static CharModelOptions Checked(CharModelOptions options)
    {
        options.Validate();
        return options;
    }

    internal SeqNets.CellKind CoreKind => Cell switch
    {
        CellKind.ElmanTanh => SeqNets.CellKind.ElmanTanh,
        CellKind.ElmanRelu => SeqNets.CellKind.ElmanRelu,
        CellKind.Gru => SeqNets.CellKind.GruPyTorch,
        CellKind.GruLecture => SeqNets.CellKind.GruLecture,
        CellKind.Lstm => SeqNets.CellKind.Lstm,
        _ => SeqNets.CellKind.NewMultiplicativeRnn(Factors ?? HiddenSize),
    };

    internal torch.ScalarType DType => Precision == Precision.Float64 ? torch.float64 : torch.float32;

    /// <summary>The options that describe an existing core model; the seed is not recorded there, so it is 0.</summary>
    internal static CharModelOptions Of(Network model)
    {
        var config = SeqNets.CharModel.TryConfig(model)?.Value
            ?? throw new ArgumentException($"model: expected a character model, but got {model.Describe()}.", nameof(model));
        var kind = config.Kind;
        var cell = kind.Tag switch
        {
            SeqNets.CellKind.Tags.ElmanTanh => CellKind.ElmanTanh,
            SeqNets.CellKind.Tags.ElmanRelu => CellKind.ElmanRelu,
            SeqNets.CellKind.Tags.GruPyTorch => CellKind.Gru,
            SeqNets.CellKind.Tags.GruLecture => CellKind.GruLecture,
            SeqNets.CellKind.Tags.Lstm => CellKind.Lstm,
            _ => CellKind.MultiplicativeRnn,
        };
        return new CharModelOptions
        {
            Cell = cell,
            Factors = kind is SeqNets.CellKind.MultiplicativeRnn m ? m.factors : null,
            HiddenSize = config.HiddenSize,
            Layers = config.Layers,
            Precision = model.DType == torch.float64 ? Precision.Float64 : Precision.Float32,
            Seed = 0,
        };
    }
}

/// <summary>Checks of options properties: failures name the property, the expected and the actual value.</summary>
internal static class Property
{
    public static void Fail(string property, string message) =>
        throw new ArgumentException($"{property}: {message}", property);

    public static void Positive(int value, string property)
    {
        if (value <= 0) Fail(property, $"expected a positive value, but got {value}.");
    }

    public static void Defined<TEnum>(TEnum value, string property) where TEnum : struct, Enum
    {
        if (!Enum.IsDefined(value))
            Fail(property, $"expected one of {string.Join(", ", Enum.GetNames<TEnum>())}, but got {value}.");
    }

    public static void InRange(double value, double low, bool lowInclusive, double high, bool highInclusive, string property)
    {
        var ok = (lowInclusive ? value >= low : value > low) && (highInclusive ? value <= high : value < high);
        if (!ok)
            Fail(property, $"expected a value in {(lowInclusive ? "[" : "(")}{low}, {(double.IsPositiveInfinity(high) ? "∞" : high)}{(highInclusive ? "]" : ")")}, but got {value}.");
    }
}
