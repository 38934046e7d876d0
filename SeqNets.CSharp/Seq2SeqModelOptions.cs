namespace SeqNets.CSharp;

/// <summary>Whether and how a <see cref="Seq2SeqModel"/>'s decoder attends to the encoder's states.</summary>
public enum AttentionStyle
{
    /// <summary>No attention: the plain Sutskever decoder, started from the bridged final encoder state only.</summary>
    None,

    /// <summary>Bahdanau: the context is computed from the previous decoder state and fed into the cell with the token.</summary>
    Bahdanau,

    /// <summary>Luong: attention after the step, the attentional state h̃ = tanh(W_c [c; h]) feeds the readout (and, with input feeding, the next step).</summary>
    Luong,
}

/// <summary>How attention scores a decoder state h against an encoder state s.</summary>
public enum AttentionScore
{
    /// <summary>hᵀ s, no parameters; the encoder's outputs must be as wide as the decoder's state (a one-direction encoder).</summary>
    Dot,

    /// <summary>The bilinear hᵀ W s, with W learned.</summary>
    General,

    /// <summary>Bahdanau's vᵀ tanh(W h + U s), with W, U and v learned, of width <see cref="Seq2SeqModelOptions.AdditiveWidth"/>.</summary>
    Additive,
}

/// <summary>How beam search ranks hypotheses of different lengths |y| (the end token included).</summary>
public enum LengthNormalization
{
    /// <summary>log p(y) as it is; short hypotheses are favoured.</summary>
    None,

    /// <summary>log p(y) / |y|^α.</summary>
    Power,

    /// <summary>log p(y) / ((5 + |y|) / 6)^α, as in Google's neural machine translation (Wu et al. 2016).</summary>
    Gnmt,
}

/// <summary>
/// The shape of a <see cref="Seq2SeqModel"/>: token embeddings, a multi-layer encoder (optionally
/// bidirectional) and decoder of one cell family, attention, the longest target, teacher forcing,
/// source reversal, the precision and the seed of the initial parameters. Immutable; change it with a
/// <c>with</c> expression. Invalid values are refused with an <see cref="ArgumentException"/> whose
/// parameter name is the property's.
/// </summary>
public sealed record Seq2SeqModelOptions
{
    /// <summary>The defaults: E = 32, H = 64, one LSTM layer each side, a bidirectional encoder, Luong attention (general score, input feeding), targets up to 32 tokens, teacher forcing always, float32, seed 1.</summary>
    public static Seq2SeqModelOptions Default { get; } = new();

    /// <summary>Options with the defaults, as <see cref="Default"/>: E = 32, H = 64, one bidirectional LSTM encoder layer, Luong attention.</summary>
    public Seq2SeqModelOptions()
    {
    }

    /// <summary>E, the width of both token embeddings.</summary>
    public int EmbeddingSize { get; init; } = 32;

    /// <summary>H, the hidden units of every recurrent layer (a bidirectional encoder layer has H per direction).</summary>
    public int HiddenSize { get; init; } = 64;

    /// <summary>The number of recurrent layers of the encoder and of the decoder.</summary>
    public int Layers { get; init; } = 1;

    /// <summary>The cell family of every layer (a multiplicative RNN has H factors).</summary>
    public CellKind Cell { get; init; } = CellKind.Lstm;

    /// <summary>Whether the encoder reads the source both ways, its directions concatenated.</summary>
    public bool BidirectionalEncoder { get; init; } = true;

    /// <summary>The attention style, or <see cref="AttentionStyle.None"/> for none.</summary>
    public AttentionStyle Attention { get; init; } = AttentionStyle.Luong;

    /// <summary>The attention score; not used without attention.</summary>
    public AttentionScore Score { get; init; } = AttentionScore.General;

    /// <summary>The width of the additive score's tanh layer; null for <see cref="HiddenSize"/>.</summary>
    public int? AdditiveWidth { get; init; }

    /// <summary>Whether Luong attention feeds the attentional state into the next step's input; not used by the other styles.</summary>
    public bool InputFeeding { get; init; } = true;

    /// <summary>The longest target the model is trained on and produces, the end token included.</summary>
    public int MaxLength { get; init; } = 32;

    /// <summary>The probability, in [0, 1], that training feeds the decoder the true previous token rather than its own guess.</summary>
    public double TeacherForcing { get; init; } = 1.0;

    /// <summary>Whether the encoder reads each source reversed, as Sutskever et al. (2014) did.</summary>
    public bool ReverseSource { get; init; }

    /// <summary>The floating-point precision of the parameters.</summary>
    public Precision Precision { get; init; } = Precision.Float32;

