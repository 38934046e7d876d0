using TorchSharp;
using Xunit;

namespace SeqNets.CSharp.Tests;

/// <summary>The README's C# example, compiled and run as written.</summary>
public class ReadmeExample
{
    [Fact]
    public void The_README_example_runs()
    {
        var worst = Readme.Run();
        Assert.InRange(worst, 0.0, 1e-9);
    }
}

internal static class Readme
{
    public static double Run()
    {
        // README:BEGIN
        // using SeqNets.CSharp; using TorchSharp;
        SeqNetsEngine.EnsureLoaded();                                      // load libtorch before any TorchSharp call
        var cell = RecurrentCell.Lstm(inputSize: 3, hiddenSize: 5);        // state s = [h; c], S = 10
        var options = NetworkOptions.Default.WithSeed(42).WithPrecision(Precision.Float64);
        using var net = new RecurrentNetwork(cell, options);               // θ: [P], PyTorch's nn.LSTM layout
        using var xs = torch.randn(new long[] { 20, 2, 3 }, dtype: torch.float64);   // [T; B; I]
        using var run = net.Unroll(xs);                                    // States [T+1; B; S], Outputs [T; B; H]
        using var closedForm = net.StateParameterJacobian(xs, route: BpttRoute.ClosedForm);  // ∂s_t/∂θ: [T; B; S; P]
        using var autodiff = net.StateParameterJacobian(xs, route: BpttRoute.Autodiff);
        using var diff = (closedForm - autodiff).abs().max();
        using var scale = autodiff.abs().max();
        Console.WriteLine($"max relative difference: {diff.item<double>() / scale.item<double>():g3}");
        var report = net.VerifyIdentity(xs);                               // c_t, b_t, recurrence, closed form vs autodiff
        Console.WriteLine(report);
        // README:END
        return Math.Max(report.WorstError, diff.item<double>() / scale.item<double>());
    }
}
