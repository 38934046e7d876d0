using Microsoft.FSharp.Core;

namespace SeqNets.CSharp;

/// <summary>
/// One batch of examples for a <see cref="SequenceNetwork"/>'s head. The shapes follow the head:
/// <list type="table">
/// <listheader><term>head</term><description>inputs → targets</description></listheader>
/// <item><term>PerStep</term><description>ids [T; B] or vectors [T; B; I] → classes [T; B] or values [T; B; O]</description></item>
/// <item><term>ManyToOne</term><description>as PerStep → classes [B] or values [B; O]</description></item>
/// <item><term>OneToOne</term><description>vectors [B; I] → classes [B] or values [B; O]</description></item>
/// <item><term>OneToMany</term><description>vectors [B; I] → classes [T; B] or values [T; B; O]</description></item>
/// <item><term>EncoderDecoder</term><description>source ids [S; B] or vectors [S; B; I] → target ids [T; B], each row ending in the end id</description></item>
/// </list>
/// Classes are int64, values and vectors in the network's precision. It holds the caller's tensors
/// and does not dispose them.
/// </summary>
public sealed class SequenceBatch
{
    /// <summary>A batch of inputs and targets, with the real length of each row when the rows are padded.</summary>
    /// <param name="inputs">The inputs, time first for sequences: [T; B], [T; B; I], or [B; I] for a vector head.</param>
    /// <param name="targets">The targets, as the head expects them.</param>
    /// <param name="lengths">The real steps of each row of a sequence input (B of them, each in [1, T]); null when no row is padded.</param>
    /// <param name="targetLengths">The real steps of each row of a sequence target (B of them, each in [1, T]); null when no row is padded.</param>
    /// <exception cref="ArgumentNullException"><paramref name="inputs"/> or <paramref name="targets"/> is null.</exception>
    /// <exception cref="ArgumentException">A length is outside [1, T], or there is not one per row; the parameter name says which.</exception>
    public SequenceBatch(Tensor inputs, Tensor targets, long[]? lengths = null, long[]? targetLengths = null)
    {
        Guard.NotNull(inputs, nameof(inputs));
        Guard.NotNull(targets, nameof(targets));
        Lengths = CheckLengths(lengths, inputs, nameof(lengths), nameof(inputs));
        TargetLengths = CheckLengths(targetLengths, targets, nameof(targetLengths), nameof(targets));
        Inputs = inputs;
        Targets = targets;
    }

    private static long[]? CheckLengths(long[]? lengths, Tensor of, string name, string ofName)
    {
        if (lengths is null) return null;
        if (of.dim() < 2)
            throw new ArgumentException(
                $"{name}: lengths apply to sequences [T; B; …], but {ofName} has shape {Guard.ShapeText(of)}.", name);
        long T = of.shape[0], B = of.shape[1];
        if (lengths.Length != B)
            throw new ArgumentException(
                $"{name}: expected one length per row of {ofName} (B = {B}), but got {lengths.Length}.", name);
        for (var b = 0; b < lengths.Length; b++)
            if (lengths[b] < 1 || lengths[b] > T)
                throw new ArgumentException(
                    $"{name}: expected every length in [1, T = {T}], but row {b} has {lengths[b]}.", name);
        return (long[])lengths.Clone();
    }

    /// <summary>The inputs: time first for sequences ([T; B] ids or [T; B; I] vectors), [B; I] for a vector head.</summary>
    public Tensor Inputs { get; }

    /// <summary>The targets: int64 classes for cross-entropy, values in the network's precision for mean squared error.</summary>
    public Tensor Targets { get; }

    /// <summary>The real steps of each row of a sequence input, or null when every step is real.</summary>
    public IReadOnlyList<long>? Lengths { get; }

    /// <summary>The real steps of each row of a sequence target (one-to-many, encoder–decoder), or null when every step is real.</summary>
    public IReadOnlyList<long>? TargetLengths { get; }

    internal SeqNets.Batch ToCore() => new(
        Inputs,
        Lengths is null ? FSharpOption<long[]>.None : FSharpOption<long[]>.Some(Lengths.ToArray()),
        Targets,
        TargetLengths is null ? FSharpOption<long[]>.None : FSharpOption<long[]>.Some(TargetLengths.ToArray()));

    /// <summary>B: the rows of the batch, as the head reads them.</summary>
    internal long Rows(Head head) => head.ReadsVectors ? Inputs.shape[0] : Inputs.dim() >= 2 ? Inputs.shape[1] : -1;
}

/// <summary>
/// What a <see cref="SequenceNetwork"/> learns from: the streams of a text for a next-token network
/// (<see cref="FromCorpus"/>), or batches made by a function of their index for any head
/// (<see cref="FromBatches"/>), each with optional held-out data for a validation loss.
/// </summary>
public sealed class TrainingData
{
    private TrainingData(CharCorpus? corpus, Func<int, SequenceBatch>? batches, int rows, SequenceBatch? validation, int count)
    {
        Corpus = corpus;
        Batches = batches;
        RowsPerBatch = rows;
        Validation = validation;
        Count = count;
    }

