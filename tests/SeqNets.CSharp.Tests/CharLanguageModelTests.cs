using SeqNets.CSharp;
using Xunit;

namespace SeqNets.CSharp.Tests;

/// <summary>A progress sink that records every report as it is made, on the reporting thread.</summary>
internal sealed class Recorder(Action<TrainingProgress>? onReport = null) : IProgress<TrainingProgress>
{
    public List<TrainingProgress> Reports { get; } = new();

    public List<int> Threads { get; } = new();

    public void Report(TrainingProgress value)
    {
        Reports.Add(value);
        Threads.Add(Environment.CurrentManagedThreadId);
        onReport?.Invoke(value);
    }
}

/// <summary>A temporary folder, deleted with everything in it on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("seqnets-cs-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

/// <summary>
/// The character model from C#: the lecture's "hello" example, progress, cancellation, asynchronous
/// training, checkpoints and the messages of bad input.
/// </summary>
public class CharLanguageModelTests
{
    private static readonly CharCorpus Hello = CharCorpus.FromText(string.Concat(Enumerable.Repeat("hello", 20)));

    /// <summary>The lecture's setting: full BPTT over "hell" → "ello"-sized windows, one stream, Adam at 0.05.</summary>
    private static readonly TrainingOptions Lecture = TrainingOptions.Default
        .WithFullBptt()
        .WithBatch(1)
        .WithSequenceLength(4)
        .WithLearningRate(0.05);

    private static readonly CharModelOptions Tiny = CharModelOptions.Default.WithHiddenSize(12).WithSeed(3);

