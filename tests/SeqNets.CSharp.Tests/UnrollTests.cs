using SeqNets.CSharp;
using TorchSharp;
using Xunit;
using static SeqNets.CSharp.Tests.Common;

namespace SeqNets.CSharp.Tests;

public class UnrollTests
{
    [Theory]
    [InlineData("elman-tanh", H)]
    [InlineData("gru-pytorch", H)]
    [InlineData("lstm", 2 * H)]
    [InlineData("mrnn", H)]
    public void Unroll_returns_every_state_and_every_output(string kind, int stateSize)
    {
        var cell = CellOf(kind);
        Assert.Equal(stateSize, cell.StateSize);
        using var net = new RecurrentNetwork(cell, Float64);
        using var xs = Randn(1, T, B, I);
        using var run = net.Unroll(xs);
        Assert.Equal(new long[] { T + 1, B, stateSize }, Shape(run.States));
        Assert.Equal(new long[] { T, B, H }, Shape(run.Outputs));
        Assert.Equal(new long[] { B, stateSize }, Shape(run.FinalState));
        using var s0 = run.States[0];
        using var zero = s0.abs().max();
        Assert.Equal(0.0, zero.item<double>());
    }

    [Fact]
    public void Stepping_by_hand_matches_the_unroll()
    {
        using var net = new RecurrentNetwork(RecurrentCell.Lstm(I, H), Float64);
        using var xs = Randn(2, T, B, I);
        using var s0 = Randn(3, 2 * H);
        using var run = net.Unroll(xs, s0);
        var state = s0;
        for (var t = 0; t < T; t++)
        {
            using var x = xs[t];
            using var step = net.Step(x, state);
            using var expected = run.States[t + 1];
            using var expectedOutput = run.Outputs[t];
            Assert.True(RelativeError(step.State, expected) < Tolerance);
            Assert.True(RelativeError(step.Output, expectedOutput) < Tolerance);
            state = step.State.clone();
        }
    }

    [Fact]
    public void A_shared_initial_state_equals_the_same_state_per_row()
    {
        using var net = new RecurrentNetwork(RecurrentCell.Gru(I, H), Float64);
        using var xs = Randn(4, T, B, I);
        using var shared = Randn(5, H);
        using var perRow = shared.unsqueeze(0).expand(B, H).contiguous();
        using var a = net.Unroll(xs, shared);
        using var b = net.Unroll(xs, perRow);
        Assert.Equal(0.0, RelativeError(a.States, b.States));
    }

    [Fact]
    public void The_cell_describes_its_parameters_in_PyTorch_layout()
    {
        var cell = RecurrentCell.Lstm(I, H);
        Assert.Equal("lstm", cell.Name);
        Assert.Equal(new[] { "weight_ih", "weight_hh", "bias_ih", "bias_hh" }, cell.ParameterBlocks.Select(b => b.Name));
        Assert.Equal(new long[] { 4 * H, I }, cell.ParameterBlocks[0].Shape);
        Assert.Equal(4 * H * (I + H + 2), cell.ParameterCount);
        Assert.True(cell.HasJacobians);
        Assert.False(string.IsNullOrWhiteSpace(cell.Equations));

        using var net = new RecurrentNetwork(cell, Float64);
        Assert.Equal(new long[] { cell.ParameterCount }, Shape(net.Parameters));
        using var U = net.GetParameter("weight_hh");
        Assert.Equal(new long[] { 4 * H, H }, Shape(U));
        // A view: writing to it writes to θ.
        U.zero_();
        using var again = net.GetParameter("weight_hh");
        using var m = again.abs().max();
        Assert.Equal(0.0, m.item<double>());
    }

    [Fact]
    public void The_same_seed_gives_the_same_parameters_and_another_seed_does_not()
    {
        var cell = RecurrentCell.Elman(I, H);
        using var a = new RecurrentNetwork(cell, Float64);
        using var b = new RecurrentNetwork(cell, Float64);
        using var c = new RecurrentNetwork(cell, Float64.WithSeed(8));
        Assert.Equal(0.0, RelativeError(a.Parameters, b.Parameters));
        Assert.True(RelativeError(a.Parameters, c.Parameters) > 0.01);
        Assert.Equal(torch.float64, a.Parameters.dtype);
        using var f32 = new RecurrentNetwork(cell);
        Assert.Equal(torch.float32, f32.Parameters.dtype);
    }

    [Fact]
    public void A_disposed_network_refuses_work()
    {
        var net = new RecurrentNetwork(RecurrentCell.Elman(I, H), Float64);
        net.Dispose();
        using var xs = Randn(1, T, B, I);
        Assert.Throws<ObjectDisposedException>(() => net.Unroll(xs));
        net.Dispose(); // twice is harmless
    }
}
