using System.Collections.ObjectModel;

namespace SeqNets.CSharp;

/// <summary>
/// Everything that fixes the shape of a <see cref="SequenceNetwork"/>: its input layer, its recurrent
/// layers (any cells, stacked, one direction or both), the dropout between them, its head (one of the
/// lecture's five input/output shapes), the width of its readout y = V h + c, its loss, the precision
/// of its parameters and the seed that draws them. Immutable; change it with <c>WithDropout</c>,
/// <c>WithHead</c>, … or a <c>with</c> expression. Invalid values are refused with an
/// <see cref="ArgumentException"/> whose parameter name is the property's.
/// </summary>
public sealed record SequenceNetworkOptions
{
    private IReadOnlyList<RecurrentLayer> _layers = [];

    /// <summary>A network reading <paramref name="input"/> through <paramref name="layers"/> to a readout of <paramref name="outputSize"/>, with a per-step head, cross-entropy, float32 and seed 1.</summary>
    /// <param name="input">How the inputs enter the first layer.</param>
    /// <param name="layers">The recurrent layers, bottom first; layer 0's cell reads <see cref="InputLayer.Width"/>, each next one the output width of the one below.</param>
    /// <param name="outputSize">O, the width of the readout: the number of classes, or of values per prediction.</param>
    /// <exception cref="ArgumentNullException"><paramref name="input"/> or <paramref name="layers"/> is null.</exception>
    public SequenceNetworkOptions(InputLayer input, IEnumerable<RecurrentLayer> layers, int outputSize)
    {
        Guard.NotNull(input, nameof(input));
        Guard.NotNull(layers, nameof(layers));
        Input = input;
        Layers = layers.ToArray();
        OutputSize = outputSize;
    }

    /// <summary>
    /// A next-token network over a vocabulary of V tokens: one-hot tokens, the layers, a per-step
    /// readout of V classes and cross-entropy. Such a network trains on a <see cref="CharCorpus"/>
    /// (<see cref="TrainingData.FromCorpus"/>) and samples text; V is the corpus's vocabulary size.
    /// </summary>
    /// <param name="vocabulary">V, the number of tokens; the first layer's cell reads width V.</param>
    /// <param name="layers">The recurrent layers, bottom first, reading left to right.</param>
    /// <returns>The options.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="layers"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="vocabulary"/> is not positive.</exception>
    public static SequenceNetworkOptions NextToken(int vocabulary, IEnumerable<RecurrentLayer> layers) =>
        new(InputLayer.OneHot(vocabulary), layers, vocabulary);

    /// <summary>How the inputs enter the first recurrent layer.</summary>
    public InputLayer Input { get; init; }

    /// <summary>The recurrent layers, bottom first; at least one.</summary>
    public IReadOnlyList<RecurrentLayer> Layers
    {
        get => _layers;
        init => _layers = value is null ? null! : new ReadOnlyCollection<RecurrentLayer>(value.ToArray());
    }

    /// <summary>
    /// The dropout probability, in [0, 1), on each recurrent layer's outputs except the last, in
    /// training only (as PyTorch's <c>dropout</c> argument); 0 for none.
    /// </summary>
    public double Dropout { get; init; }

    /// <summary>Which of the five input/output shapes the network has; <see cref="Head.PerStep"/> unless changed.</summary>
    public Head Head { get; init; } = Head.PerStep;

    /// <summary>O, the width of the readout y = V h + c: the number of classes for cross-entropy, of values for mean squared error.</summary>
    public int OutputSize { get; init; }

    /// <summary>The loss of the head: cross-entropy over classes (int64 targets) or mean squared error (float targets).</summary>
    public LossKind Loss { get; init; } = LossKind.CrossEntropy;

    /// <summary>The floating-point type of the parameters and of the float tensors the network accepts.</summary>
    public Precision Precision { get; init; } = Precision.Float32;

    /// <summary>The seed of the generator that draws the initial parameters, so equal options give equal networks.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>These options with another input layer.</summary>
    /// <param name="input">The input layer.</param>
    /// <returns>A copy with <see cref="Input"/> replaced.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="input"/> is null.</exception>
    public SequenceNetworkOptions WithInput(InputLayer input)
    {
        Guard.NotNull(input, nameof(input));
        return this with { Input = input };
    }

    /// <summary>These options with other recurrent layers.</summary>
    /// <param name="layers">The layers, bottom first.</param>
    /// <returns>A copy with <see cref="Layers"/> replaced.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="layers"/> is null.</exception>
    public SequenceNetworkOptions WithLayers(IEnumerable<RecurrentLayer> layers)
    {
        Guard.NotNull(layers, nameof(layers));
        return this with { Layers = layers.ToArray() };
    }

    /// <summary>These options with dropout <paramref name="probability"/> between the recurrent layers.</summary>
    /// <param name="probability">The probability of dropping a unit, in [0, 1).</param>
    /// <returns>A copy with <see cref="Dropout"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="probability"/> is outside [0, 1).</exception>
    public SequenceNetworkOptions WithDropout(double probability)
    {
        Property.InRange(probability, 0, true, 1, false, nameof(Dropout));
        return this with { Dropout = probability };
    }

    /// <summary>These options with another head.</summary>
    /// <param name="head">The head, such as <c>Head.ManyToOne(Pooling.Last)</c>.</param>
    /// <returns>A copy with <see cref="Head"/> replaced.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="head"/> is null.</exception>
    public SequenceNetworkOptions WithHead(Head head)
    {
        Guard.NotNull(head, nameof(head));
        return this with { Head = head };
    }

