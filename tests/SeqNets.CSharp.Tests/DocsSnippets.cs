using SeqNets.CSharp;
using TorchSharp;
using Xunit;

namespace SeqNets.CSharp.Tests;

/// <summary>
/// Every code block of docs/getting-started-csharp.md, compiled and run as written; each test is
/// marked with the section it comes from, and <see cref="DocsPageTests"/> checks that the page's
/// blocks appear here verbatim.
/// </summary>
public class DocsSnippets
{
    [Fact]
    public void Load_the_engine()
    {
        // docs/getting-started-csharp.md: Load the engine
        SeqNetsEngine.EnsureLoaded();
        using var one = torch.ones(1);
        Assert.Equal(1.0f, one.item<float>());
    }

    [Fact]
    public void Build_a_cell_and_unroll_it()
    {
        // docs/getting-started-csharp.md: Build a cell and unroll it
        var cell = RecurrentCell.Lstm(inputSize: 3, hiddenSize: 5);             // S = 10
        var options = NetworkOptions.Default.WithSeed(42).WithPrecision(Precision.Float64);
        using var net = new RecurrentNetwork(cell, options);                    // θ: [P], P = 4H(I + H + 2) = 200
        using var xs = torch.randn(new long[] { 20, 2, 3 }, dtype: torch.float64);   // [T; B; I]
        using var run = net.Unroll(xs);                                         // s_0 … s_T and h_1 … h_T
        Console.WriteLine($"states [{string.Join("; ", run.States.shape)}], outputs [{string.Join("; ", run.Outputs.shape)}]");

        Assert.Equal(200, cell.ParameterCount);
        Assert.Equal(new long[] { 21, 2, 10 }, run.States.shape);
        Assert.Equal(new long[] { 20, 2, 5 }, run.Outputs.shape);
    }

    [Fact]
    public void Verify_the_BPTT_identity()
    {
        var cell = RecurrentCell.Lstm(inputSize: 3, hiddenSize: 5);
        var options = NetworkOptions.Default.WithSeed(42).WithPrecision(Precision.Float64);
        using var net = new RecurrentNetwork(cell, options);
        using var xs = torch.randn(new long[] { 20, 2, 3 }, dtype: torch.float64);

        // docs/getting-started-csharp.md: Verify the BPTT identity
        using var closedForm = net.StateParameterJacobian(xs, route: BpttRoute.ClosedForm);   // [T; B; S; P]
        using var autodiff = net.StateParameterJacobian(xs, route: BpttRoute.Autodiff);
        IdentityReport report = net.VerifyIdentity(xs);
        Console.WriteLine(report);                    // each disagreement and each route's time
        Console.WriteLine(report.WorstError < 1e-9);  // True in float64

        Assert.Equal(new long[] { 20, 2, 10, 200 }, closedForm.shape);
        Assert.InRange(report.WorstError, 0.0, 1e-9);
        Assert.InRange(Common.RelativeError(closedForm, autodiff), 0.0, 1e-9);
    }

