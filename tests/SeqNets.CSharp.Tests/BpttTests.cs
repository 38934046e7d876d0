using SeqNets.CSharp;
using Xunit;
using static SeqNets.CSharp.Tests.Common;

namespace SeqNets.CSharp.Tests;

public class BpttTests
{
    public static TheoryData<string> Kinds => new() { "elman-tanh", "elman-relu", "gru-pytorch", "gru-lecture", "lstm", "mrnn" };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void The_closed_form_agrees_with_autodiff(string kind)
    {
        var cell = CellOf(kind);
        using var net = new RecurrentNetwork(cell, Float64);
        using var xs = Randn(11, T, B, I);
        using var s0 = Randn(12, B, cell.StateSize);
        using var closedForm = net.StateParameterJacobian(xs, s0, BpttRoute.ClosedForm);
        using var recurrence = net.StateParameterJacobian(xs, s0, BpttRoute.Recurrence);
        using var autodiff = net.StateParameterJacobian(xs, s0, BpttRoute.Autodiff);
        Assert.Equal(new long[] { T, B, cell.StateSize, cell.ParameterCount }, Shape(closedForm));
        Assert.InRange(RelativeError(closedForm, autodiff), 0.0, Tolerance);
        Assert.InRange(RelativeError(recurrence, closedForm), 0.0, Tolerance);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void The_hand_derived_Jacobians_agree_with_autodiff(string kind)
    {
        var cell = CellOf(kind);
        using var net = new RecurrentNetwork(cell, Float64);
        using var xs = Randn(13, T, B, I);
        using var hand = net.Jacobians(xs);
        using var auto = net.JacobiansByAutodiff(xs);
        Assert.Equal(new long[] { T, B, cell.StateSize, cell.StateSize }, Shape(hand.State));
        Assert.Equal(new long[] { T, B, cell.StateSize, cell.ParameterCount }, Shape(hand.Parameters));
        Assert.InRange(RelativeError(hand.State, auto.State), 0.0, Tolerance);
        Assert.InRange(RelativeError(hand.Parameters, auto.Parameters), 0.0, Tolerance);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void VerifyIdentity_reports_agreement_and_timings(string kind)
    {
        using var net = new RecurrentNetwork(CellOf(kind), Float64);
        using var xs = Randn(14, T, B, I);
        var report = net.VerifyIdentity(xs);
        Assert.InRange(report.WorstError, 0.0, Tolerance);
        Assert.True(report.Magnitude > 0.0);
        Assert.True(report.AutodiffTime > TimeSpan.Zero);
        Assert.Contains("closed form/autodiff", report.ToString());
    }

    [Fact]
    public void Truncation_keeps_the_last_tau_terms_and_is_exact_once_tau_reaches_T()
    {
        using var net = new RecurrentNetwork(RecurrentCell.Gru(I, H), Float64);
        using var xs = Randn(15, T, B, I);
        using var full = net.StateParameterJacobian(xs);
        using var untruncated = net.TruncatedStateParameterJacobian(T, xs);
        using var one = net.TruncatedStateParameterJacobian(1, xs);
        using var hand = net.Jacobians(xs);
        Assert.InRange(RelativeError(untruncated, full), 0.0, Tolerance);
        // τ = 1 keeps only b_t.
        Assert.InRange(RelativeError(one, hand.Parameters), 0.0, Tolerance);
        Assert.True(RelativeError(one, full) > 1e-3);
    }
}
