using SeqNets.CSharp;
using TorchSharp;
using Xunit;
using Tensor = TorchSharp.torch.Tensor;

namespace SeqNets.CSharp.Tests;

/// <summary>
/// Every code block of docs/custom-cells-csharp.md, compiled and run as written; each test is marked
/// with the section it comes from, and <see cref="DocsPageTests"/> checks that the page's blocks appear
/// here verbatim. The minimal gated unit defined here is the one the other tests use.
/// </summary>
public class CustomCellsPageSnippets
{
    // docs/custom-cells-csharp.md: Define the cell
    public static RecurrentCell Mgu(int inputSize, int hiddenSize, bool rowParameters = true)
    {
        var layout = new CellLayout(
            new ParameterShape("W_f", hiddenSize, inputSize), new ParameterShape("U_f", hiddenSize, hiddenSize),
            new ParameterShape("b_f", hiddenSize),
            new ParameterShape("W_h", hiddenSize, inputSize), new ParameterShape("U_h", hiddenSize, hiddenSize),
            new ParameterShape("b_h", hiddenSize));

        // W v for θ [P] (the block W is [H; K]) and for θ [B; P] (a block per row, [B; H; K]) alike: [B; K] → [B; H].
        Tensor Times(Tensor theta, string block, Tensor v) => layout.View(theta, block).matmul(v.unsqueeze(-1)).squeeze(-1);

        Tensor Transition(Tensor theta, Tensor x, Tensor h)
        {
            var f = torch.sigmoid(Times(theta, "W_f", x) + Times(theta, "U_f", h) + layout.View(theta, "b_f"));        // [B; H]
            var hTilde = torch.tanh(Times(theta, "W_h", x) + Times(theta, "U_h", f * h) + layout.View(theta, "b_h"));  // [B; H]
            return (1.0 - f) * h + f * hTilde;                                                                         // [B; H]
        }

        return RecurrentCell.Custom("mgu", inputSize, hiddenSize, stateSize: hiddenSize, layout, Transition,
            rowParameters: rowParameters);
    }

    [Fact]
    public void Verify_it()
    {
        // docs/custom-cells-csharp.md: Verify it
        var cell = Mgu(inputSize: 3, hiddenSize: 4);
        var options = NetworkOptions.Default.WithSeed(1).WithPrecision(Precision.Float64);
        using var net = new RecurrentNetwork(cell, options);
        using var xs = torch.randn(new long[] { 6, 2, 3 }, dtype: torch.float64);   // [T; B; I]
        IdentityReport report = net.VerifyIdentity(xs);
        Console.WriteLine(report.HandDerived);         // False: c_t and b_t are autodiff's local Jacobians
        Console.WriteLine(report.WorstError < 1e-9);   // True: recurrence = closed form = reverse mode

        // The same local Jacobians without row parameters: one backward pass per state entry instead of one in all.
        using var perEntry = new RecurrentNetwork(Mgu(inputSize: 3, hiddenSize: 4, rowParameters: false), options);
        using var fast = net.JacobiansByAutodiff(xs);
        using var slow = perEntry.JacobiansByAutodiff(xs);

        Assert.False(report.HandDerived);
        Assert.InRange(report.WorstError, 0.0, 1e-9);
        Assert.True(cell.HasRowParameters);
        Assert.False(cell.HasJacobians);
        Assert.InRange(Common.RelativeError(fast.State, slow.State), 0.0, 1e-12);
        Assert.InRange(Common.RelativeError(fast.Parameters, slow.Parameters), 0.0, 1e-12);
    }