    [Fact]
    public async Task Train_a_character_model()
    {
        // docs/getting-started-csharp.md: Train a character model
        var text = string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 40));
        var corpus = CharCorpus.FromText(text, trainFraction: 0.9);
        using var model = CharLanguageModel.Create(corpus, CharModelOptions.Default
            .WithCell(CellKind.Lstm)
            .WithHiddenSize(64)
            .WithSeed(7));

        var training = TrainingOptions.Default
            .WithTruncatedBptt(tau: 16)
            .WithBatch(8)
            .WithSequenceLength(16)
            .WithLearningRate(0.01)
            .WithEvaluateEvery(100);

        var progress = new Progress<TrainingProgress>(p =>
        {
            if (p.ValidationLoss is double validation)
                Console.WriteLine($"step {p.Step}/{p.TotalSteps}: loss {p.Loss:F3}, validation {validation:F3}, eta {p.EstimatedRemaining:mm\\:ss}");
        });
        TrainingSummary summary = await model.TrainAsync(300, training, progress);
        Console.WriteLine(summary);

        Assert.Equal(300, summary.Steps);
        Assert.False(summary.Cancelled);
        // Far below ln V, the loss of a model that has learned nothing.
        Assert.InRange(summary.ValidationLoss!.Value, 0.0, 0.5 * Math.Log(corpus.Vocabulary.Count));
    }

    /// <summary>A small trained model for the sections that start from one.</summary>
    private static (CharCorpus Corpus, CharLanguageModel Model, TrainingOptions Training) Trained(int steps)
    {
        var text = string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 40));
        var corpus = CharCorpus.FromText(text, trainFraction: 0.9);
        var model = CharLanguageModel.Create(corpus, CharModelOptions.Default.WithHiddenSize(32).WithSeed(7));
        var training = TrainingOptions.Default.WithTruncatedBptt(tau: 16).WithBatch(8).WithSequenceLength(16).WithLearningRate(0.01);
        model.Train(steps, training);
        return (corpus, model, training);
    }

    [Fact]
    public void Stop_early()
    {
        var trained = Trained(1);
        using var model = trained.Model;
        var training = trained.Training;

        // docs/getting-started-csharp.md: Stop early
        using var budget = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        TrainingSummary partial = model.Train(1_000_000, training, cancellationToken: budget.Token);
        Console.WriteLine($"{partial.Steps} steps in a second; cancelled: {partial.Cancelled}");

        Assert.True(partial.Cancelled);
        Assert.InRange(partial.Steps, 1, 999_999);
    }

    [Fact]
    public void Sample()
    {
        using var model = Trained(50).Model;

        // docs/getting-started-csharp.md: Sample
        string sample = model.Sample(prime: "the ", length: 80, temperature: 0.8, seed: 1);
        Console.WriteLine("the " + sample);
        Console.WriteLine(model.Predict("the quick"));   // the most likely character after each prefix

        Assert.Equal(80, sample.Length);
        Assert.All(sample.EnumerateRunes(), c => Assert.Contains(c, model.Vocabulary));
        Assert.Equal(9, model.Predict("the quick").Length);
    }

    [Fact]
    public void Save_and_load()
    {
        var trained = Trained(50);
        using var model = trained.Model;
        var corpus = trained.Corpus;
        string sample = model.Sample(prime: "the ", length: 80, temperature: 0.8, seed: 1);

        try
        {
            // docs/getting-started-csharp.md: Save and load
            var path = Path.Combine(Path.GetTempPath(), "fox.ckpt");
            model.Save(path);

            using var restored = CharLanguageModel.Load(path);
            Console.WriteLine(restored.Sample(prime: "the ", length: 80, temperature: 0.8, seed: 1) == sample);   // True

            using var resumed = CharLanguageModel.Load(path, corpusForResume: corpus);
            resumed.Train(50);                                 // continues the saved run: same options, optimizer and position

            try
            {
                CharLanguageModel.Load("no-such-model.ckpt");
            }
            catch (SeqNetsCheckpointException e)
            {
                Console.WriteLine($"{e.Path}: {e.Problem}");   // no-such-model.ckpt: no such file
            }

            Assert.Equal(sample, restored.Sample(prime: "the ", length: 80, temperature: 0.8, seed: 1));
            Assert.Equal(100, resumed.StepCount);
            Assert.Throws<SeqNetsCheckpointException>(() => CharLanguageModel.Load("no-such-model.ckpt"));
        }
        finally
        {
            File.Delete(Path.Combine(Path.GetTempPath(), "fox.ckpt"));
        }
    }

    [Fact]
    public void PyTorch_interop()
    {
        var trained = Trained(20);
        using var model = trained.Model;
        var corpus = trained.Corpus;
        string sample = model.Sample(prime: "the ", length: 40, temperature: 0.8, seed: 1);

        try
        {
            // docs/getting-started-csharp.md: PyTorch interop
            // From SeqNets to PyTorch: nn.LSTM(3, 5).load_state_dict(torch.load(path)) reads this file.
            using var lstm = new RecurrentNetwork(RecurrentCell.Lstm(inputSize: 3, hiddenSize: 5));
            var path = Path.Combine(Path.GetTempPath(), "lstm.pt");
            lstm.ExportPyTorch(path);

            // From PyTorch to SeqNets: the file torch.save(nn.LSTM(3, 5).state_dict(), path) writes.
            using var imported = RecurrentNetwork.ImportPyTorch(RecurrentCell.Lstm(inputSize: 3, hiddenSize: 5), path);

            // A whole character model: rnn.weight_ih_l0 … rnn.bias_hh_l0, out.weight, out.bias.
            var modelPath = Path.Combine(Path.GetTempPath(), "fox.pt");
            model.ExportPyTorch(modelPath);
            using var fromPyTorch = CharLanguageModel.ImportPyTorch(modelPath, corpus, CellKind.Lstm);

            try
            {
                RecurrentNetwork.ImportPyTorch(RecurrentCell.Gru(inputSize: 3, hiddenSize: 5), path);
            }
            catch (SeqNetsStateDictException e)
            {
                Console.WriteLine($"{e.Key}: {e.Problem}");   // weight_ih_l0: expected shape [15; 3], but got [20; 3]
            }

            using var same = imported.Parameters.eq(lstm.Parameters).all();
            Assert.True(same.item<bool>());
            Assert.Equal(sample, fromPyTorch.Sample(prime: "the ", length: 40, temperature: 0.8, seed: 1));
            var e2 = Assert.Throws<SeqNetsStateDictException>(() => RecurrentNetwork.ImportPyTorch(RecurrentCell.Gru(inputSize: 3, hiddenSize: 5), path));
            Assert.Equal("weight_ih_l0", e2.Key);
            Assert.Equal("expected shape [15; 3], but got [20; 3]", e2.Problem);
        }
        finally
        {
            File.Delete(Path.Combine(Path.GetTempPath(), "lstm.pt"));
            File.Delete(Path.Combine(Path.GetTempPath(), "fox.pt"));
        }
    }
}
