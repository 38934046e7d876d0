using System.Collections.ObjectModel;
using System.Globalization;

namespace SeqNets.CSharp;

/// <summary>
/// How a generated task trains its networks: steps, hidden width, rows per batch and seed. Immutable;
/// change it with <c>WithSteps</c>, … or a <c>with</c> expression. Invalid values are refused with an
/// <see cref="ArgumentException"/> whose parameter name is the property's.
/// </summary>
public sealed record TaskRunOptions
{
    /// <summary>Options with the defaults of the published tables: 1,500 steps, H = 64, B = 32, seed 1.</summary>
    public TaskRunOptions()
    {
    }

    /// <summary>The defaults of the published tables: 1,500 steps, H = 64, B = 32, seed 1.</summary>
    public static TaskRunOptions Default { get; } = new();

    /// <summary>Training steps per network, positive.</summary>
    public int Steps { get; init; } = 1500;

    /// <summary>H, the hidden units of each network's recurrent layer, positive.</summary>
    public int HiddenSize { get; init; } = 64;

    /// <summary>B, the rows of each training batch, positive.</summary>
    public int Batch { get; init; } = 32;

    /// <summary>The seed of the data, the parameters and the held-out sets, so one seed gives one table.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>These options with another number of training steps.</summary>
    /// <param name="steps">Steps per network, positive.</param>
    /// <returns>A copy with <see cref="Steps"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="steps"/> is not positive.</exception>
    public TaskRunOptions WithSteps(int steps)
    {
        Property.Positive(steps, nameof(Steps));
        return this with { Steps = steps };
    }

    /// <summary>These options with another hidden width.</summary>
    /// <param name="hiddenSize">H, positive.</param>
    /// <returns>A copy with <see cref="HiddenSize"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="hiddenSize"/> is not positive.</exception>
    public TaskRunOptions WithHiddenSize(int hiddenSize)
    {
        Property.Positive(hiddenSize, nameof(HiddenSize));
        return this with { HiddenSize = hiddenSize };
    }

    /// <summary>These options with another number of rows per batch.</summary>
    /// <param name="batch">B, positive.</param>
    /// <returns>A copy with <see cref="Batch"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="batch"/> is not positive.</exception>
    public TaskRunOptions WithBatch(int batch)
    {
        Property.Positive(batch, nameof(Batch));
        return this with { Batch = batch };
    }

    /// <summary>These options with another seed.</summary>
    /// <param name="seed">The seed.</param>
    /// <returns>A copy with <see cref="Seed"/> replaced.</returns>
    public TaskRunOptions WithSeed(ulong seed) => this with { Seed = seed };

    /// <summary>Checks every property, throwing an <see cref="ArgumentException"/> whose parameter name is the first invalid property's.</summary>
    /// <exception cref="ArgumentException">A property is not positive.</exception>
    public void Validate()
    {
        Property.Positive(Steps, nameof(Steps));
        Property.Positive(HiddenSize, nameof(HiddenSize));
        Property.Positive(Batch, nameof(Batch));
    }
}

/// <summary>One progress report of a task run, sent after every training step of each of its networks.</summary>
public sealed class TaskProgress
{
    internal TaskProgress(string model, int step, int totalSteps, double loss)
    {
        Model = model;
        Step = step;
        TotalSteps = totalSteps;
        Loss = loss;
    }

    /// <summary>The description of the network being trained (a task may train more than one).</summary>
    public string Model { get; }

    /// <summary>The steps this network has finished, from 1 to <see cref="TotalSteps"/>.</summary>
    public int Step { get; }

    /// <summary>The steps each network trains for.</summary>
    public int TotalSteps { get; }

    /// <summary>The loss of the step's batch.</summary>
    public double Loss { get; }

    /// <summary>Shows the network, the step and the loss on one line.</summary>
    /// <returns>A one-line summary.</returns>
    public override string ToString() => $"{Model}: step {Step}/{TotalSteps}, loss {Loss:F3}";
}

/// <summary>One measured line of a task's table: a model, the data it was measured on, the measure and its value.</summary>
public sealed class TaskResultRow
{
    internal TaskResultRow(TaskRow row)
    {
        Model = row.Model;
        Data = row.Data;
        Measure = row.Measure;
        Value = row.Value;
    }

    /// <summary>The model measured: a network's description, or the exact algorithm beside it.</summary>
    public string Model { get; }

    /// <summary>The data it was measured on, such as <c>held-out, lengths 2–20</c>.</summary>
    public string Data { get; }

    /// <summary>What is measured, such as <c>accuracy</c> or <c>words exactly right</c>.</summary>
    public string Measure { get; }

    /// <summary>The measured value, a share in [0, 1] for the tasks' measures.</summary>
    public double Value { get; }

    /// <summary>Shows the row as model, data, measure and value.</summary>
    /// <returns>A one-line summary.</returns>
    public override string ToString() => $"{Model} | {Data} | {Measure} | {Value.ToString("0.000", CultureInfo.InvariantCulture)}";
}

/// <summary>What a run of a generated task measured: its table, the claim it checks and whether the claim held.</summary>
public sealed class TaskResult
{
    internal TaskResult(TaskReport r)
    {
        Name = r.Task;
        Shape = r.Shape;
        Rows = new ReadOnlyCollection<TaskResultRow>(r.Rows.Select(row => new TaskResultRow(row)).ToList());
        Claim = r.Claim;
        Holds = r.Holds;
        Steps = r.Steps;
        Seed = r.Seed;
        Elapsed = r.Elapsed;
    }

