using System.Collections.ObjectModel;

namespace SeqNets.CSharp;

/// <summary>One training example of a <see cref="Seq2SeqModel"/>: a source and the target it should become, as tokens.</summary>
public sealed class TranslationPair
{
    /// <summary>A pair of token sequences; the tokens are copied.</summary>
    /// <param name="source">The source tokens, at least one.</param>
    /// <param name="target">The target tokens (without an end token; the model appends it), possibly none.</param>
    /// <exception cref="ArgumentNullException"><paramref name="source"/> or <paramref name="target"/> is null.</exception>
    public TranslationPair(IEnumerable<string> source, IEnumerable<string> target)
    {
        Guard.NotNull(source, nameof(source));
        Guard.NotNull(target, nameof(target));
        Source = Array.AsReadOnly(source.ToArray());
        Target = Array.AsReadOnly(target.ToArray());
    }

    /// <summary>A pair of texts as tokens of one character (one Unicode scalar value) each.</summary>
    /// <param name="source">The source text.</param>
    /// <param name="target">The target text.</param>
    /// <returns>The pair.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="source"/> or <paramref name="target"/> is null.</exception>
    public static TranslationPair Characters(string source, string target)
    {
        Guard.NotNull(source, nameof(source));
        Guard.NotNull(target, nameof(target));
        return new TranslationPair(Seq2SeqModel.Characters(source), Seq2SeqModel.Characters(target));
    }

    /// <summary>The source tokens, in order.</summary>
    public IReadOnlyList<string> Source { get; }

    /// <summary>The target tokens, without the end token.</summary>
    public IReadOnlyList<string> Target { get; }

    /// <summary>Shows the pair as its tokens joined by spaces.</summary>
    /// <returns>"source → target".</returns>
    public override string ToString() => $"{string.Join(" ", Source)} → {string.Join(" ", Target)}";
}

/// <summary>
/// A greedy translation of one source: the output tokens and, with attention, the weights every
/// decoded step gave each source token.
/// </summary>
public sealed class Translation
{
    internal Translation(string[] tokens, bool finished, double[][] attention)
    {
        Tokens = Array.AsReadOnly(tokens);
        Finished = finished;
        Attention = attention;
    }

    /// <summary>The output tokens, up to (without) the end token.</summary>
    public IReadOnlyList<string> Tokens { get; }

    /// <summary>Whether decoding produced the end token (false: it stopped at the model's maximum length).</summary>
    public bool Finished { get; }

    /// <summary>
    /// The attention weights [output step][source token]: one row per decoded step (the output tokens,
    /// then the end token's step when <see cref="Finished"/>), each row a distribution over the source
    /// tokens that sums to 1; empty for a model without attention.
    /// </summary>
    public double[][] Attention { get; }

    /// <summary>Shows the output tokens joined by spaces.</summary>
    /// <returns>The tokens.</returns>
    public override string ToString() => string.Join(" ", Tokens);
}

/// <summary>One hypothesis of beam search: its tokens, probability, ranking score and attention.</summary>
public sealed class BeamHypothesis
{
    internal BeamHypothesis(string[] tokens, double logProbability, double score, bool finished, double[][] attention)
    {
        Tokens = Array.AsReadOnly(tokens);
        LogProbability = logProbability;
        Score = score;
        Finished = finished;
        Attention = attention;
    }

    /// <summary>The output tokens, up to (without) the end token.</summary>
    public IReadOnlyList<string> Tokens { get; }

    /// <summary>log p(tokens, end | source), the end token's step included when <see cref="Finished"/>.</summary>
    public double LogProbability { get; }

    /// <summary>The ranking score: <see cref="LogProbability"/> under the length normalisation asked for.</summary>
    public double Score { get; }

    /// <summary>Whether the hypothesis ended with the end token (false: it stopped at the maximum length).</summary>
    public bool Finished { get; }

    /// <summary>The attention weights [output step][source token], one row per step as in <see cref="Translation.Attention"/>; empty without attention.</summary>
    public double[][] Attention { get; }

    /// <summary>Shows the tokens and the score.</summary>
    /// <returns>A one-line summary.</returns>
    public override string ToString() => $"{string.Join(" ", Tokens)}  (score {Score:F4}{(Finished ? "" : ", unfinished")})";
}
