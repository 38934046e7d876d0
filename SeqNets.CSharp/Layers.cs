using System.Collections.ObjectModel;
using Microsoft.FSharp.Core;

namespace SeqNets.CSharp;

/// <summary>What a network's input layer reads and how it turns it into vectors.</summary>
public enum InputKind
{
    /// <summary>Vectors x_t of a fixed width, used as they are: inputs [T; B; I] of floats.</summary>
    Vectors,

    /// <summary>Token ids [T; B] (int64) as one-hot vectors of the vocabulary's width; no parameters.</summary>
    OneHot,

    /// <summary>Token ids [T; B] (int64) looked up in a learned table [V; E], as PyTorch's <c>nn.Embedding</c>.</summary>
    Embedding,

    /// <summary>Vectors mapped by a learned affine map W x + b to another width, as PyTorch's <c>nn.Linear</c>.</summary>
    Dense,
}

/// <summary>
/// How a network's inputs enter its first recurrent layer: plain vectors, one-hot tokens, an
/// embedding table or a dense map. Make one with <see cref="Vectors"/>, <see cref="OneHot"/>,
/// <see cref="Embedding"/> or <see cref="Dense"/>; its <see cref="Width"/> is what the first
/// recurrent layer's cell must read.
/// </summary>
public sealed record InputLayer
{
    private InputLayer(InputKind kind, int width, int? vocabulary, int? inputSize)
    {
        Kind = kind;
        Width = width;
        Vocabulary = vocabulary;
        InputSize = inputSize;
    }

    /// <summary>Vectors x_t of width <paramref name="width"/>, read as they are: inputs [T; B; I] (or [B; I] for a vector head).</summary>
    /// <param name="width">I, the width of each input vector.</param>
    /// <returns>The input layer.</returns>
    /// <exception cref="ArgumentException"><paramref name="width"/> is not positive.</exception>
    public static InputLayer Vectors(int width)
    {
        Guard.Positive(width, nameof(width));
        return new(InputKind.Vectors, width, null, width);
    }

    /// <summary>Token ids [T; B] (int64) in [0, V) as one-hot vectors of width V; it has no parameters.</summary>
    /// <param name="vocabulary">V, the number of distinct tokens.</param>
    /// <returns>The input layer.</returns>
    /// <exception cref="ArgumentException"><paramref name="vocabulary"/> is not positive.</exception>
    public static InputLayer OneHot(int vocabulary)
    {
        Guard.Positive(vocabulary, nameof(vocabulary));
        return new(InputKind.OneHot, vocabulary, vocabulary, null);
    }

    /// <summary>
    /// Token ids [T; B] (int64) in [0, V) looked up in a learned table [V; E], initialised N(0, 1)
    /// as PyTorch's <c>nn.Embedding</c>.
    /// </summary>
    /// <param name="vocabulary">V, the number of distinct tokens.</param>
    /// <param name="width">E, the width of each embedding.</param>
    /// <returns>The input layer.</returns>
    /// <exception cref="ArgumentException">A size is not positive.</exception>
    public static InputLayer Embedding(int vocabulary, int width)
    {
        Guard.Positive(vocabulary, nameof(vocabulary));
        Guard.Positive(width, nameof(width));
        return new(InputKind.Embedding, width, vocabulary, null);
    }

    /// <summary>Vectors of width <paramref name="inputSize"/> mapped by a learned W x + b to width <paramref name="width"/>, as PyTorch's <c>nn.Linear</c>.</summary>
    /// <param name="inputSize">I, the width of each input vector.</param>
    /// <param name="width">E, the width the first recurrent layer reads.</param>
    /// <returns>The input layer.</returns>
    /// <exception cref="ArgumentException">A size is not positive.</exception>
    public static InputLayer Dense(int inputSize, int width)
    {
        Guard.Positive(inputSize, nameof(inputSize));
        Guard.Positive(width, nameof(width));
        return new(InputKind.Dense, width, null, inputSize);
    }

    /// <summary>What the layer reads and how it maps it.</summary>
    public InputKind Kind { get; }

    /// <summary>The width of the vectors the first recurrent layer reads: I, V or E.</summary>
    public int Width { get; }

