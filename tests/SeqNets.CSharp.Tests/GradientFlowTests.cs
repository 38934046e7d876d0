using SeqNets.CSharp;
using TorchSharp;
using Xunit;
using static SeqNets.CSharp.Tests.Common;

namespace SeqNets.CSharp.Tests;

public class GradientFlowTests
{
    // T ≠ B ≠ I ≠ H.
    const int T = 9, B = 2, I = 3, H = 5;

    [Theory]
    [InlineData("elman-tanh")]
    [InlineData("gru-pytorch")]
    [InlineData("lstm")]
    public void Analyze_gives_every_lag_and_every_tau_and_the_gradient_norm_of_autograd(string kind)
    {
        var cell = CellOf(kind);
        using var net = new RecurrentNetwork(cell, Float64);
        using var xs = Randn(21, T, B, I);
        using var s0 = Randn(22, B, cell.StateSize);
        torch.Tensor Loss(torch.Tensor states) => states.narrow(0, 1, T).tanh().sum() / T;
        var flow = GradientFlow.Analyze(cell, net.Parameters, xs, s0, Loss);
        Assert.Equal(T, flow.Steps);
        Assert.Equal(T, flow.LossGradientByLag.Length);
        Assert.Equal(T, flow.SpectralGeometricMean.Length);
        Assert.Equal(T, flow.TruncationDiscarded.Length);
        Assert.Equal(1.0, flow.SpectralGeometricMean[0], 12);
        Assert.True(flow.TruncationDiscarded[T - 1] < 1e-12, "truncation at τ = T discards nothing");
        Assert.Equal(1.0, flow.TruncationKept[T - 1], 12);
        // ‖∂L/∂θ‖ by autograd through the unrolled states.
        using var theta = net.Parameters.detach().clone().requires_grad_(true);
        var states = TorchSharp.torch.stack(Unroll(cell, theta, xs, s0), 0);
        var g = torch.autograd.grad(new[] { Loss(states) }, new[] { theta })[0];
        double norm = g.norm().item<double>();
        Assert.True(Math.Abs(flow.GradientNorm - norm) <= 1e-9 * norm, $"{flow.GradientNorm} vs autograd {norm}");
    }

    static torch.Tensor[] Unroll(RecurrentCell cell, torch.Tensor theta, torch.Tensor xs, torch.Tensor s0)
    {
        var all = new List<torch.Tensor> { s0 };
        var s = s0;
        for (long t = 0; t < xs.shape[0]; t++)
        {
            s = SeqNets.CellModule.Step(cell.Core, theta, xs[t], s).Item2;
            all.Add(s);
        }
        return all.ToArray();
    }

    [Fact]
    public void SavePictures_writes_PNG_files_with_CSV_beside_them()
    {
        var cell = RecurrentCell.Lstm(I, H);
        using var net = new RecurrentNetwork(cell, Float64);
        using var xs = Randn(23, T, B, I);
        using var s0 = Randn(24, B, cell.StateSize);
        var flow = GradientFlow.Analyze(cell, net.Parameters, xs, s0, states => states.square().mean(), lags: 4);
        var dir = Directory.CreateTempSubdirectory("seqnets-flow-").FullName;
        try
        {
            var paths = flow.SavePictures(dir);
            Assert.NotEmpty(paths);
            foreach (var p in paths)
            {
                var bytes = File.ReadAllBytes(p);
                Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes.Take(4).ToArray());
                Assert.True(File.Exists(Path.ChangeExtension(p, ".csv")));
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Bad_arguments_are_refused_by_name()
    {
        var cell = RecurrentCell.Gru(I, H);
        using var net = new RecurrentNetwork(cell, Float64);
        using var xs = Randn(25, T, B, I);
        using var s0 = Randn(26, B, cell.StateSize);
        Assert.Equal("cell", Assert.Throws<ArgumentNullException>(() => GradientFlow.Analyze(null!, net.Parameters, xs, s0, s => s.sum())).ParamName);
        Assert.Equal("loss", Assert.Throws<ArgumentNullException>(() => GradientFlow.Analyze(cell, net.Parameters, xs, s0, null!)).ParamName);
        Assert.Equal("Lags", Assert.Throws<ArgumentException>(() => GradientFlow.Analyze(cell, net.Parameters, xs, s0, s => s.sum(), lags: 0)).ParamName);
    }
}