    private static readonly CharCorpus Fox =
        CharCorpus.FromText(string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 20)));

    private static readonly TrainingOptions Small = TrainingOptions.Default.WithBatch(4).WithSequenceLength(8).WithLearningRate(0.01);

    [Fact]
    public void After_training_on_hello_the_argmax_continues_hell_with_ello()
    {
        using var model = CharLanguageModel.Create(Hello, Tiny.WithCell(CellKind.Lstm));
        var summary = model.Train(300, Lecture);
        Assert.Equal(300, summary.Steps);
        Assert.False(summary.Cancelled);
        Assert.Equal(0, summary.SkippedUpdates);
        Assert.InRange(summary.LastLoss, 0.0, 0.5);
        // e after h, l after he, l after hel, o after hell.
        Assert.Equal("ello", model.Predict("hell"));
        Assert.InRange(model.Evaluate(), 0.0, 0.5);
        Assert.Equal("ehlo", string.Concat(model.Vocabulary));
    }

    [Fact]
    public void Progress_is_reported_after_every_step_with_validation_at_the_chosen_steps()
    {
        using var model = CharLanguageModel.Create(Fox, Tiny);
        var progress = new Recorder();
        var summary = model.Train(12, Small.WithEvaluateEvery(5), progress);
        Assert.Equal(Enumerable.Range(1, 12), progress.Reports.Select(p => p.Step));
        Assert.All(progress.Reports, p => Assert.Equal(12, p.TotalSteps));
        Assert.All(progress.Reports, p => Assert.True(double.IsFinite(p.Loss) && p.Loss > 0));
        Assert.All(progress.Reports, p => Assert.True(p.CharactersPerSecond > 0));
        Assert.Equal(new[] { 5, 10, 12 }, progress.Reports.Where(p => p.ValidationLoss is not null).Select(p => p.Step));
        Assert.Equal(TimeSpan.Zero, progress.Reports[^1].EstimatedRemaining);
        Assert.True(progress.Reports[0].EstimatedRemaining > TimeSpan.Zero);
        Assert.True(progress.Reports[^1].Elapsed >= progress.Reports[0].Elapsed);
        Assert.Equal(progress.Reports[^1].ValidationLoss, summary.ValidationLoss);
        Assert.Equal(progress.Reports[^1].Loss, summary.LastLoss);
        Assert.Contains("step 12/12", progress.Reports[^1].ToString());
    }

    [Fact]
    public void Training_again_with_the_same_options_continues_the_run()
    {
        using var model = CharLanguageModel.Create(Fox, Tiny);
        model.Train(5, Small);
        var second = model.Train(4); // no options: the last ones
        Assert.Equal(9, second.TotalSteps);
        Assert.Equal(9, model.StepCount);
        Assert.Equal(Small, model.LastTrainingOptions);
    }

    [Fact]
    public void Cancellation_stops_after_the_current_step_and_the_model_still_saves()
    {
        using var folder = new TempFolder();
        using var model = CharLanguageModel.Create(Fox, Tiny);
        using var cts = new CancellationTokenSource();
        var progress = new Recorder(p => { if (p.Step == 5) cts.Cancel(); });
        var summary = model.Train(1000, Small, progress, cts.Token);
        Assert.True(summary.Cancelled);
        Assert.Equal(5, summary.Steps);
        Assert.Equal(5, progress.Reports.Count);
        Assert.NotNull(summary.ValidationLoss);
        var path = folder.File("cancelled.ckpt");
        model.Save(path);
        using var loaded = CharLanguageModel.Load(path);
        Assert.Equal(5, loaded.StepCount);
        Assert.Equal(Small, loaded.LastTrainingOptions);
    }

    [Fact]
    public void A_run_cancelled_before_it_starts_takes_no_step_and_throws_nothing()
    {
        using var model = CharLanguageModel.Create(Fox, Tiny);
        var summary = model.Train(10, Small, cancellationToken: new CancellationToken(canceled: true));
        Assert.True(summary.Cancelled);
        Assert.Equal(0, summary.Steps);
        Assert.True(double.IsNaN(summary.LastLoss));
    }

    [Fact]
    public async Task TrainAsync_runs_on_the_models_thread_and_can_be_cancelled()
    {
        using var model = CharLanguageModel.Create(Fox, Tiny);
        var progress = new Recorder();
        var task = model.TrainAsync(20, Small, progress);
        var summary = await task;
        Assert.Equal(20, summary.Steps);
        Assert.Equal(20, progress.Reports.Count);
        Assert.Single(progress.Threads.Distinct());
        Assert.NotEqual(Environment.CurrentManagedThreadId, progress.Threads[0]);

        using var cts = new CancellationTokenSource();
        var stopping = new Recorder(p => { if (p.Step == 3) cts.Cancel(); });
        var cancelled = await model.TrainAsync(1000, Small, stopping, cts.Token);
        Assert.True(cancelled.Cancelled);
        Assert.Equal(3, cancelled.Steps);
        Assert.Equal(23, model.StepCount);
        // Bad arguments are reported before any task starts.
        Assert.Throws<ArgumentException>(() => { _ = model.TrainAsync(0, Small); });
    }

    [Fact]
    public void Save_then_load_samples_the_same_text_and_resuming_continues_the_same_run()
    {
        using var folder = new TempFolder();
        var path = folder.File(Path.Combine("sub", "fox.ckpt"));
        var options = Small.WithRandomizedBptt(4).WithExecutionPath(ExecutionPath.Step);
        using var model = CharLanguageModel.Create(Fox, Tiny.WithCell(CellKind.Gru));
        model.Train(15, options);
        var before = model.Sample("the ", 60, temperature: 0.9, seed: 5);
        model.Save(path);
        Assert.Equal(60, before.Length);
        Assert.Equal(before, model.Sample("the ", 60, temperature: 0.9, seed: 5));
        Assert.NotEqual(before, model.Sample("the ", 60, temperature: 0.9, seed: 6));

        using (var loaded = CharLanguageModel.Load(path))
        {
            Assert.Equal(before, loaded.Sample("the ", 60, temperature: 0.9, seed: 5));
            Assert.Equal(CellKind.Gru, loaded.Options.Cell);
            Assert.Equal(model.ParameterCount, loaded.ParameterCount);
            Assert.Equal(model.Vocabulary, loaded.Vocabulary);
            Assert.Null(loaded.Corpus);
            Assert.Throws<InvalidOperationException>(() => loaded.Train(1));
            // A model loaded only to sample saves back what it read.
            var again = folder.File("again.ckpt");
            loaded.Save(again);
            using var reloaded = CharLanguageModel.Load(again);
            Assert.Equal(before, reloaded.Sample("the ", 60, temperature: 0.9, seed: 5));
        }

        var straight = model.Train(6);
        using var resumed = CharLanguageModel.Load(path, Fox);
        Assert.Equal(15, resumed.StepCount);
        var continued = resumed.Train(6);
        Assert.Equal(straight.LastLoss, continued.LastLoss);
        Assert.Equal(21, continued.TotalSteps);
    }

    [Fact]
    public void An_untrained_model_saves_and_loads()
    {
        using var folder = new TempFolder();
        using var model = CharLanguageModel.Create(Fox, Tiny.WithMultiplicativeRnn(5).WithLayers(2).WithPrecision(Precision.Float64));
        var path = folder.File("untrained.ckpt");
        model.Save(path);
        using var loaded = CharLanguageModel.Load(path, Fox);
        Assert.Equal(CellKind.MultiplicativeRnn, loaded.Options.Cell);
        Assert.Equal(5, loaded.Options.Factors);
        Assert.Equal(2, loaded.Options.Layers);
        Assert.Equal(Precision.Float64, loaded.Options.Precision);
        Assert.Equal(model.Sample("fox", 30), loaded.Sample("fox", 30));
        Assert.Equal(0, loaded.StepCount);
    }

    [Fact]
    public void A_corrupt_checkpoint_raises_a_checkpoint_exception_naming_the_file()
    {
        using var folder = new TempFolder();
        var path = folder.File("model.ckpt");
        using (var model = CharLanguageModel.Create(Fox, Tiny))
            model.Save(path);
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<SeqNetsCheckpointException>(() => CharLanguageModel.Load(path));
        Assert.Equal(path, e.Path);
        Assert.Contains(path, e.Message);
        Assert.Contains("checksum", e.Problem);
        Assert.IsAssignableFrom<IOException>(e);

        File.WriteAllText(path, "hello, this is a text file and not a checkpoint");
        var foreign = Assert.Throws<SeqNetsCheckpointException>(() => CharLanguageModel.Load(path));
        Assert.Contains("not a SeqNets checkpoint", foreign.Problem);

        var missing = folder.File("missing.ckpt");
        Assert.Equal(missing, Assert.Throws<SeqNetsCheckpointException>(() => CharLanguageModel.Load(missing)).Path);
    }

    private static void Names(string name, Action action, string? mentions = null)
    {
        var e = Assert.ThrowsAny<ArgumentException>(action);
        Assert.Equal(name, e.ParamName);
        Assert.StartsWith(name + ":", e.Message);
        if (mentions is not null) Assert.Contains(mentions, e.Message);
    }

    [Fact]
    public void Bad_options_name_the_property()
    {
        Names("LearningRate", () => TrainingOptions.Default.WithLearningRate(0), "got 0");
        Names("Tau", () => TrainingOptions.Default.WithTruncatedBptt(0));
        Names("MeanLength", () => TrainingOptions.Default.WithRandomizedBptt(1));
        Names("Momentum", () => TrainingOptions.Default.WithSgd(1.5));
        Names("ClipThreshold", () => TrainingOptions.Default.WithClipByNorm(-1));
        Names("DecayFactor", () => TrainingOptions.Default.WithStepDecay(100, 2));
        Names("Batch", () => TrainingOptions.Default.WithBatch(0));
        Names("ExecutionPath", () => TrainingOptions.Default.WithRandomizedBptt(8).WithExecutionPath(ExecutionPath.Fused), "Fused");
        Names("HiddenSize", () => CharModelOptions.Default.WithHiddenSize(-3), "got -3");
        Names("Cell", () => CharModelOptions.Default.WithCell((CellKind)42));

        // Options built with object initializers are checked where they are used.
        Names("Layers", () => CharLanguageModel.Create(Fox, new CharModelOptions { Layers = 0 }));
        using var model = CharLanguageModel.Create(Fox, Tiny);
        Names("SequenceLength", () => model.Train(1, new TrainingOptions { SequenceLength = -1 }));
        Names("Optimizer", () => model.Train(1, Small with { Optimizer = (OptimizerKind)9 }));
        Names("Batch", () => model.Train(1, TrainingOptions.Default), "lower Batch or SequenceLength");
        Names("steps", () => model.Train(0, Small));
        using var lecture = CharLanguageModel.Create(Fox, Tiny.WithCell(CellKind.GruLecture));
        Names("ExecutionPath", () => lecture.Train(1, Small.WithExecutionPath(ExecutionPath.Fused)), "GruLecture");
    }

    [Fact]
    public void Bad_arguments_name_the_argument()
    {
        using var model = CharLanguageModel.Create(Fox, Tiny);
        Names("prime", () => model.Sample("the 7 dogs", 10), "'7'");
        Names("temperature", () => model.Sample("the", 10, temperature: 0));
        Names("topK", () => model.Sample("the", 10, topK: -1));
        Names("length", () => model.Sample("the", -1));
        Names("text", () => model.Predict(""));
        Assert.Throws<ArgumentNullException>(() => model.Sample(null!, 1));
        Assert.Throws<ArgumentNullException>(() => CharLanguageModel.Create(null!));
        Assert.Throws<ArgumentNullException>(() => CharLanguageModel.Load(null!));
        using var hello = CharLanguageModel.Create(Hello, Tiny);
        using var folder = new TempFolder();
        hello.Save(folder.File("hello.ckpt"));
        Names("corpusForResume", () => CharLanguageModel.Load(folder.File("hello.ckpt"), Fox), "vocabulary");
    }

    [Fact]
    public void A_corpus_encodes_decodes_and_names_unknown_characters()
    {
        var corpus = CharCorpus.FromText("abcabcabca", trainFraction: 0.8);
        Assert.Equal("abc", string.Concat(corpus.Vocabulary));
        Assert.Equal(8L, corpus.TrainingLength);
        Assert.Equal(2L, corpus.ValidationLength);
        Assert.Equal(new[] { 2, 0, 1 }, corpus.Encode("cab"));
        Assert.Equal("cab", corpus.Decode(new[] { 2, 0, 1 }));
        Assert.True(corpus.Contains('b'));
        Assert.False(corpus.Contains('d'));
        Names("text", () => corpus.Encode("abd"), "'d' (U+0064) at position 2");
        Names("ids", () => corpus.Decode(new[] { 0, 3 }), "position 1");
        Names("trainFraction", () => CharCorpus.FromText("abc", 1.5));
        Names("text", () => CharCorpus.FromText(""));
        Assert.Throws<FileNotFoundException>(() => CharCorpus.FromFile("no-such-corpus.txt"));
    }

    [Fact]
    public void A_disposed_model_refuses_work_and_disposing_twice_is_harmless()
    {
        var model = CharLanguageModel.Create(Fox, Tiny);
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => model.Sample("the", 3));
        Assert.Throws<ObjectDisposedException>(() => model.Train(1, Small));
        model.Dispose();
    }
}