    /// <summary>V, the number of tokens of a one-hot or embedding input; null for vector inputs.</summary>
    public int? Vocabulary { get; }

    /// <summary>I, the width of the vectors a vector or dense input reads; null for token inputs.</summary>
    public int? InputSize { get; }

    /// <summary>Whether the layer reads token ids (int64) rather than float vectors.</summary>
    public bool TakesTokens => Kind is InputKind.OneHot or InputKind.Embedding;

    internal SeqNets.InputLayer ToCore() => Kind switch
    {
        InputKind.Vectors => SeqNets.InputLayer.NewVectors(Width),
        InputKind.OneHot => SeqNets.InputLayer.NewOneHot(Width),
        InputKind.Embedding => SeqNets.InputLayer.NewEmbedding(Vocabulary!.Value, Width),
        _ => SeqNets.InputLayer.NewDense(InputSize!.Value, Width),
    };

    internal static InputLayer Of(SeqNets.InputLayer core) => core switch
    {
        SeqNets.InputLayer.Vectors v => Vectors(v.width),
        SeqNets.InputLayer.OneHot o => OneHot(o.vocabulary),
        SeqNets.InputLayer.Embedding e => Embedding(e.vocabulary, e.width),
        SeqNets.InputLayer.Dense d => Dense(d.inputSize, d.width),
        _ => throw new ArgumentException($"core: an input layer this facade does not know: {core}.", nameof(core)),
    };

    /// <summary>Describes the layer, such as <c>embedding 65 → 32</c> or <c>one-hot over 27 tokens</c>.</summary>
    /// <returns>A short description.</returns>
    public override string ToString() => SeqNets.InputLayerModule.Describe(ToCore());
}

/// <summary>Which way a recurrent layer reads each sequence, and how a bidirectional layer merges its two directions.</summary>
public enum LayerDirection
{
    /// <summary>Left to right, each row from its first element to its own last.</summary>
    Forward,

    /// <summary>
    /// Both ways, outputs concatenated [h→; h←] (twice the hidden width), as PyTorch's
    /// <c>bidirectional=True</c>: a second copy of the cell, with its own parameters, reads each row
    /// from its own last element back to its first, and its outputs are put back in time order.
    /// </summary>
    Bidirectional,

    /// <summary>Both ways as <see cref="Bidirectional"/>, outputs summed h→ + h← (the hidden width).</summary>
    BidirectionalSum,
}

/// <summary>
/// A recurrent layer of a network: any <see cref="RecurrentCell"/>, built-in or user-defined, reading
/// in one direction or both. Its <see cref="OutputWidth"/> is what the next layer's cell reads.
/// </summary>
public sealed record RecurrentLayer
{
    /// <summary>A layer over <paramref name="cell"/> reading in the given direction.</summary>
    /// <param name="cell">The layer's cell; each direction gets its own parameters.</param>
    /// <param name="direction">Which way the layer reads.</param>
    /// <exception cref="ArgumentNullException"><paramref name="cell"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="direction"/> is not a defined value.</exception>
    public RecurrentLayer(RecurrentCell cell, LayerDirection direction = LayerDirection.Forward)
    {
        Guard.NotNull(cell, nameof(cell));
        Guard.Defined(direction, nameof(direction));
        Cell = cell;
        Direction = direction;
    }

    /// <summary>A layer over <paramref name="cell"/> reading left to right.</summary>
    /// <param name="cell">The layer's cell.</param>
    /// <returns>The layer.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="cell"/> is null.</exception>
    public static RecurrentLayer Forward(RecurrentCell cell) => new(cell, LayerDirection.Forward);

    /// <summary>A layer over <paramref name="cell"/> reading both ways, its outputs concatenated as PyTorch's <c>bidirectional=True</c>.</summary>
    /// <param name="cell">The cell of each direction, each with its own parameters.</param>
    /// <returns>The layer, of output width 2H.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="cell"/> is null.</exception>
    public static RecurrentLayer Bidirectional(RecurrentCell cell) => new(cell, LayerDirection.Bidirectional);

