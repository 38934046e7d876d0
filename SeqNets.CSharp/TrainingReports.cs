namespace SeqNets.CSharp;

/// <summary>
/// One progress report of <see cref="CharLanguageModel.Train"/> or <see cref="SequenceNetwork.Train"/>,
/// sent after every step: where the run is, its latest loss, its speed and how long it has left.
/// </summary>
public sealed class TrainingProgress
{
    internal TrainingProgress(int step, int totalSteps, double loss, double? validationLoss, double charactersPerSecond,
        TimeSpan elapsed, TimeSpan estimatedRemaining)
    {
        Step = step;
        TotalSteps = totalSteps;
        Loss = loss;
        ValidationLoss = validationLoss;
        CharactersPerSecond = charactersPerSecond;
        Elapsed = elapsed;
        EstimatedRemaining = estimatedRemaining;
    }

    /// <summary>The number of steps this run has finished, from 1 to <see cref="TotalSteps"/>.</summary>
    public int Step { get; }

    /// <summary>The number of steps this run was asked to take.</summary>
    public int TotalSteps { get; }

    /// <summary>The loss of the step's batch: for a text model the mean cross-entropy in nats per character, for a network its head's loss.</summary>
    public double Loss { get; }

    /// <summary>
    /// The loss on the held-out data — the corpus's validation part in nats per character, or a
    /// network's validation batch — on the steps chosen by <see cref="TrainingOptions.EvaluateEvery"/>
    /// and on the last step; null on other steps or when there is no held-out data.
    /// </summary>
    public double? ValidationLoss { get; }

    /// <summary>
    /// The training characters consumed per second of wall-clock time so far in this run; for a network
    /// trained on batches, the real steps (sequence heads) or rows (vector heads) it read.
    /// </summary>
    public double CharactersPerSecond { get; }

    /// <summary>The wall-clock time since this run started.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>The estimated time to the last step, at the run's average speed so far.</summary>
    public TimeSpan EstimatedRemaining { get; }

    /// <summary>Shows the step, the losses, the speed and the estimated time left on one line.</summary>
    /// <returns>A one-line summary.</returns>
    public override string ToString() =>
        $"step {Step}/{TotalSteps}  loss {Loss:F3}  val {(ValidationLoss is double v ? v.ToString("F3") : "–")}  "
        + $"{CharactersPerSecond:N0} chars/s  eta {EstimatedRemaining:hh\\:mm\\:ss}";
}

/// <summary>What one call of <see cref="CharLanguageModel.Train"/> or <see cref="SequenceNetwork.Train"/> did.</summary>
public sealed class TrainingSummary
{
    internal TrainingSummary(int steps, int totalSteps, double lastLoss, double? validationLoss, double charactersPerSecond,
        int skippedUpdates, bool cancelled, TimeSpan elapsed)
    {
        Steps = steps;
        TotalSteps = totalSteps;
        LastLoss = lastLoss;
        ValidationLoss = validationLoss;
        CharactersPerSecond = charactersPerSecond;
        SkippedUpdates = skippedUpdates;
        Cancelled = cancelled;
        Elapsed = elapsed;
    }

    /// <summary>The number of steps this run took, fewer than asked when it was cancelled.</summary>
    public int Steps { get; }

    /// <summary>The number of steps the model has been trained for altogether, over every run and resumed checkpoint.</summary>
    public int TotalSteps { get; }

    /// <summary>The loss of the last step's batch (nats per character for a text model), or NaN when no step was taken.</summary>
    public double LastLoss { get; }

    /// <summary>The loss on the held-out data after the run (a corpus's validation part, or a network's validation batch), or null when there is none.</summary>
    public double? ValidationLoss { get; }

    /// <summary>The training characters (for a network on batches, real steps or rows) consumed per second of wall-clock time.</summary>
    public double CharactersPerSecond { get; }

    /// <summary>The number of updates this run skipped because the gradient had NaN or infinite entries.</summary>
    public int SkippedUpdates { get; }

    /// <summary>Whether the run stopped early because its cancellation token was signalled.</summary>
    public bool Cancelled { get; }

    /// <summary>The wall-clock time of the run.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>Shows the steps, the losses, the speed and whether the run was cancelled on one line.</summary>
    /// <returns>A one-line summary.</returns>
    public override string ToString() =>
        $"{Steps} steps ({TotalSteps} in all){(Cancelled ? ", cancelled" : "")}: loss {LastLoss:F3}, "
        + $"validation {(ValidationLoss is double v ? v.ToString("F3") : "–")}, {CharactersPerSecond:N0} chars/s, "
        + $"{SkippedUpdates} skipped updates, {Elapsed.TotalSeconds:F1} s";
}

/// <summary>
/// A checkpoint file that cannot be used: missing, truncated, corrupt, not a SeqNets checkpoint,
/// written by a newer format, or inconsistent. It is an <see cref="IOException"/> naming the file
/// and the problem.
/// </summary>
public sealed class SeqNetsCheckpointException : IOException
{
    /// <summary>A checkpoint exception for the file at <paramref name="path"/> with the given problem.</summary>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="problem">What is wrong with it.</param>
    /// <param name="innerException">The exception that revealed the problem, or null.</param>
    public SeqNetsCheckpointException(string path, string problem, Exception? innerException = null)
        : base($"checkpoint '{path}': {problem}", innerException)
    {
        Path = path;
        Problem = problem;
    }

    /// <summary>The path of the checkpoint file, as it was given.</summary>
    public string Path { get; }

    /// <summary>What is wrong with the file, such as a checksum mismatch or a missing header.</summary>
    public string Problem { get; }
}
