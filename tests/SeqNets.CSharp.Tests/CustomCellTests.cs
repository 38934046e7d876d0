using SeqNets.CSharp;
using TorchSharp;
using Xunit;
using static SeqNets.CSharp.Tests.Common;

namespace SeqNets.CSharp.Tests;

/// <summary>
/// An Elman cell written from C# lambdas, h_t = tanh(W x_t + b_ih + U h_(t−1) + b_hh), in the same
/// layout as the built-in one, so that both get the same θ from the same seed.
/// </summary>
public class CustomCellTests
{
    private static readonly CellLayout Layout = new(
        new ParameterShape("weight_ih", H, I),
        new ParameterShape("weight_hh", H, H),
        new ParameterShape("bias_ih", H),
        new ParameterShape("bias_hh", H));

    private static torch.Tensor PreActivation(torch.Tensor theta, torch.Tensor x, torch.Tensor h) =>
        x.matmul(Layout.View(theta, "weight_ih").t()) + Layout.View(theta, "bias_ih")
        + h.matmul(Layout.View(theta, "weight_hh").t()) + Layout.View(theta, "bias_hh"); // [B; H]

    private static torch.Tensor Transition(torch.Tensor theta, torch.Tensor x, torch.Tensor h) =>
        PreActivation(theta, x, h).tanh();

    /// <summary>c_t = diag(d) U, ∂h/∂W = diag(d) ⊗ x, ∂h/∂U = diag(d) ⊗ h, ∂h/∂b = diag(d), with d = 1 − h_t².</summary>
    private static CellJacobians Jacobians(torch.Tensor theta, torch.Tensor x, torch.Tensor h)
    {
        var hNext = Transition(theta, x, h);
        var D = torch.diag_embed(1.0 - hNext * hNext); // [B; H; H]
        torch.Tensor Outer(torch.Tensor v) => // D ⊗ v: [B; H; H·K]
            (D.unsqueeze(-1) * v.unsqueeze(1).unsqueeze(1)).reshape(v.shape[0], H, -1);
        return new CellJacobians(
            D.matmul(Layout.View(theta, "weight_hh")),
            torch.cat(new[] { Outer(x), Outer(h), D, D }, 2));
    }

    [Fact]
    public void A_custom_cell_unrolls_like_the_built_in_one()
    {
        var custom = RecurrentCell.Custom("my-elman", I, H, H, Layout, Transition);
        Assert.False(custom.HasJacobians);
        Assert.Equal(RecurrentCell.Elman(I, H).ParameterCount, custom.ParameterCount);
        using var mine = new RecurrentNetwork(custom, Float64);
        using var builtIn = new RecurrentNetwork(RecurrentCell.Elman(I, H), Float64);
        Assert.Equal(0.0, RelativeError(mine.Parameters, builtIn.Parameters));
        using var xs = Randn(31, T, B, I);
        using var a = mine.Unroll(xs);
        using var b = builtIn.Unroll(xs);
        Assert.InRange(RelativeError(a.States, b.States), 0.0, Tolerance);
    }

    [Fact]
    public void Autodiff_through_a_custom_cell_equals_the_built_in_closed_form()
    {
        var custom = RecurrentCell.Custom("my-elman", I, H, H, Layout, Transition);
        using var mine = new RecurrentNetwork(custom, Float64);
        using var builtIn = new RecurrentNetwork(RecurrentCell.Elman(I, H), Float64);
        using var xs = Randn(32, T, B, I);
        using var autodiff = mine.StateParameterJacobian(xs, route: BpttRoute.Autodiff);
        using var closedForm = builtIn.StateParameterJacobian(xs, route: BpttRoute.ClosedForm);
        Assert.InRange(RelativeError(autodiff, closedForm), 0.0, Tolerance);
        // Without hand-derived Jacobians the hand-derived routes are refused, naming the route.
        var e = Assert.Throws<ArgumentException>(() => mine.StateParameterJacobian(xs, route: BpttRoute.ClosedForm));
        Assert.Equal("route", e.ParamName);
    }

    [Fact]
    public void A_custom_cell_without_Jacobians_is_verified_with_autodiffs_local_Jacobians()
    {
        using var net = new RecurrentNetwork(RecurrentCell.Custom("my-elman", I, H, H, Layout, Transition), Float64);
        using var xs = Randn(37, T, B, I);
        var report = net.VerifyIdentity(xs);
        Assert.False(report.HandDerived);
        Assert.Equal(0.0, report.StateJacobianError);
        Assert.Equal(0.0, report.ParameterJacobianError);
        Assert.InRange(report.RecurrenceVsClosedForm, 0.0, Tolerance);
        Assert.InRange(report.ClosedFormVsAutodiff, 0.0, Tolerance);
        using var handDerived = new RecurrentNetwork(RecurrentCell.Custom("my-elman", I, H, H, Layout, Transition, Jacobians), Float64);
        Assert.True(handDerived.VerifyIdentity(xs).HandDerived);
    }