    /// <summary>
    /// <paramref name="count"/> layers stacked bottom first: layer 0 reads <paramref name="inputWidth"/>,
    /// each next layer the output width of the one below, and <paramref name="make"/> is called with
    /// the input width of each layer in turn.
    /// </summary>
    /// <param name="count">L, the number of layers, positive.</param>
    /// <param name="inputWidth">The width layer 0 reads: the input layer's <see cref="InputLayer.Width"/>.</param>
    /// <param name="make">Builds the cell of a layer from the width it reads, such as <c>i => RecurrentCell.Lstm(i, 64)</c>.</param>
    /// <param name="direction">Which way every layer reads.</param>
    /// <returns>The layers, bottom first.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="make"/> is null or returns null.</exception>
    /// <exception cref="ArgumentException">A count or width is not positive, or a cell does not read the width it was asked for.</exception>
    public static IReadOnlyList<RecurrentLayer> Stack(int count, int inputWidth, Func<int, RecurrentCell> make,
        LayerDirection direction = LayerDirection.Forward)
    {
        Guard.Positive(count, nameof(count));
        Guard.Positive(inputWidth, nameof(inputWidth));
        Guard.NotNull(make, nameof(make));
        Guard.Defined(direction, nameof(direction));
        var layers = new List<RecurrentLayer>(count);
        var width = inputWidth;
        for (var k = 0; k < count; k++)
        {
            var cell = make(width)
                ?? throw new ArgumentNullException(nameof(make), $"make: expected a cell for layer {k}, but got null.");
            if (cell.InputSize != width)
                throw new ArgumentException(
                    $"make: layer {k} reads vectors of width {width}, but the cell made for it ('{cell.Name}') has InputSize = {cell.InputSize}.",
                    nameof(make));
            var layer = new RecurrentLayer(cell, direction);
            layers.Add(layer);
            width = layer.OutputWidth;
        }
        return new ReadOnlyCollection<RecurrentLayer>(layers);
    }

    /// <summary>The layer's cell; a bidirectional layer has a second copy of it with its own parameters.</summary>
    public RecurrentCell Cell { get; init; }

    /// <summary>Which way the layer reads.</summary>
    public LayerDirection Direction { get; init; }

    /// <summary>The number of directions: 1 for a forward layer, 2 for a bidirectional one.</summary>
    public int Directions => Direction == LayerDirection.Forward ? 1 : 2;

    /// <summary>The width of the layer's output at each step, what the next layer reads: H, or 2H for concatenated directions.</summary>
    public int OutputWidth => Direction == LayerDirection.Bidirectional ? 2 * Cell.HiddenSize : Cell.HiddenSize;

    /// <summary>This layer reading in another direction.</summary>
    /// <param name="direction">The direction.</param>
    /// <returns>A copy with <see cref="Direction"/> replaced.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="direction"/> is not a defined value.</exception>
    public RecurrentLayer WithDirection(LayerDirection direction)
    {
        Guard.Defined(direction, nameof(direction));
        return this with { Direction = direction };
    }

    internal SeqNets.RecurrentLayer ToCore() => new(Cell.Core, Direction switch
    {
        LayerDirection.Forward => SeqNets.Direction.Forward,
        LayerDirection.Bidirectional => SeqNets.Direction.NewBidirectional(Merge.Concat),
        _ => SeqNets.Direction.NewBidirectional(Merge.Sum),
    });

    internal static RecurrentLayer Of(SeqNets.RecurrentLayer core) => new(RecurrentCell.Of(core.Cell),
        core.Direction is SeqNets.Direction.Bidirectional b
            ? b.Item.IsSum ? LayerDirection.BidirectionalSum : LayerDirection.Bidirectional
            : LayerDirection.Forward);

    /// <summary>Describes the layer by its cell, its sizes and its direction.</summary>
    /// <returns>A one-line description.</returns>
    public override string ToString() =>
        Direction switch
        {
            LayerDirection.Forward => Cell.ToString(),
            LayerDirection.Bidirectional => $"{Cell}, bidirectional",
            _ => $"{Cell}, bidirectional (sum)",
        };
}