    /// <summary>The seed of the initial parameters; 0 for a loaded model, whose parameters were not drawn from a seed.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>Checks every property; the exception's parameter name is the property's.</summary>
    internal void Validate()
    {
        Property.Positive(EmbeddingSize, nameof(EmbeddingSize));
        Property.Positive(HiddenSize, nameof(HiddenSize));
        Property.Positive(Layers, nameof(Layers));
        Property.Defined(Cell, nameof(Cell));
        Property.Defined(Attention, nameof(Attention));
        Property.Defined(Score, nameof(Score));
        Property.Defined(Precision, nameof(Precision));
        if (AdditiveWidth is int a) Property.Positive(a, nameof(AdditiveWidth));
        if (MaxLength < 2)
            Property.Fail(nameof(MaxLength), $"expected at least 2 (one token and the end token), but got {MaxLength}.");
        Property.InRange(TeacherForcing, 0, true, 1, true, nameof(TeacherForcing));
        if (Attention != AttentionStyle.None && Score == AttentionScore.Dot && BidirectionalEncoder)
            Property.Fail(nameof(Score),
                $"expected General or Additive with a bidirectional encoder: Dot compares the decoder's state (H = {HiddenSize}) "
                + $"with the encoder's outputs (2H = {2 * HiddenSize}), which must be equally wide, but got Dot.");
    }

    internal torch.ScalarType DType => Precision == Precision.Float64 ? torch.float64 : torch.float32;

    internal SeqNets.CellKind CoreCell => Cell switch
    {
        CellKind.ElmanTanh => SeqNets.CellKind.ElmanTanh,
        CellKind.ElmanRelu => SeqNets.CellKind.ElmanRelu,
        CellKind.Gru => SeqNets.CellKind.GruPyTorch,
        CellKind.GruLecture => SeqNets.CellKind.GruLecture,
        CellKind.Lstm => SeqNets.CellKind.Lstm,
        _ => SeqNets.CellKind.NewMultiplicativeRnn(HiddenSize),
    };

    /// <summary>The core configuration over the two vocabularies.</summary>
    internal Seq2SeqConfig ToCore(TokenVocabulary source, TokenVocabulary target)
    {
        Validate();
        var score = Score switch
        {
            AttentionScore.Dot => SeqNets.Score.Dot,
            AttentionScore.General => SeqNets.Score.General,
            _ => SeqNets.Score.NewAdditive(AdditiveWidth ?? HiddenSize),
        };
        var attention = Attention switch
        {
            AttentionStyle.None => Microsoft.FSharp.Core.FSharpOption<Tuple<SeqNets.AttentionStyle, SeqNets.Score>>.None,
            AttentionStyle.Bahdanau => Microsoft.FSharp.Core.FSharpOption<Tuple<SeqNets.AttentionStyle, SeqNets.Score>>.Some(
                Tuple.Create(SeqNets.AttentionStyle.Bahdanau, score)),
            _ => Microsoft.FSharp.Core.FSharpOption<Tuple<SeqNets.AttentionStyle, SeqNets.Score>>.Some(
                Tuple.Create(SeqNets.AttentionStyle.NewLuong(InputFeeding), score)),
        };
        return new Seq2SeqConfig(source, target, EmbeddingSize, HiddenSize, Layers, CoreCell, BidirectionalEncoder,
            attention, MaxLength, TeacherForcing, ReverseSource);
    }

    /// <summary>The options that describe a core seq2seq network, such as one read from a checkpoint; the seed is 0.</summary>
    internal static Seq2SeqModelOptions Of(Network network)
    {
        var spec = network.Spec;
        var d = ((SeqNets.Head.EncoderDecoder)spec.Head).Item;
        var first = spec.Layers.Head.Cell;
        var cell = first.Name switch
        {
            "elman-tanh" => CellKind.ElmanTanh,
            "elman-relu" => CellKind.ElmanRelu,
            "gru-pytorch" => CellKind.Gru,
            "gru-lecture" => CellKind.GruLecture,
            "lstm" => CellKind.Lstm,
            _ => CellKind.MultiplicativeRnn,
        };
        var o = new Seq2SeqModelOptions
        {
            EmbeddingSize = spec.Input is SeqNets.InputLayer.Embedding e ? e.width : 0,
            HiddenSize = first.HiddenSize,
            Layers = spec.Layers.Length,
            Cell = cell,
            BidirectionalEncoder = spec.Layers.Head.Directions == 2,
            MaxLength = d.MaxLength,
            TeacherForcing = d.TeacherForcing,
            ReverseSource = d.ReverseSource,
            Precision = network.DType == torch.float64 ? Precision.Float64 : Precision.Float32,
            Seed = 0,
            Attention = AttentionStyle.None,
        };
        if (d.Attention is { } a)
        {
            var (style, score) = (a.Value.Item1, a.Value.Item2);
            o = o with
            {
                Attention = style.IsBahdanau ? AttentionStyle.Bahdanau : AttentionStyle.Luong,
                InputFeeding = style is SeqNets.AttentionStyle.Luong l ? l.inputFeeding : o.InputFeeding,
                Score = score.IsDot ? AttentionScore.Dot : score.IsGeneral ? AttentionScore.General : AttentionScore.Additive,
                AdditiveWidth = score is SeqNets.Score.Additive w && w.width != first.HiddenSize ? w.width : null,
            };
        }
        return o;
    }
}