    /// <summary>
    /// A text for a next-token network (token input of the corpus's V tokens, a per-step head of V
    /// classes, cross-entropy): <see cref="TrainingOptions.Batch"/> parallel streams of the training part,
    /// read <see cref="TrainingOptions.SequenceLength"/> characters at a time, the state carried from
    /// batch to batch; the validation loss is the mean cross-entropy over (up to 20 batches of) the
    /// validation part.
    /// </summary>
    /// <param name="corpus">The text.</param>
    /// <returns>The data; the corpus's vocabulary becomes the network's, saved with its checkpoints and used by <see cref="SequenceNetwork.Sample"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="corpus"/> is null.</exception>
    public static TrainingData FromCorpus(CharCorpus corpus)
    {
        Guard.NotNull(corpus, nameof(corpus));
        return new TrainingData(corpus, null, 0, null, 0);
    }

    /// <summary>
    /// Batches made on demand: training step k of a run reads <c>batches(k % count)</c>, so batch k
    /// must be the same every time it is asked for (seed its randomness with k) for a resumed run to
    /// continue exactly. Every batch has <paramref name="rowsPerBatch"/> rows; each starts from the zero state.
    /// </summary>
    /// <remarks>
    /// The function runs on the network's own thread, inside the training step; the tensors it makes
    /// there are freed when the step ends, so a function that hands out the same batch again must
    /// make it once, outside. The validation batch is the caller's and is never freed by the network.
    /// For these batches full BPTT (<see cref="TrainingOptions.WithFullBptt"/>) is the usual choice and
    /// the default; <see cref="TrainingOptions.Batch"/> and <see cref="TrainingOptions.SequenceLength"/> do not apply.
    /// </remarks>
    /// <param name="batches">Makes batch k from its index k ≥ 0.</param>
    /// <param name="rowsPerBatch">B, the rows of every batch.</param>
    /// <param name="validation">A held-out batch whose loss the training reports, or null.</param>
    /// <param name="count">How many distinct batches there are; k cycles through 0 … count − 1.</param>
    /// <returns>The data.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="batches"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="rowsPerBatch"/> or <paramref name="count"/> is not positive.</exception>
    public static TrainingData FromBatches(Func<int, SequenceBatch> batches, int rowsPerBatch, SequenceBatch? validation = null,
        int count = int.MaxValue)
    {
        Guard.NotNull(batches, nameof(batches));
        Guard.Positive(rowsPerBatch, nameof(rowsPerBatch));
        Guard.Positive(count, nameof(count));
        return new TrainingData(null, batches, rowsPerBatch, validation, count);
    }

    /// <summary>The text of data made by <see cref="FromCorpus"/>; null for batches.</summary>
    public CharCorpus? Corpus { get; }

    /// <summary>The function of data made by <see cref="FromBatches"/>; null for a text.</summary>
    public Func<int, SequenceBatch>? Batches { get; }

    /// <summary>B, the rows of every batch made by <see cref="Batches"/>; 0 for a text, whose rows are <see cref="TrainingOptions.Batch"/>.</summary>
    public int RowsPerBatch { get; }

    /// <summary>The held-out batch of data made by <see cref="FromBatches"/>, or null.</summary>
    public SequenceBatch? Validation { get; }

    /// <summary>How many distinct batches <see cref="Batches"/> makes before the index starts again; 0 for a text.</summary>
    public int Count { get; }

    /// <summary>Shows what the data is: a corpus and its sizes, or batches and their rows.</summary>
    /// <returns>A one-line description.</returns>
    public override string ToString() =>
        Corpus is not null ? $"TrainingData from {Corpus}"
        : $"TrainingData from a batch function ({RowsPerBatch} rows per batch{(Validation is null ? "" : ", with a validation batch")})";

    /// <summary>The core's view of the data, for a network with the given head.</summary>
    internal ITrainingData ToCore(Head head) =>
        Corpus is not null ? new TextData(Corpus.Core) : new GeneratedData(this, head);

    /// <summary>Batches from the caller's function, checked as they arrive; validation on the held-out batch.</summary>
    private sealed class GeneratedData(TrainingData data, Head head) : ITrainingData
    {
        private SeqNets.Batch Make(int k)
        {
            var batch = data.Batches!(k)
                ?? throw new ArgumentException($"batches: expected a batch for index {k}, but the function returned null.", "batches");
            var rows = batch.Rows(head);
            if (rows != data.RowsPerBatch)
                throw new ArgumentException(
                    $"batches: batch {k} has {rows} rows (inputs {Guard.ShapeText(batch.Inputs)}), but every batch must have rowsPerBatch = {data.RowsPerBatch}.",
                    "batches");
            return batch.ToCore();
        }

        public IBatchSource Source(TrainingConfig config) =>
            new GeneratedBatches(data.Count, data.RowsPerBatch, FuncConvert.FromFunc<int, SeqNets.Batch>(Make));

        public double Validate(Network network, SeqNets.ExecutionPath path, TrainingConfig config) =>
            data.Validation is null ? double.NaN : Heads.Evaluate(network, path, data.Validation.ToCore()).Loss;
    }
}