/// <summary>How a many-to-one head reduces the top layer's outputs to one vector per row.</summary>
public enum Pooling
{
    /// <summary>
    /// The state after each row's own last element (for a bidirectional layer, each direction's final
    /// state: forward after the last element, backward after the first), merged as the layer merges.
    /// </summary>
    Last,

    /// <summary>The mean of the outputs over each row's real steps.</summary>
    Mean,

    /// <summary>The element-wise maximum of the outputs over each row's real steps.</summary>
    Max,
}

/// <summary>How a one-to-many head feeds its vector v [B; I] to the recurrence.</summary>
public enum VectorAs
{
    /// <summary>s_0 = tanh(W v + b) for every layer, with W and b learned; the inputs x_t are zero.</summary>
    InitialState,

    /// <summary>x_t = v at every step, through the input layer.</summary>
    InputAtEachStep,
}

/// <summary>How an encoder's final states become a decoder's initial states.</summary>
public enum DecoderBridge
{
    /// <summary>Decoder layer k starts from encoder layer k's final state; the layers must agree in number and state size.</summary>
    Copy,

    /// <summary>Decoder layer k starts from tanh(W_k z + b_k), z the top encoder layer's final states, with W_k and b_k learned; sizes may differ.</summary>
    Projection,
}

/// <summary>
/// The decoder of an encoder–decoder head (Sutskever et al. 2014): target tokens in, one prediction per
/// step, teacher forcing in training and greedy decoding to <see cref="Eos"/> in prediction.
/// Immutable; change it with <c>WithBridge</c>, <c>WithMaxLength</c> or a <c>with</c> expression.
/// </summary>
public sealed record DecoderOptions
{
    private IReadOnlyList<RecurrentLayer> _layers = [];

    /// <summary>A decoder reading target tokens through <paramref name="input"/> with the given layers, from a learned projection of the encoder's state.</summary>
    /// <param name="input">The target tokens' input layer: <see cref="InputLayer.OneHot"/> or <see cref="InputLayer.Embedding"/> of the target vocabulary.</param>
    /// <param name="layers">The decoder's recurrent layers, reading left to right, bottom first.</param>
    /// <param name="bos">The id that starts every decoded sequence.</param>
    /// <param name="eos">The id that ends a sequence; decoding stops there.</param>
    /// <param name="maxLength">The longest sequence decoding produces (and training accepts), the end id included.</param>
    /// <exception cref="ArgumentNullException"><paramref name="input"/> or <paramref name="layers"/> is null.</exception>
    public DecoderOptions(InputLayer input, IEnumerable<RecurrentLayer> layers, int bos, int eos, int maxLength)
    {
        Guard.NotNull(input, nameof(input));
        Guard.NotNull(layers, nameof(layers));
        Input = input;
        Layers = layers.ToArray();
        Bos = bos;
        Eos = eos;
        MaxLength = maxLength;
    }

    /// <summary>The target tokens' input layer (one-hot or embedding of the target vocabulary).</summary>
    public InputLayer Input { get; init; }

    /// <summary>The decoder's recurrent layers, bottom first; they read left to right.</summary>
    public IReadOnlyList<RecurrentLayer> Layers
    {
        get => _layers;
        init => _layers = value is null ? null! : new ReadOnlyCollection<RecurrentLayer>(value.ToArray());
    }

    /// <summary>How the encoder's final states become the decoder's initial states; <see cref="DecoderBridge.Projection"/> unless changed.</summary>
    public DecoderBridge Bridge { get; init; } = DecoderBridge.Projection;

    /// <summary>The id that starts every decoded sequence (&lt;bos&gt;).</summary>
    public int Bos { get; init; }

    /// <summary>The id that ends a sequence (&lt;eos&gt;); every target row ends with it.</summary>
    public int Eos { get; init; }

    /// <summary>The longest sequence decoding produces and training accepts, the end id included.</summary>
    public int MaxLength { get; init; }

    /// <summary>This decoder with another bridge from the encoder.</summary>
    /// <param name="bridge">The bridge.</param>
    /// <returns>A copy with <see cref="Bridge"/> replaced.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bridge"/> is not a defined value.</exception>
    public DecoderOptions WithBridge(DecoderBridge bridge)
    {
        Guard.Defined(bridge, nameof(bridge));
        return this with { Bridge = bridge };
    }