    /// <summary>The task's name, one of <see cref="SeqNetsTasks.Names"/>.</summary>
    public string Name { get; }

    /// <summary>The lecture's input/output shape the task exercises, such as <c>many-to-one</c>.</summary>
    public string Shape { get; }

    /// <summary>The measured lines of the task's table.</summary>
    public IReadOnlyList<TaskResultRow> Rows { get; }

    /// <summary>The claim the run checks, in words.</summary>
    public string Claim { get; }

    /// <summary>Whether the claim held in this run.</summary>
    public bool Holds { get; }

    /// <summary>The training steps of each network.</summary>
    public int Steps { get; }

    /// <summary>The seed of the run.</summary>
    public ulong Seed { get; }

    /// <summary>The wall-clock time of the run.</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>The table as Markdown, with the steps, the seed, the time and the claim below it, as the docs show it.</summary>
    /// <returns>The Markdown text.</returns>
    public string ToMarkdown()
    {
        var inv = CultureInfo.InvariantCulture;
        var lines = new List<string> { "| task | model | data | measure | value |", "| --- | --- | --- | --- | ---: |" };
        lines.AddRange(Rows.Select(r => $"| {Name} ({Shape}) | {r.Model} | {r.Data} | {r.Measure} | {r.Value.ToString("0.000", inv)} |"));
        return string.Join("\n", lines)
            + $"\n\n{Steps} training steps per network, seed {Seed}, {Elapsed.TotalSeconds.ToString("0", inv)} s. Claim: {Claim} — "
            + (Holds ? "holds." : "does NOT hold.");
    }

    /// <summary>Shows the task, its shape, its number of rows and whether its claim held.</summary>
    /// <returns>A one-line summary.</returns>
    public override string ToString() =>
        $"{Name} ({Shape}): {Rows.Count} rows, {Steps} steps, seed {Seed}; claim {(Holds ? "holds" : "does not hold")}: {Claim}";
}

/// <summary>
/// The tasks generated in code, one per input/output shape of the lecture, each seeded and
/// reproducible: <c>brackets</c> (many-to-one, beside the exact stack check), <c>depth</c> (a tag per
/// step), <c>spell</c> (one-to-many: a number to its English words) and <c>later</c> (one direction
/// against both, where the future matters). A run trains the task's networks and measures them on held-out data.
/// </summary>
public static class SeqNetsTasks
{
    /// <summary>The task names, in the order of the lecture's shapes.</summary>
    public static IReadOnlyList<string> Names { get; } = new ReadOnlyCollection<string>(Tasks.names.ToList());

    /// <summary>
    /// Trains and measures the task called <paramref name="name"/> on a thread of its own and waits for
    /// it. The same options give the same table.
    /// </summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="options">Steps, hidden width, rows per batch and seed; <see cref="TaskRunOptions.Default"/> when null.</param>
    /// <param name="progress">Receives a report after every training step, on the run's thread; null for none.</param>
    /// <param name="cancellationToken">Stops the run after the current step; the run then throws <see cref="OperationCanceledException"/>, since a partly trained task has no table.</param>
    /// <returns>The task's table, claim and verdict.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException">The name is not a task's, or an option is not positive (the parameter name is the property's).</exception>
    /// <exception cref="OperationCanceledException">The run was cancelled.</exception>
    public static TaskResult Run(string name, TaskRunOptions? options = null, IProgress<TaskProgress>? progress = null,
        CancellationToken cancellationToken = default) =>
        RunAsync(name, options, progress, cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// Trains and measures the task called <paramref name="name"/> as <see cref="Run"/> does, on a
    /// thread of its own, and returns at once with a task of the run. Bad arguments are reported before it starts.
    /// </summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="options">Steps, hidden width, rows per batch and seed; <see cref="TaskRunOptions.Default"/> when null.</param>
    /// <param name="progress">Receives a report after every training step; a <see cref="Progress{T}"/> posts it to the caller's context.</param>
    /// <param name="cancellationToken">Stops the run after the current step; the task then ends cancelled.</param>
    /// <returns>A task that completes with the task's table, claim and verdict.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException">The name is not a task's, or an option is not positive.</exception>
    public static Task<TaskResult> RunAsync(string name, TaskRunOptions? options = null, IProgress<TaskProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        Guard.NotNull(name, nameof(name));
        var key = name.Trim().ToLowerInvariant();
        if (!Names.Contains(key))
            throw new ArgumentException($"name: expected one of {string.Join(", ", Names)}, but got '{name}'.", nameof(name));
        var o = options ?? TaskRunOptions.Default;
        o.Validate();
        SeqNetsEngine.EnsureLoaded();
        var core = new TaskOptions(o.Steps, o.HiddenSize, o.Seed, o.Batch, (model, step, loss) =>
        {
            progress?.Report(new TaskProgress(model, step, o.Steps, loss));
            // Throwing here leaves the run through its own disposals: networks and trainers are freed.
            cancellationToken.ThrowIfCancellationRequested();
        });
        var engine = new EngineThread("SeqNets task");
        return Finish(engine, engine.RunAsync(() => new TaskResult(Tasks.Run(key, core))));
    }

    /// <summary>The run, ending its thread once it is over; a cancelled run ends the task as cancelled.</summary>
    private static async Task<TaskResult> Finish(EngineThread engine, Task<TaskResult> run)
    {
        try
        {
            return await run.ConfigureAwait(false);
        }
        finally
        {
            engine.Dispose();
        }
    }
}
