using SeqNets.CSharp;
using TorchSharp;
using Xunit;
using static SeqNets.CSharp.Tests.Common;
using static SeqNets.CSharp.Tests.CustomCellsPageSnippets;

namespace SeqNets.CSharp.Tests;

/// <summary>
/// Networks of layers from C#, as a C# user writes them: a custom cell through the whole training
/// stack (train, checkpoint, resume, sample, export, import), padded and bidirectional batches against
/// each row alone, every head, asynchronous training and cancellation, and the messages of bad input.
/// </summary>
public class SequenceNetworkTests
{
    private static readonly CharCorpus Fox =
        CharCorpus.FromText(string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 20)));

    private static int V => Fox.Vocabulary.Count;

    /// <summary>Truncated BPTT over B = 4 streams of T = 8 characters, τ = 4: sizes distinct from H = 6 and V = 28.</summary>
    private static readonly TrainingOptions Small =
        TrainingOptions.Default.WithTruncatedBptt(4).WithBatch(4).WithSequenceLength(8).WithLearningRate(0.02);

    private static void Names(string name, Action action, string? mentions = null)
    {
        var e = Assert.ThrowsAny<ArgumentException>(action);
        Assert.Equal(name, e.ParamName);
        Assert.StartsWith(name + ":", e.Message);
        if (mentions is not null) Assert.Contains(mentions, e.Message);
    }

    private static torch.Tensor Part(torch.Tensor t, long length, long row) => t.narrow(0, 0, length).narrow(1, row, 1);

    [Fact]
    public void An_MGU_written_in_CSharp_trains_checkpoints_resumes_samples_and_exports_like_an_LSTM()
    {
        using var folder = new TempFolder();
        RecurrentCell.Register("mgu", (i, h) => Mgu(i, h));
        var options = SequenceNetworkOptions.NextToken(V, [RecurrentLayer.Forward(Mgu(V, 6))]).WithSeed(5);
        using var network = SequenceNetwork.Create(options, TrainingData.FromCorpus(Fox));
        Assert.False(network.HasFusedPath);
        Assert.Equal(2 * (6 * V + 6 * 6 + 6) + V * 6 + V, network.ParameterCount);

        // It learns: the loss of the last steps is well below that of the first ones.
        var first = new Recorder();
        var summary = network.Train(60, Small, first);
        Assert.Equal(60, summary.Steps);
        Assert.Equal(0, summary.SkippedUpdates);
        Assert.True(first.Reports.TakeLast(10).Average(p => p.Loss) < first.Reports.Take(10).Average(p => p.Loss) - 0.3,
            $"losses: {string.Join(", ", first.Reports.Select(p => p.Loss.ToString("F2")))}");

        var path = folder.File("mgu.ckpt");
        network.Save(path);
        var sample = network.Sample("the ", 40, temperature: 0.9, seed: 3);
        var straight = new Recorder();
        network.Train(5, Small, straight);

        // Resumed from the checkpoint, the run takes the same next steps: the same losses, bit for bit.
        using (var resumed = SequenceNetwork.Load(path, TrainingData.FromCorpus(Fox)))
        {
            Assert.Equal(60, resumed.StepCount);
            Assert.Equal(Small, resumed.LastTrainingOptions);
            var again = new Recorder();
            var continued = resumed.Train(5, progress: again);
            Assert.Equal(straight.Reports.Select(p => p.Loss), again.Reports.Select(p => p.Loss));
            Assert.Equal(65, continued.TotalSteps);
        }

        // Loaded to sample, it draws the same text from the same seed.
        using (var loaded = SequenceNetwork.Load(path))
        {
            Assert.Equal(sample, loaded.Sample("the ", 40, temperature: 0.9, seed: 3));
            Assert.NotEqual(sample, loaded.Sample("the ", 40, temperature: 0.9, seed: 4));
            var cell = loaded.Options.Layers[0].Cell;
            Assert.Equal("mgu", cell.Name);
            Assert.True(cell.HasRowParameters);
            Assert.Equal(network.Describe(), loaded.Describe());
            Assert.Null(loaded.Data);
            Assert.Throws<InvalidOperationException>(() => loaded.Train(1));
        }

        // Out to a PyTorch state dict under the cell's own block names, and back, value for value.
        var pt = folder.File("mgu.pt");
        network.ExportPyTorch(pt);
        var keys = SeqNets.Interop.ReadStateDict(pt);
        Assert.Equal(
            new[] { "rnn.l0.W_f", "rnn.l0.U_f", "rnn.l0.b_f", "rnn.l0.W_h", "rnn.l0.U_h", "rnn.l0.b_h", "out.weight", "out.bias" }.Order(),
            keys.Keys.Order());
        foreach (var t in keys.Values) t.Dispose();
        using var imported = SequenceNetwork.ImportPyTorch(pt, options, TrainingData.FromCorpus(Fox));
        using var mine = network.GetParameters();
        using var theirs = imported.GetParameters();
        Assert.Equal(mine.shape, theirs.shape);
        using var same = mine.eq(theirs).all();
        Assert.True(same.item<bool>());
        Assert.Equal(network.Sample("fox", 30, seed: 8), imported.Sample("fox", 30, seed: 8));
        Assert.Equal(0UL, imported.Options.Seed);
    }

    [Fact]
    public void A_checkpoint_with_an_unregistered_cell_names_the_cell_to_register()
    {
        using var folder = new TempFolder();
        var layout = new CellLayout(new ParameterShape("W", 4, 3), new ParameterShape("U", 4, 4));
        var cell = RecurrentCell.Custom("never-registered", 3, 4, 4, layout,
            (theta, x, h) => (x.matmul(layout.View(theta, "W").t()) + h.matmul(layout.View(theta, "U").t())).tanh());
        using var network = SequenceNetwork.Create(new SequenceNetworkOptions(InputLayer.Vectors(3), [RecurrentLayer.Forward(cell)], 2));
        var path = folder.File("unregistered.ckpt");
        network.Save(path);
        var e = Assert.Throws<SeqNetsCheckpointException>(() => SequenceNetwork.Load(path));
        Assert.Equal(path, e.Path);
        Assert.Contains("RecurrentCell.Register(\"never-registered\", make)", e.Problem);
        Assert.DoesNotContain("CellCatalog", e.Problem);
    }

    [Fact]
    public void A_padded_batch_through_a_bidirectional_stack_gives_what_each_row_gives_alone()
    {
        // I = 3; an MGU of H = 4 both ways (output 8), then an LSTM of 5; O = 2 values per step. T = 7, B = 3.
        var options = new SequenceNetworkOptions(InputLayer.Vectors(3),
                [RecurrentLayer.Bidirectional(Mgu(3, 4)), RecurrentLayer.Forward(RecurrentCell.Lstm(8, 5))], outputSize: 2)
            .WithLoss(LossKind.MeanSquared).WithPrecision(Precision.Float64).WithSeed(11);
        using var network = SequenceNetwork.Create(options);
        long[] lengths = [7, 4, 2];
        using var xs = Randn(41, 7, 3, 3);
        using var padded = network.Predict(xs, lengths);
        Assert.Equal(new long[] { 7, 3, 2 }, padded.Values.shape);
        Assert.Equal(lengths, padded.Lengths);
        for (var b = 0; b < 3; b++)
        {
            using var alone = network.Predict(Part(xs, lengths[b], b));
            Assert.InRange(RelativeError(Part(padded.Values, lengths[b], b), alone.Values), 0.0, Tolerance);
        }

        // The backward direction reads the future: a change at row 1's last real step moves its first output;
        // a change in row 2's padding moves nothing.
        using var changed = xs.clone();
        changed[3, 1] = changed[3, 1] + 1.0;
        changed[5, 2] = changed[5, 2] + 1.0;
        using var again = network.Predict(changed, lengths);
        Assert.True(RelativeError(again.Values[0, 1], padded.Values[0, 1]) > 1e-6);
        Assert.Equal(0.0, RelativeError(Part(again.Values, 2, 2), Part(padded.Values, 2, 2)));
    }

    [Fact]
    public void A_many_to_one_bidirectional_GRU_on_the_fused_path_classifies_padded_rows_as_it_classifies_each_alone()
    {
        // Two bidirectional GRU layers of H = 5 over a one-hot vocabulary of 4: libtorch's packed kernels.
        var layers = RecurrentLayer.Stack(2, inputWidth: 4, width => RecurrentCell.Gru(width, 5), LayerDirection.Bidirectional);
        var options = new SequenceNetworkOptions(InputLayer.OneHot(4), layers, outputSize: 3)
            .WithHead(Head.ManyToOne(Pooling.Last)).WithLoss(LossKind.MeanSquared).WithPrecision(Precision.Float64).WithSeed(12);
        using var network = SequenceNetwork.Create(options);
        Assert.True(network.HasFusedPath);
        long[] lengths = [2, 6, 3, 5];
        using var ids = torch.tensor(Enumerable.Range(0, 6 * 4).Select(i => (long)(i * 7 % 4)).ToArray()).reshape(6, 4);
        using var padded = network.Predict(ids, lengths);
        Assert.Equal(new long[] { 4, 3 }, padded.Values.shape);
        for (var b = 0; b < 4; b++)
        {
            using var alone = network.Predict(Part(ids, lengths[b], b));
            Assert.InRange(RelativeError(padded.Values.narrow(0, b, 1), alone.Values), 0.0, Tolerance);
        }
    }

    [Fact]
    public void Every_head_predicts_and_evaluates_from_CSharp()
    {
        // One-to-many: a vector of I = 3 → 4 classes per step, 5 steps, B = 2.
        var oneToMany = new SequenceNetworkOptions(InputLayer.Vectors(3), [RecurrentLayer.Forward(RecurrentCell.Lstm(3, 6))], 4)
            .WithHead(Head.OneToMany(VectorAs.InitialState)).WithPrecision(Precision.Float64);
        using (var network = SequenceNetwork.Create(oneToMany))
        using (var v = Randn(51, 2, 3))
        using (var p = network.Predict(v, steps: 5))
        {
            Assert.Equal(new long[] { 5, 2 }, p.Values.shape);
            Assert.Equal(torch.int64, p.Values.dtype);
            var metrics = network.Evaluate(new SequenceBatch(v, torch.zeros(new long[] { 5, 2 }, dtype: torch.int64), targetLengths: [5, 3]));
            Assert.Equal(8, metrics.Count);
            Assert.NotNull(metrics.Accuracy);
            Assert.Null(metrics.MeanAbsoluteError);
            Names("steps", () => network.Predict(v));
        }

        // One-to-one regression: [B; I] → [B; O].
        var oneToOne = new SequenceNetworkOptions(InputLayer.Dense(3, 7), [RecurrentLayer.Forward(RecurrentCell.Elman(7, 5))], 2)
            .WithHead(Head.OneToOne).WithLoss(LossKind.MeanSquared).WithPrecision(Precision.Float64);
        using (var network = SequenceNetwork.Create(oneToOne))
        using (var x = Randn(52, 4, 3))
        using (var p = network.Predict(x))
        {
            Assert.Equal(new long[] { 4, 2 }, p.Values.shape);
            var metrics = network.Evaluate(new SequenceBatch(x, Randn(53, 4, 2)));
            Assert.Null(metrics.Accuracy);
            Assert.NotNull(metrics.MeanAbsoluteError);
            Assert.Equal(HeadKind.OneToOne, network.Options.Head.Kind);
        }

        // Encoder–decoder: source ids over 5 tokens → target ids over 6, decoded greedily up to MaxLength = 4.
        var decoder = new DecoderOptions(InputLayer.Embedding(6, 3), [RecurrentLayer.Forward(RecurrentCell.Gru(3, 7))], bos: 0, eos: 1, maxLength: 4);
        var encoderDecoder = new SequenceNetworkOptions(InputLayer.OneHot(5), [RecurrentLayer.Forward(RecurrentCell.Gru(5, 8))], 6)
            .WithHead(Head.EncoderDecoder(decoder));
        using (var network = SequenceNetwork.Create(encoderDecoder))
        using (var source = torch.tensor(new long[] { 2, 3, 4, 2, 3, 4 }).reshape(3, 2))
        using (var p = network.Predict(source, [3, 2]))
        {
            Assert.Equal(2, p.Values.shape[1]);
            Assert.InRange(p.Values.shape[0], 1, 4);
            Assert.NotNull(p.Lengths);
            Assert.All(p.Lengths!, l => Assert.InRange(l, 1, 4));
            Assert.Equal(DecoderBridge.Projection, network.Options.Head.Decoder!.Bridge);
            Assert.Contains("encoder–decoder", network.Describe());
        }
    }

    [Fact]
    public void A_network_learns_from_a_batch_function_and_reports_validation_on_the_held_out_batch()
    {
        // Many-to-one: which of 3 symbols starts a row of 2 to 6 symbols? B = 16 rows, padded to T = 6.
        static SequenceBatch FirstSymbol(int seed, int rows)
        {
            var random = new Random(seed);
            var ids = new long[6 * rows];
            var lengths = new long[rows];
            for (var b = 0; b < rows; b++)
            {
                lengths[b] = random.Next(2, 7);
                for (var t = 0; t < lengths[b]; t++) ids[t * rows + b] = random.Next(3);
            }
            return new SequenceBatch(torch.tensor(ids).reshape(6, rows), torch.tensor(ids.Take(rows).ToArray()), lengths);
        }
        var options = new SequenceNetworkOptions(InputLayer.OneHot(3), [RecurrentLayer.Forward(RecurrentCell.Lstm(3, 10))], 3)
            .WithHead(Head.ManyToOne(Pooling.Last));
        var validation = FirstSymbol(-1, 100);
        var data = TrainingData.FromBatches(k => FirstSymbol(k, 16), rowsPerBatch: 16, validation);
        using (var untrained = SequenceNetwork.Create(options, data))
        {
            untrained.Train(1);
            Assert.Equal(TrainingOptions.Default.WithFullBptt(), untrained.LastTrainingOptions); // the default for batches
        }
        using var network = SequenceNetwork.Create(options, data);
        var progress = new Recorder();
        var summary = network.Train(150, TrainingOptions.Default.WithFullBptt().WithLearningRate(0.02).WithEvaluateEvery(50), progress);
        Assert.Equal(new[] { 50, 100, 150 }, progress.Reports.Where(p => p.ValidationLoss is not null).Select(p => p.Step));
        Assert.NotNull(summary.ValidationLoss);
        Assert.True(summary.ValidationLoss < progress.Reports.First(p => p.ValidationLoss is not null).ValidationLoss);
        var heldOut = network.Evaluate(FirstSymbol(-2, 300));
        Assert.Equal(300, heldOut.Count);
        Assert.InRange(heldOut.Accuracy!.Value, 0.9, 1.0);
    }

    [Fact]
    public async Task TrainAsync_reports_every_step_and_a_cancelled_run_returns_its_summary()
    {
        using var network = SequenceNetwork.Create(SequenceNetworkOptions.NextToken(V, [RecurrentLayer.Forward(RecurrentCell.Lstm(V, 6))]),
            TrainingData.FromCorpus(Fox));
        using var cts = new CancellationTokenSource();
        var caller = Environment.CurrentManagedThreadId;
        var progress = new Recorder(p => { if (p.Step == 3) cts.Cancel(); });
        var run = network.TrainAsync(1_000_000, Small, progress, cts.Token);
        var summary = await run;
        Assert.True(summary.Cancelled);
        Assert.Equal(3, summary.Steps);
        Assert.Equal(new[] { 1, 2, 3 }, progress.Reports.Select(p => p.Step));
        Assert.DoesNotContain(caller, progress.Threads);
        Assert.NotNull(summary.ValidationLoss);
        // Still usable, and the same options continue the same run.
        var next = await network.TrainAsync(2, Small);
        Assert.False(next.Cancelled);
        Assert.Equal(5, next.TotalSteps);
        Assert.Equal(5, network.StepCount);
    }

    [Fact]
    public void Bad_input_names_the_property_or_the_argument()
    {
        // A batch checks what it can without a network.
        using var xs = Randn(61, 5, 3, 2);
        using var ys = torch.zeros(new long[] { 5, 3 }, dtype: torch.int64);
        Assert.Equal("inputs", Assert.Throws<ArgumentNullException>(() => new SequenceBatch(null!, ys)).ParamName);
        Assert.Equal("targets", Assert.Throws<ArgumentNullException>(() => new SequenceBatch(xs, null!)).ParamName);
        Names("lengths", () => new SequenceBatch(xs, ys, lengths: [5, 4]), "one length per row of inputs (B = 3)");
        Names("lengths", () => new SequenceBatch(xs, ys, lengths: [5, 0, 2]), "row 1 has 0");
        Names("lengths", () => new SequenceBatch(xs, ys, lengths: [5, 6, 2]), "[1, T = 5]");
        Names("targetLengths", () => new SequenceBatch(xs, ys, targetLengths: [1, 2]));

        // Options name the property at fault.
        var lstm = RecurrentLayer.Forward(RecurrentCell.Lstm(2, 4));
        var good = new SequenceNetworkOptions(InputLayer.Vectors(2), [lstm], 3);
        Names("Layers", () => SequenceNetwork.Create(good.WithLayers([lstm, RecurrentLayer.Forward(RecurrentCell.Gru(3, 4))])),
            "layer 1 ('gru-pytorch') reads vectors of width 3, but layer 0 gives 4");
        Names("Layers", () => SequenceNetwork.Create(good.WithInput(InputLayer.Vectors(3))), "the input layer (vectors of width 3) gives 3");
        Names("Layers", () => SequenceNetwork.Create(good with { Layers = [] }));
        Names("Dropout", () => good.WithDropout(1.0));
        Names("OutputSize", () => SequenceNetwork.Create(good with { OutputSize = 0 }));
        Names("Head", () => SequenceNetwork.Create(good.WithInput(InputLayer.OneHot(2)).WithHead(Head.OneToOne)), "one-to-one");
        Names("Head", () => SequenceNetwork.Create(good.WithLayers([lstm with { Direction = LayerDirection.Bidirectional }])
            .WithHead(Head.OneToMany(VectorAs.InputAtEachStep))), "left to right");
        Names("Head", () => SequenceNetwork.Create(good.WithInput(InputLayer.OneHot(2)).WithHead(Head.EncoderDecoder(
            new DecoderOptions(InputLayer.OneHot(3), [RecurrentLayer.Forward(RecurrentCell.Gru(3, 4))], bos: 0, eos: 7, maxLength: 5)))), "Eos");
        Names("data", () => SequenceNetwork.Create(good, TrainingData.FromCorpus(Fox)), "NextToken");

        // Inputs and batches that do not fit the network are named by the core's argument.
        using var network = SequenceNetwork.Create(good.WithPrecision(Precision.Float64).WithHead(Head.ManyToOne()),
            TrainingData.FromBatches(k => new SequenceBatch(Randn((ulong)k, 4, 2, 2), torch.zeros(2, dtype: torch.int64)), rowsPerBatch: 3));
        Names("inputs", () => network.Predict(xs.to_type(torch.float32)), "Float64");
        Names("lengths", () => network.Predict(xs, [1, 2]), "one length per row");
        Names("batch.Targets", () => network.Evaluate(new SequenceBatch(xs, ys)), "[3]");
        Names("batches", () => network.Train(1), "rowsPerBatch = 3");
        Names("steps", () => network.Train(0));
        using (var oneToOne = SequenceNetwork.Create(good.WithHead(Head.OneToOne), TrainingData.FromBatches(k => null!, 2)))
            Names("Bptt", () => oneToOne.Train(1, TrainingOptions.Default), "OneToOne");
        using (var custom = SequenceNetwork.Create(good.WithLayers([RecurrentLayer.Forward(Mgu(2, 4))]), TrainingData.FromBatches(k => null!, 2)))
            Names("ExecutionPath", () => custom.Train(1, TrainingOptions.Default.WithFullBptt().WithExecutionPath(ExecutionPath.Fused)), "Fused");
        using (var withoutData = SequenceNetwork.Create(good))
        {
            Assert.Throws<InvalidOperationException>(() => withoutData.Train(1));
            Assert.Throws<InvalidOperationException>(() => withoutData.Sample("a", 1));
        }

        // Registering a cell.
        Assert.Equal("name", Assert.Throws<ArgumentNullException>(() => RecurrentCell.Register(null!, (i, h) => Mgu(i, h))).ParamName);
        Assert.Equal("make", Assert.Throws<ArgumentNullException>(() => RecurrentCell.Register("mgu", null!)).ParamName);
        Names("name", () => RecurrentCell.Register("lstm", (i, h) => RecurrentCell.Lstm(i, h)), "built-in");
        Names("name", () => RecurrentCell.Register(" ", (i, h) => Mgu(i, h)));
    }

    [Fact]
    public void A_character_models_checkpoint_is_a_network_checkpoint()
    {
        using var folder = new TempFolder();
        var path = folder.File("fox.ckpt");
        using var model = CharLanguageModel.Create(Fox, CharModelOptions.Default.WithCell(CellKind.Gru).WithHiddenSize(7).WithLayers(2));
        model.Train(3, Small);
        model.Save(path);
        using var network = SequenceNetwork.Load(path, TrainingData.FromCorpus(Fox));
        Assert.Equal(model.Sample("the ", 30, seed: 2), network.Sample("the ", 30, seed: 2));
        Assert.Equal(new[] { "gru-pytorch", "gru-pytorch" }, network.Options.Layers.Select(l => l.Cell.Name));
        Assert.Equal(InputKind.OneHot, network.Options.Input.Kind);
        Assert.Equal(3, network.StepCount);
        Assert.Equal(4, network.Train(1).TotalSteps);
    }

    [Fact]
    public void A_disposed_network_refuses_work_and_disposing_twice_is_harmless()
    {
        var network = SequenceNetwork.Create(SequenceNetworkOptions.NextToken(V, [RecurrentLayer.Forward(RecurrentCell.Gru(V, 5))]),
            TrainingData.FromCorpus(Fox));
        network.Dispose();
        Assert.Throws<ObjectDisposedException>(() => network.Sample("the", 3));
        Assert.Throws<ObjectDisposedException>(() => network.Train(1, Small));
        Assert.Throws<ObjectDisposedException>(() => network.GetParameters());
        network.Dispose();
    }

    [Fact]
    public async Task Disposing_during_a_run_ends_it_after_the_current_step()
    {
        // From another thread, while the run goes on.
        var network = SequenceNetwork.Create(SequenceNetworkOptions.NextToken(V, [RecurrentLayer.Forward(RecurrentCell.Gru(V, 5))]),
            TrainingData.FromCorpus(Fox));
        using var started = new SemaphoreSlim(0);
        var run = network.TrainAsync(1_000_000, Small, new Recorder(p => { if (p.Step == 2) started.Release(); }));
        await started.WaitAsync();
        network.Dispose();
        var summary = await run;
        Assert.True(summary.Cancelled);
        Assert.InRange(summary.Steps, 2, 999_999);
        Assert.Throws<ObjectDisposedException>(() => network.Train(1, Small));

        // From the run's own progress report: the network releases itself when the step ends.
        var second = SequenceNetwork.Create(SequenceNetworkOptions.NextToken(V, [RecurrentLayer.Forward(RecurrentCell.Gru(V, 5))]),
            TrainingData.FromCorpus(Fox));
        var inside = await second.TrainAsync(1_000_000, Small, new Recorder(p => { if (p.Step == 3) second.Dispose(); }));
        Assert.True(inside.Cancelled);
        Assert.Equal(3, inside.Steps);
        Assert.Throws<ObjectDisposedException>(() => second.Sample("the", 1));
    }
}
