namespace SeqNets.CSharp;

/// <summary>
/// What a <see cref="SequenceNetwork"/> predicts for a batch of inputs: int64 classes (cross-entropy)
/// or values in the network's precision (mean squared error), per step or per row, and for generated
/// sequences the length of each row. It owns its tensor: dispose it when done.
/// </summary>
public sealed class SequencePrediction : IDisposable
{
    internal SequencePrediction(Tensor values, long[]? lengths)
    {
        Values = values;
        Lengths = lengths is null ? null : Array.AsReadOnly(lengths);
    }

    /// <summary>
    /// The predictions: [T; B] classes or [T; B; O] values per step (per-step and one-to-many heads),
    /// [B] or [B; O] per row (many-to-one and one-to-one), [T; B] decoded ids (encoder–decoder).
    /// Padded steps hold the readout of a zero output and are not predictions.
    /// </summary>
    public Tensor Values { get; }

    /// <summary>
    /// The real steps of each row: those given for a per-step head, those generated (up to and with the
    /// end id) for an encoder–decoder; null when every step is real or the predictions are per row.
    /// </summary>
    public IReadOnlyList<long>? Lengths { get; }

    /// <summary>Frees the native memory of <see cref="Values"/>.</summary>
    public void Dispose() => Values.Dispose();
}

/// <summary>A network's quality on one batch, every measure ignoring padding.</summary>
public sealed record SequenceMetrics
{
    internal SequenceMetrics(SeqNets.Metrics m)
    {
        Loss = m.Loss;
        Accuracy = double.IsNaN(m.Accuracy) ? null : m.Accuracy;
        ExactMatch = double.IsNaN(m.ExactMatch) ? null : m.ExactMatch;
        MeanAbsoluteError = double.IsNaN(m.MeanAbsoluteError) ? null : m.MeanAbsoluteError;
        Count = m.Count;
    }

    /// <summary>The head's loss: the mean over real steps (sequence outputs) or over rows.</summary>
    public double Loss { get; }

    /// <summary>The share of correct predictions, per real step or per row; null for a regression.</summary>
    public double? Accuracy { get; }

    /// <summary>The share of rows whose whole predicted sequence is right; null for per-row predictions and regressions.</summary>
    public double? ExactMatch { get; }

    /// <summary>The mean absolute error of a regression's predictions; null for classification.</summary>
    public double? MeanAbsoluteError { get; }

    /// <summary>The rows, or the real steps of sequence outputs, that were counted.</summary>
    public int Count { get; }
}
