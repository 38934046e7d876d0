using SeqNets.CSharp;
using TorchSharp;
using Xunit;
using static SeqNets.CSharp.Tests.Common;

namespace SeqNets.CSharp.Tests;

/// <summary>Bad input raises an ArgumentException that names the C# argument and what was expected.</summary>
public class ArgumentTests
{
    private static readonly RecurrentNetwork Net = new(RecurrentCell.Lstm(I, H), Float64.WithOutputSize(6));

    private static void Names<TException>(string argument, Action action, string? mentions = null)
        where TException : ArgumentException
    {
        var e = Assert.Throws<TException>(action);
        Assert.Equal(argument, e.ParamName);
        Assert.StartsWith(argument + ":", e.Message);
        if (mentions is not null) Assert.Contains(mentions, e.Message);
    }

    [Fact]
    public void Null_inputs() => Names<ArgumentNullException>("inputs", () => Net.Unroll(null!));

    [Fact]
    public void Inputs_of_the_wrong_width()
    {
        using var xs = Randn(1, T, B, I + 1);
        Names<ArgumentException>("inputs", () => Net.Unroll(xs), $"I = {I}");
    }

    [Fact]
    public void Inputs_without_a_time_axis()
    {
        using var xs = Randn(1, B, I);
        Names<ArgumentException>("inputs", () => Net.StateParameterJacobian(xs), "[T; B; I]");
    }

    [Fact]
    public void An_empty_sequence()
    {
        using var xs = torch.zeros(new long[] { 0, B, I }, dtype: torch.float64);
        Names<ArgumentException>("inputs", () => Net.Jacobians(xs), "T >= 1");
    }

    [Fact]
    public void Inputs_of_another_precision()
    {
        using var xs = torch.randn(new long[] { T, B, I }, dtype: torch.float32);
        Names<ArgumentException>("inputs", () => Net.VerifyIdentity(xs), "Float32");
    }

    [Fact]
    public void Inputs_with_NaN()
    {
        using var xs = Randn(1, T, B, I);
        xs[2, 1, 0] = torch.tensor(double.NaN, dtype: torch.float64);
        Names<ArgumentException>("inputs", () => Net.Unroll(xs), "1 NaN");
    }

    [Fact]
    public void An_initial_state_of_the_wrong_size()
    {
        using var xs = Randn(1, T, B, I);
        using var s0 = Randn(2, B, H); // an LSTM's state is [h; c]: S = 2H
        Names<ArgumentException>("initialState", () => Net.Unroll(xs, s0), $"S = {2 * H}");
    }

    [Fact]
    public void A_step_input_of_the_wrong_shape()
    {
        using var x = Randn(1, T, B, I);
        Names<ArgumentException>("input", () => Net.Step(x), "[B; I]");
    }

    [Fact]
    public void Targets_of_the_wrong_shape()
    {
        using var xs = Randn(1, T, B, I);
        using var targets = Randn(2, T, B, 5);
        Names<ArgumentException>("targets", () => Net.LossGradient(xs, targets));
        Names<ArgumentNullException>("targets", () => Net.LossGradient(xs, null!));
    }

    [Fact]
    public void A_non_positive_truncation()
    {
        using var xs = Randn(1, T, B, I);
        Names<ArgumentException>("tau", () => Net.TruncatedStateParameterJacobian(0, xs), "positive");
    }

    [Fact]
    public void An_unknown_route() =>
        Names<ArgumentOutOfRangeException>("route", () => Net.StateParameterJacobian(Randn(1, T, B, I), route: (BpttRoute)7));

    [Fact]
    public void An_unknown_parameter_name() =>
        Names<ArgumentException>("name", () => Net.GetParameter("weight"), "weight_ih");

    [Fact]
    public void Non_positive_sizes()
    {
        Names<ArgumentException>("inputSize", () => RecurrentCell.Elman(0, H), "got 0");
        Names<ArgumentException>("hiddenSize", () => RecurrentCell.Lstm(I, -1), "got -1");
        Names<ArgumentException>("factors", () => RecurrentCell.MultiplicativeRnn(I, H, 0));
        Names<ArgumentException>("outputSize", () => NetworkOptions.Default.WithOutputSize(0));
        Names<ArgumentException>("options", () => new RecurrentNetwork(RecurrentCell.Elman(I, H), new NetworkOptions { OutputSize = -2 }));
    }

    [Fact]
    public void Null_cell_and_custom_pieces()
    {
        Names<ArgumentNullException>("cell", () => new RecurrentNetwork(null!));
        var layout = new CellLayout(new ParameterShape("w", H, H));
        Names<ArgumentNullException>("transition", () => RecurrentCell.Custom("c", I, H, H, layout, null!));
        Names<ArgumentNullException>("layout", () => RecurrentCell.Custom("c", I, H, H, null!, (p, x, s) => s));
        Names<ArgumentException>("shape", () => new ParameterShape("w", H, 0));
        Names<ArgumentException>("blocks", () => new CellLayout(new ParameterShape("w", H), new ParameterShape("w", I)), "'w' repeats");
    }
}