    /// <summary>These options with another readout width.</summary>
    /// <param name="outputSize">O, positive.</param>
    /// <returns>A copy with <see cref="OutputSize"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="outputSize"/> is not positive.</exception>
    public SequenceNetworkOptions WithOutputSize(int outputSize)
    {
        Property.Positive(outputSize, nameof(OutputSize));
        return this with { OutputSize = outputSize };
    }

    /// <summary>These options with another loss.</summary>
    /// <param name="loss">The loss.</param>
    /// <returns>A copy with <see cref="Loss"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="loss"/> is not a defined value.</exception>
    public SequenceNetworkOptions WithLoss(LossKind loss)
    {
        Property.Defined(loss, nameof(Loss));
        return this with { Loss = loss };
    }

    /// <summary>These options with another precision.</summary>
    /// <param name="precision">The floating-point type of the parameters.</param>
    /// <returns>A copy with <see cref="Precision"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="precision"/> is not a defined value.</exception>
    public SequenceNetworkOptions WithPrecision(Precision precision)
    {
        Property.Defined(precision, nameof(Precision));
        return this with { Precision = precision };
    }

    /// <summary>These options with another seed for the initial parameters.</summary>
    /// <param name="seed">The seed.</param>
    /// <returns>A copy with <see cref="Seed"/> replaced.</returns>
    public SequenceNetworkOptions WithSeed(ulong seed) => this with { Seed = seed };

    /// <summary>
    /// Checks every property, throwing an <see cref="ArgumentException"/> whose parameter name is the
    /// first invalid property's and whose message says what was expected and what arrived: layers
    /// whose widths do not chain, a head the input or the layers do not allow, a decoder that does not fit.
    /// </summary>
    /// <exception cref="ArgumentException">A property is out of range, or properties contradict each other.</exception>
    public void Validate()
    {
        if (Input is null) Property.Fail(nameof(Input), "expected an input layer, but got null.");
        if (Layers is null || Layers.Count == 0) Property.Fail(nameof(Layers), "expected at least one recurrent layer, but got none.");
        var width = Input!.Width;
        for (var k = 0; k < Layers!.Count; k++)
        {
            var layer = Layers[k];
            if (layer?.Cell is null) Property.Fail(nameof(Layers), $"expected a layer with a cell at index {k}, but got null.");
            Property.Defined(layer!.Direction, nameof(Layers));
            if (layer.Cell!.InputSize != width)
                Property.Fail(nameof(Layers),
                    $"layer {k} ('{layer.Cell.Name}') reads vectors of width {layer.Cell.InputSize}, but "
                    + (k == 0 ? $"the input layer ({Input}) gives {width}." : $"layer {k - 1} gives {width}."));
            width = layer.OutputWidth;
        }
        Property.InRange(Dropout, 0, true, 1, false, nameof(Dropout));
        if (Head is null) Property.Fail(nameof(Head), "expected a head, but got null.");
        Property.Positive(OutputSize, nameof(OutputSize));
        Property.Defined(Loss, nameof(Loss));
        Property.Defined(Precision, nameof(Precision));
        if (Head!.Kind == HeadKind.OneToMany && Layers.Any(l => l.Directions == 2))
            Property.Fail(nameof(Head), "a one-to-many head generates its sequence left to right, so its layers cannot be bidirectional.");
        if (Head.Decoder is { } d && (d.Input is null || d.Layers is null || d.Layers.Any(l => l?.Cell is null)))
            Property.Fail(nameof(Head), "expected a decoder with an input layer and layers with cells, but a part is null.");
        // What is left concerns the head: the core checks it and the message moves to the property.
        try
        {
            NetworkSpecModule.Validate(ToCoreUnchecked());
        }
        catch (ArgumentException e)
        {
            var message = e.Message;
            var colon = message.IndexOf(": ", StringComparison.Ordinal);
            var detail = colon >= 0 ? message[(colon + 2)..] : message;
            // ArgumentException appends " (Parameter 'x')" to its message.
            var tail = detail.LastIndexOf(" (Parameter '", StringComparison.Ordinal);
            Property.Fail(nameof(Head), tail >= 0 ? detail[..tail] : detail);
        }
    }

    internal NetworkSpec ToCore()
    {
        Validate();
        return ToCoreUnchecked();
    }

    private NetworkSpec ToCoreUnchecked() => new(
        Input.ToCore(),
        FSharp.ListOf(Layers.Select(l => l.ToCore())),
        Dropout,
        Head.ToCore(),
        OutputSize,
        Loss == LossKind.CrossEntropy ? SeqNets.Loss.CrossEntropy : SeqNets.Loss.MeanSquared);

    internal torch.ScalarType DType => Precision == Precision.Float64 ? torch.float64 : torch.float32;

    /// <summary>The options that describe an existing core network; the seed is not recorded there, so it is 0.</summary>
    internal static SequenceNetworkOptions Of(Network network)
    {
        var spec = network.Spec;
        return new SequenceNetworkOptions(InputLayer.Of(spec.Input), spec.Layers.Select(RecurrentLayer.Of), spec.Output)
        {
            Dropout = spec.Dropout,
            Head = Head.Of(spec.Head),
            Loss = spec.Loss.IsCrossEntropy ? LossKind.CrossEntropy : LossKind.MeanSquared,
            Precision = network.DType == torch.float64 ? Precision.Float64 : Precision.Float32,
            Seed = 0,
        };
    }
}