    /// <summary>The page's corpus, network and training options, trained for the sections that start from them.</summary>
    internal static (CharCorpus Corpus, SequenceNetworkOptions Options, SequenceNetwork Network, TrainingOptions Training) Trained(int steps)
    {
        var text = string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 40));
        var corpus = CharCorpus.FromText(text);
        var layers = new[] { RecurrentLayer.Forward(Mgu(corpus.Vocabulary.Count, 16)) };
        var options = SequenceNetworkOptions.NextToken(corpus.Vocabulary.Count, layers).WithSeed(7);
        var network = SequenceNetwork.Create(options, TrainingData.FromCorpus(corpus));
        var training = TrainingOptions.Default.WithTruncatedBptt(tau: 16).WithBatch(8).WithSequenceLength(16).WithLearningRate(0.01);
        network.Train(steps, training);
        return (corpus, options, network, training);
    }

    [Fact]
    public void Train_it_on_text()
    {
        // docs/custom-cells-csharp.md: Train it on text
        var text = string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 40));
        var corpus = CharCorpus.FromText(text);
        var layers = new[] { RecurrentLayer.Forward(Mgu(corpus.Vocabulary.Count, 16)) };
        var options = SequenceNetworkOptions.NextToken(corpus.Vocabulary.Count, layers).WithSeed(7);
        using var network = SequenceNetwork.Create(options, TrainingData.FromCorpus(corpus));
        Console.WriteLine(network);   // one-hot over 28 tokens → mgu 16 → a prediction per step → readout 28; 1,916 parameters

        var training = TrainingOptions.Default.WithTruncatedBptt(tau: 16).WithBatch(8).WithSequenceLength(16).WithLearningRate(0.01);
        TrainingSummary summary = network.Train(100, training);
        Console.WriteLine(summary);

        Assert.Equal("one-hot over 28 tokens → mgu 16 → a prediction per step → readout 28; 1,916 parameters", network.ToString());
        Assert.False(network.HasFusedPath);
        Assert.Equal(100, summary.Steps);
        // Well below ln V, the loss of a network that has learned nothing.
        Assert.InRange(summary.ValidationLoss!.Value, 0.0, 0.5 * Math.Log(corpus.Vocabulary.Count));
    }

    [Fact]
    public void Save_load_and_sample()
    {
        var trained = Trained(40);
        using var network = trained.Network;
        var corpus = trained.Corpus;
        var path = Path.Combine(Path.GetTempPath(), "mgu.ckpt");
        try
        {
            // docs/custom-cells-csharp.md: Save, load and sample
            RecurrentCell.Register("mgu", (inputSize, hiddenSize) => Mgu(inputSize, hiddenSize));
            network.Save(path);
            string sample = network.Sample(prime: "the ", length: 60, seed: 1);
            Console.WriteLine("the " + sample);

            using var restored = SequenceNetwork.Load(path);
            Console.WriteLine(restored.Sample(prime: "the ", length: 60, seed: 1) == sample);   // True

            using var resumed = SequenceNetwork.Load(path, TrainingData.FromCorpus(corpus));
            resumed.Train(20);   // continues the saved run: same options, optimizer state and position in the text

            Assert.Equal(sample, restored.Sample(prime: "the ", length: 60, seed: 1));
            Assert.Equal(60, sample.Length);
            Assert.Equal("mgu", restored.Options.Layers[0].Cell.Name);
            Assert.Equal(60, resumed.StepCount);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Export_to_PyTorch()
    {
        var trained = Trained(5);
        using var network = trained.Network;
        var corpus = trained.Corpus;
        var options = trained.Options;
        var statePath = Path.Combine(Path.GetTempPath(), "mgu.pt");
        try
        {
            // docs/custom-cells-csharp.md: Export to PyTorch
            network.ExportPyTorch(statePath);   // rnn.l0.W_f, rnn.l0.U_f, …, rnn.l0.b_h, out.weight, out.bias
            using var back = SequenceNetwork.ImportPyTorch(statePath, options, TrainingData.FromCorpus(corpus));
            Console.WriteLine(back.Sample(prime: "the ", length: 60, seed: 1) == network.Sample(prime: "the ", length: 60, seed: 1));   // True

            Assert.Equal(network.Sample(prime: "the ", length: 60, seed: 1), back.Sample(prime: "the ", length: 60, seed: 1));
        }
        finally
        {
            File.Delete(statePath);
        }
    }

    [Fact]
    public void Stack_it_and_read_both_ways()
    {
        // docs/custom-cells-csharp.md: Stack it and read both ways
        // Which symbol, 0, 1 or 2, starts each row? Rows of 2 to 6 symbols, padded to T = 6.
        SequenceBatch FirstSymbol(int seed, int rows)
        {
            var random = new Random(seed);
            var ids = new long[6 * rows];   // [T; B], time first
            var lengths = new long[rows];
            for (var b = 0; b < rows; b++)
            {
                lengths[b] = random.Next(2, 7);
                for (var t = 0; t < lengths[b]; t++) ids[t * rows + b] = random.Next(3);
            }
            return new SequenceBatch(torch.tensor(ids).reshape(6, rows), torch.tensor(ids[..rows]), lengths);
        }

        var layers = RecurrentLayer.Stack(2, inputWidth: 3, width => Mgu(width, 8), LayerDirection.Bidirectional);
        var shape = new SequenceNetworkOptions(InputLayer.OneHot(3), layers, outputSize: 3).WithHead(Head.ManyToOne(Pooling.Last));
        var data = TrainingData.FromBatches(k => FirstSymbol(k, 16), rowsPerBatch: 16, validation: FirstSymbol(-1, 200));
        using var classifier = SequenceNetwork.Create(shape, data);
        classifier.Train(40, TrainingOptions.Default.WithFullBptt().WithLearningRate(0.03));

        SequenceMetrics heldOut = classifier.Evaluate(FirstSymbol(-2, 500));
        Console.WriteLine($"accuracy {heldOut.Accuracy:P1} on 500 held-out rows");

        Assert.Equal(16, layers[1].Cell.InputSize);   // both directions of layer 0, concatenated
        Assert.InRange(heldOut.Accuracy!.Value, 0.9, 1.0);
    }
}