    /// <summary>The Elman transition with broadcasting products: θ [P] gives W [H; K], θ [B; P] gives W [B; H; K].</summary>
    private static torch.Tensor RowTransition(torch.Tensor theta, torch.Tensor x, torch.Tensor h)
    {
        torch.Tensor Times(string block, torch.Tensor v) => Layout.View(theta, block).matmul(v.unsqueeze(-1)).squeeze(-1);
        return (Times("weight_ih", x) + Layout.View(theta, "bias_ih") + Times("weight_hh", h) + Layout.View(theta, "bias_hh")).tanh();
    }

    [Fact]
    public void Row_parameters_give_autodiffs_Jacobians_in_one_pass_with_the_same_values()
    {
        var rows = RecurrentCell.Custom("my-elman", I, H, H, Layout, RowTransition, rowParameters: true);
        Assert.True(rows.HasRowParameters);
        Assert.False(RecurrentCell.Custom("my-elman", I, H, H, Layout, RowTransition).HasRowParameters);
        using var mine = new RecurrentNetwork(rows, Float64);
        using var builtIn = new RecurrentNetwork(RecurrentCell.Elman(I, H), Float64);
        using var xs = Randn(38, T, B, I);
        using var s0 = Randn(39, B, H);
        using var a = mine.JacobiansByAutodiff(xs, s0);
        using var b = builtIn.Jacobians(xs, s0);
        Assert.InRange(RelativeError(a.State, b.State), 0.0, Tolerance);
        Assert.InRange(RelativeError(a.Parameters, b.Parameters), 0.0, Tolerance);
        using var viaRows = mine.StateParameterJacobian(xs, s0, BpttRoute.Autodiff);
        using var closedForm = builtIn.StateParameterJacobian(xs, s0, BpttRoute.ClosedForm);
        Assert.InRange(RelativeError(viaRows, closedForm), 0.0, Tolerance);
    }

    [Fact]
    public void Hand_derived_Jacobians_written_in_CSharp_pass_verification_against_autodiff()
    {
        var custom = RecurrentCell.Custom("my-elman", I, H, H, Layout, Transition, Jacobians);
        Assert.True(custom.HasJacobians);
        using var net = new RecurrentNetwork(custom, Float64);
        using var xs = Randn(33, T, B, I);
        using var s0 = Randn(34, B, H);
        var report = net.VerifyIdentity(xs, s0);
        Assert.InRange(report.WorstError, 0.0, Tolerance);
    }

    [Fact]
    public void Wrong_Jacobians_are_caught_by_verification()
    {
        // c_t without the factor d: a plausible slip that the identity check must expose.
        CellJacobians Slipped(torch.Tensor theta, torch.Tensor x, torch.Tensor h)
        {
            var j = Jacobians(theta, x, h);
            return new CellJacobians(Layout.View(theta, "weight_hh").expand(x.shape[0], H, H), j.Parameters);
        }
        using var net = new RecurrentNetwork(RecurrentCell.Custom("slipped", I, H, H, Layout, Transition, Slipped), Float64);
        using var xs = Randn(35, T, B, I);
        var report = net.VerifyIdentity(xs);
        Assert.True(report.StateJacobianError > 1e-3);
        Assert.True(report.ClosedFormVsAutodiff > 1e-3);
    }

    [Fact]
    public void A_transition_of_the_wrong_shape_is_reported()
    {
        var broken = RecurrentCell.Custom("broken", I, H, H, Layout, (theta, x, h) => h.sum(1));
        using var net = new RecurrentNetwork(broken, Float64);
        using var xs = Randn(36, T, B, I);
        var e = Assert.Throws<ArgumentException>(() => net.Unroll(xs));
        Assert.Equal("transition", e.ParamName);
        Assert.Contains("cell 'broken'", e.Message);
        Assert.Contains("returned shape [2], but expected [B; S] = [2; 4]", e.Message);
    }

    [Fact]
    public void Jacobians_of_the_wrong_shape_or_none_at_all_are_reported()
    {
        using var xs = Randn(40, T, B, I);
        using (var wrong = new RecurrentNetwork(RecurrentCell.Custom("wrong", I, H, H, Layout, Transition,
                   (theta, x, h) => new CellJacobians(torch.zeros(x.shape[0], H, H, dtype: torch.float64), torch.zeros(x.shape[0], H, 3, dtype: torch.float64))), Float64))
        {
            var e = Assert.Throws<ArgumentException>(() => wrong.Jacobians(xs));
            Assert.Equal("jacobians", e.ParamName);
            Assert.Contains("cell 'wrong'", e.Message);
            Assert.Contains("[B; S; P]", e.Message);
        }
        using (var none = new RecurrentNetwork(RecurrentCell.Custom("none", I, H, H, Layout, Transition, (theta, x, h) => null!), Float64))
        {
            var e = Assert.Throws<ArgumentException>(() => none.Jacobians(xs));
            Assert.Equal("jacobians", e.ParamName);
            Assert.Contains("returned null", e.Message);
        }
    }
}