    /// <summary>This decoder with another longest sequence.</summary>
    /// <param name="maxLength">The longest sequence, positive.</param>
    /// <returns>A copy with <see cref="MaxLength"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="maxLength"/> is not positive.</exception>
    public DecoderOptions WithMaxLength(int maxLength)
    {
        Guard.Positive(maxLength, nameof(maxLength));
        return this with { MaxLength = maxLength };
    }

    internal SeqNets.Decoder ToCore() => new(
        Input.ToCore(),
        FSharp.ListOf(Layers.Select(l => l.ToCore())),
        Bridge == DecoderBridge.Copy ? SeqNets.Bridge.Copy : SeqNets.Bridge.Projection,
        Bos, Eos, MaxLength,
        Microsoft.FSharp.Core.FSharpOption<Tuple<SeqNets.AttentionStyle, SeqNets.Score>>.None, 1.0, false);

    internal static DecoderOptions Of(SeqNets.Decoder d) =>
        new DecoderOptions(InputLayer.Of(d.Input), d.Layers.Select(RecurrentLayer.Of), d.Bos, d.Eos, d.MaxLength)
        {
            Bridge = d.Bridge.IsCopy ? DecoderBridge.Copy : DecoderBridge.Projection,
        };
}

/// <summary>The lecture's five input/output shapes, as the kind of a <see cref="Head"/>.</summary>
public enum HeadKind
{
    /// <summary>Synced many-to-many: a prediction y_t = g(h_t) at every real step (the character model's head).</summary>
    PerStep,

    /// <summary>Many-to-one: one prediction per row from the pooled outputs.</summary>
    ManyToOne,

    /// <summary>One-to-one: a vector x [B; I] to one prediction, through one step of the recurrence.</summary>
    OneToOne,

    /// <summary>One-to-many: a vector v [B; I] to a sequence of predictions.</summary>
    OneToMany,

    /// <summary>Many-to-many: the network's layers encode the source, a decoder produces the target.</summary>
    EncoderDecoder,
}

/// <summary>
/// One of the lecture's five input/output shapes, with its loss, metrics and predictions: a
/// prediction per step (<see cref="PerStep"/>), per row (<see cref="ManyToOne"/>,
/// <see cref="OneToOne"/>), a sequence from a vector (<see cref="OneToMany"/>), or an encoder and a
/// decoder (<see cref="EncoderDecoder"/>). Every head ignores padding.
/// </summary>
public sealed record Head
{
    private Head(HeadKind kind, Pooling? pooling, VectorAs? vectorAs, DecoderOptions? decoder)
    {
        Kind = kind;
        Pooling = pooling;
        VectorAs = vectorAs;
        Decoder = decoder;
    }

    /// <summary>
    /// Synced many-to-many: y_t = g(h_t) at every real step. Inputs [T; B] ids or [T; B; I] vectors;
    /// targets [T; B] classes or [T; B; O] values.
    /// </summary>
    public static Head PerStep { get; } = new(HeadKind.PerStep, null, null, null);

    /// <summary>
    /// One-to-one: a vector x [B; I] to y = g(h_1), h_1 = f(x, s_0), through one step of the
    /// recurrence; targets [B] classes or [B; O] values.
    /// </summary>
    public static Head OneToOne { get; } = new(HeadKind.OneToOne, null, null, null);

    /// <summary>
    /// Many-to-one: y = g(pool(h_1 … h_T)) per row, pooled over each row's own length. Inputs as for
    /// <see cref="PerStep"/>; targets [B] classes or [B; O] values.
    /// </summary>
    /// <param name="pooling">How the outputs are reduced: the last state of each row, their mean or their maximum.</param>
    /// <returns>The head.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="pooling"/> is not a defined value.</exception>
    public static Head ManyToOne(Pooling pooling = CSharp.Pooling.Last)
    {
        Guard.Defined(pooling, nameof(pooling));
        return new(HeadKind.ManyToOne, pooling, null, null);
    }

