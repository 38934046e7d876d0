using SeqNets.CSharp;
using TorchSharp;
using Xunit;
using static SeqNets.CSharp.Tests.Common;

namespace SeqNets.CSharp.Tests;

public class LossGradientTests
{
    private const int O = 6;

    private static void AssertAgree(LossGradients expected, LossGradients actual)
    {
        Assert.InRange(RelativeError(actual.CellParameters, expected.CellParameters), 0.0, Tolerance);
        Assert.InRange(RelativeError(actual.OutputParameters, expected.OutputParameters), 0.0, Tolerance);
        Assert.InRange(RelativeError(actual.InitialState, expected.InitialState), 0.0, Tolerance);
    }

    [Theory]
    [InlineData("elman-tanh")]
    [InlineData("gru-lecture")]
    [InlineData("lstm")]
    [InlineData("mrnn")]
    public void The_closed_form_mean_squared_gradient_equals_autograd(string kind)
    {
        var cell = CellOf(kind);
        using var net = new RecurrentNetwork(cell, Float64.WithOutputSize(O));
        using var xs = Randn(21, T, B, I);
        using var targets = Randn(22, T, B, O);
        using var s0 = Randn(23, B, cell.StateSize);
        using var closedForm = net.LossGradient(xs, targets, s0, BpttRoute.ClosedForm);
        using var recurrence = net.LossGradient(xs, targets, s0, BpttRoute.Recurrence);
        using var autograd = net.LossGradient(xs, targets, s0, BpttRoute.Autodiff);
        Assert.Equal(new long[] { cell.ParameterCount }, Shape(closedForm.CellParameters));
        Assert.Equal(new long[] { O * H + O }, Shape(closedForm.OutputParameters));
        Assert.Equal(new long[] { B, cell.StateSize }, Shape(closedForm.InitialState));
        AssertAgree(autograd, closedForm);
        AssertAgree(autograd, recurrence);
    }

    [Fact]
    public void The_closed_form_cross_entropy_gradient_equals_autograd()
    {
        using var net = new RecurrentNetwork(RecurrentCell.Gru(I, H), Float64.WithOutputSize(O).WithLoss(LossKind.CrossEntropy));
        using var xs = Randn(24, T, B, I);
        using var g = new torch.Generator(25);
        using var targets = torch.randint(0, O, new long[] { T, B }, dtype: torch.int64, generator: g);
        using var closedForm = net.LossGradient(xs, targets);
        using var autograd = net.LossGradient(xs, targets, route: BpttRoute.Autodiff);
        AssertAgree(autograd, closedForm);
    }

    [Fact]
    public void A_network_without_an_output_layer_has_no_loss()
    {
        using var net = new RecurrentNetwork(RecurrentCell.Elman(I, H), Float64);
        Assert.Null(net.OutputParameters);
        using var xs = Randn(26, T, B, I);
        using var targets = Randn(27, T, B, O);
        var e = Assert.Throws<InvalidOperationException>(() => net.LossGradient(xs, targets));
        Assert.Contains("WithOutputSize", e.Message);
    }
}
