using SeqNets;

namespace SeqNets.CSharp;

/// <summary>
/// What every model of the facade (<see cref="CharLanguageModel"/>, <see cref="SequenceNetwork"/>,
/// <see cref="Seq2SeqModel"/>) holds the same way: its engine thread and training session, one training
/// run at a time, and a Dispose that stops a run in progress after its current step — or, called from
/// that run's own progress report, leaves the release to the run's end.
/// </summary>
internal sealed class ModelHost : IDisposable
{
    private readonly EngineThread _engine;
    private readonly TrainingSession _session;
    private readonly CancellationTokenSource _disposing = new();
    private volatile bool _disposed;
    private bool _training;
    private bool _releaseAfterRun;

    public ModelHost(EngineThread engine, TrainingSession session)
    {
        _engine = engine;
        _session = session;
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> naming <paramref name="owner"/> once Dispose has been called.</summary>
    public void ThrowIfDisposed(object owner) => ObjectDisposedException.ThrowIf(_disposed, owner);

    /// <summary>
    /// One training run, on the engine thread: refused while another runs (a progress report cannot
    /// start one); <paramref name="prepare"/> makes the configuration once the run is admitted; the
    /// caller's token and Dispose both stop it after the current step.
    /// </summary>
    /// <param name="what">The model's name in the refusal ("model", "network").</param>
    /// <param name="steps">Steps of the run.</param>
    /// <param name="prepare">Makes the core configuration (and records the options) once the run is admitted.</param>
    /// <param name="progress">Receives a report after every step; may be null.</param>
    /// <param name="evaluateEvery">Steps between validations; 0 for none.</param>
    /// <param name="cancellationToken">Stops the run after the current step.</param>
    public TrainingSummary Train(string what, int steps, Func<TrainingConfig> prepare, IProgress<TrainingProgress>? progress,
        int evaluateEvery, CancellationToken cancellationToken)
    {
        if (_training)
            throw new InvalidOperationException($"The {what} is already training: a progress report cannot start another run.");
        _training = true;
        try
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token);
            var config = prepare();
            Action<RunProgress>? report = progress is null
                ? null
                : p => progress.Report(new TrainingProgress(p.Done, p.Steps, p.Report.Loss,
                    p.Validation is null ? null : p.Validation.Value, p.ItemsPerSecond, p.Elapsed, p.Remaining));
            RunSummary s;
            try
            {
                s = _session.Train(steps, config, report!, evaluateEvery, stop.Token);
            }
            catch (ArgumentException e) when (e.ParamName == "Strategy")
            {
                // The core names its own field; the C# property is Bptt.
                throw new ArgumentException(e.Message.Replace("Strategy: ", "Bptt: ", StringComparison.Ordinal)
                    .Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal), nameof(TrainingOptions.Bptt), e);
            }
            double? validation = double.IsNaN(s.Validation) || _disposed ? null : s.Validation;
            return new TrainingSummary(s.Steps, s.TotalSteps, s.LastLoss, validation, s.ItemsPerSecond,
                s.SkippedUpdates, s.Cancelled, s.Elapsed);
        }
        finally
        {
            _training = false;
            if (_releaseAfterRun) Release();
        }
    }

    /// <summary>Frees the native memory and ends the engine thread; a run in progress stops after its current step first.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _disposing.Cancel();
        if (_engine.IsCurrent)
        {
            // Called from a progress report: the run ends after this step and releases the model itself.
            _releaseAfterRun = true;
            return;
        }
        try
        {
            _engine.Run(() =>
            {
                Release();
                return 0;
            });
        }
        catch (ObjectDisposedException)
        {
            // Already released from the engine's own thread.
        }
        _engine.Dispose();
        _disposing.Dispose();
    }

    private void Release()
    {
        ((IDisposable)_session).Dispose();
        if (_engine.IsCurrent) _engine.Dispose();
    }
}