    /// <summary>
    /// One-to-many: a vector v [B; I] to y_1 … y_T, the vector as the initial state or as the input at
    /// each step; targets [T; B] classes or [T; B; O] values, T the number of steps to generate.
    /// </summary>
    /// <param name="vectorAs">How the vector enters the recurrence.</param>
    /// <returns>The head.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="vectorAs"/> is not a defined value.</exception>
    public static Head OneToMany(VectorAs vectorAs)
    {
        Guard.Defined(vectorAs, nameof(vectorAs));
        return new(HeadKind.OneToMany, null, vectorAs, null);
    }

    /// <summary>
    /// Many-to-many: the network's layers encode the source (ids [S; B] or vectors [S; B; I]), the
    /// decoder produces the target ids [T; B], each row ending in the decoder's end id.
    /// </summary>
    /// <param name="decoder">The decoder.</param>
    /// <returns>The head.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="decoder"/> is null.</exception>
    public static Head EncoderDecoder(DecoderOptions decoder)
    {
        Guard.NotNull(decoder, nameof(decoder));
        return new(HeadKind.EncoderDecoder, null, null, decoder);
    }

    /// <summary>Which of the five shapes the head is.</summary>
    public HeadKind Kind { get; }

    /// <summary>The pooling of a many-to-one head; null for the other heads.</summary>
    public Pooling? Pooling { get; }

    /// <summary>How a one-to-many head feeds its vector; null for the other heads.</summary>
    public VectorAs? VectorAs { get; }

    /// <summary>The decoder of an encoder–decoder head; null for the other heads.</summary>
    public DecoderOptions? Decoder { get; }

    /// <summary>Whether the head reads a sequence step by step (per step or many-to-one), where truncated BPTT can apply.</summary>
    internal bool ReadsSequence => Kind is HeadKind.PerStep or HeadKind.ManyToOne;

    /// <summary>Whether the head's inputs are one vector per row ([B; I]) rather than sequences.</summary>
    internal bool ReadsVectors => Kind is HeadKind.OneToOne or HeadKind.OneToMany;

    internal SeqNets.Head ToCore() => Kind switch
    {
        HeadKind.PerStep => SeqNets.Head.PerStep,
        HeadKind.OneToOne => SeqNets.Head.OneToOne,
        HeadKind.ManyToOne => SeqNets.Head.NewManyToOne(Pooling switch
        {
            CSharp.Pooling.Mean => SeqNets.Pooling.Mean,
            CSharp.Pooling.Max => SeqNets.Pooling.Max,
            _ => SeqNets.Pooling.Last,
        }),
        HeadKind.OneToMany => SeqNets.Head.NewOneToMany(
            VectorAs == CSharp.VectorAs.InitialState ? SeqNets.VectorAs.InitialState : SeqNets.VectorAs.InputAtEachStep),
        _ => SeqNets.Head.NewEncoderDecoder(Decoder!.ToCore()),
    };

    internal static Head Of(SeqNets.Head core) => core switch
    {
        SeqNets.Head.ManyToOne m => ManyToOne(m.Item.IsMean ? CSharp.Pooling.Mean : m.Item.IsMax ? CSharp.Pooling.Max : CSharp.Pooling.Last),
        SeqNets.Head.OneToMany o => OneToMany(o.Item.IsInitialState ? CSharp.VectorAs.InitialState : CSharp.VectorAs.InputAtEachStep),
        SeqNets.Head.EncoderDecoder e => EncoderDecoder(DecoderOptions.Of(e.Item)),
        _ when core.IsOneToOne => OneToOne,
        _ => PerStep,
    };

    /// <summary>Names the head and its setting, such as <c>ManyToOne (Mean)</c>.</summary>
    /// <returns>A short description.</returns>
    public override string ToString() => Kind switch
    {
        HeadKind.ManyToOne => $"ManyToOne ({Pooling})",
        HeadKind.OneToMany => $"OneToMany ({VectorAs})",
        HeadKind.EncoderDecoder => $"EncoderDecoder ({Decoder!.Layers.Count} decoder layers, {Decoder.Bridge})",
        _ => Kind.ToString(),
    };
}
