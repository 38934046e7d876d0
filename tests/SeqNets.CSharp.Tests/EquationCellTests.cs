using SeqNets.CSharp;
using TorchSharp;
using Xunit;
using static SeqNets.CSharp.Tests.Common;

namespace SeqNets.CSharp.Tests;

/// <summary>
/// Cells written as equations from C# (an MGU, an IndRNN and a peephole LSTM): their c_t and b_t are
/// derived by rules, so they pass the identity against autodiff and central finite differences with
/// no hand-written Jacobian; bad equations are refused with messages that say where.
/// </summary>
public class EquationCellTests
{
    private static CellExpression X => CellExpression.Input;

    /// <summary>The minimal gated unit: f = σ(W_f x + U_f h + b_f), h̃ = tanh(W_h x + U_h (f ⊙ h) + b_h), h' = (1 − f) ⊙ h + f ⊙ h̃.</summary>
    public static CellEquations Mgu()
    {
        var layout = new CellLayout(new[]
        {
            new ParameterShape("W_f", H, I), new ParameterShape("U_f", H, H), new ParameterShape("b_f", H),
            new ParameterShape("W_h", H, I), new ParameterShape("U_h", H, H), new ParameterShape("b_h", H),
        });
        var h = CellExpression.Previous("h");
        var f = CellExpression.Sigmoid(CellMatrix.Block("W_f") * X + CellMatrix.Block("U_f") * h + CellExpression.Parameter("b_f")).Named("f");
        var hTilde = CellExpression.Tanh(CellMatrix.Block("W_h") * X + CellMatrix.Block("U_h") * (f * h) + CellExpression.Parameter("b_h")).Named("h~");
        return new CellEquations("mgu", I, layout).WithState("h", H).WithUpdate("h", (1.0 - f) * h + f * hTilde);
    }

    /// <summary>IndRNN: h' = ReLU(W x + u ⊙ h + b).</summary>
    public static CellEquations IndRnn()
    {
        var layout = new CellLayout(new[] { new ParameterShape("W", H, I), new ParameterShape("u", H), new ParameterShape("b", H) });
        var hNext = CellExpression.Relu(CellMatrix.Block("W") * X + CellExpression.Parameter("u") * CellExpression.Previous("h") + CellExpression.Parameter("b"));
        return new CellEquations("indrnn", I, layout).WithState("h", H).WithUpdate("h", hNext);
    }

    /// <summary>The peephole LSTM: the gates also see the memory (i and f the previous one, o the new one).</summary>
    public static CellEquations PeepholeLstm()
    {
        var layout = new CellLayout(new[]
        {
            new ParameterShape("W", 4 * H, I), new ParameterShape("U", 4 * H, H), new ParameterShape("b", 4 * H),
            new ParameterShape("p_i", H), new ParameterShape("p_f", H), new ParameterShape("p_o", H),
        });
        var h = CellExpression.Previous("h");
        var c = CellExpression.Previous("c");
        CellExpression Gate(int k, string name) =>
            CellMatrix.Rows("W", k * H, H, "W_" + name) * X + CellMatrix.Rows("U", k * H, H, "U_" + name) * h
            + CellExpression.Parameter("b", k * H, H, "b_" + name);
        var i = CellExpression.Sigmoid(Gate(0, "i") + CellExpression.Parameter("p_i") * c).Named("i");
        var f = CellExpression.Sigmoid(Gate(1, "f") + CellExpression.Parameter("p_f") * c).Named("f");
        var cNext = f * c + i * CellExpression.Tanh(Gate(2, "c"));
        var o = CellExpression.Sigmoid(Gate(3, "o") + CellExpression.Parameter("p_o") * cNext).Named("o");
        return new CellEquations("peephole-lstm", I, layout)
            .WithState("h", H).WithState("c", H)
            .WithUpdate("c", cNext).WithUpdate("h", o * CellExpression.Tanh(cNext));
    }

    public static TheoryData<string> Cells => new() { "mgu", "indrnn", "peephole-lstm" };

    private static CellEquations EquationsOf(string name) => name switch
    {
        "mgu" => Mgu(),
        "indrnn" => IndRnn(),
        "peephole-lstm" => PeepholeLstm(),
        _ => throw new ArgumentException($"unknown cell {name}", nameof(name)),
    };

    [Theory]
    [MemberData(nameof(Cells))]
    public void The_derived_Jacobians_pass_the_identity_against_autodiff(string name)
    {
        var cell = RecurrentCell.FromEquations(EquationsOf(name));
        Assert.True(cell.HasJacobians);
        using var net = new RecurrentNetwork(cell, Float64);
        using var xs = Randn(41, T, B, I);
        using var s0 = Randn(42, B, cell.StateSize);
        var report = net.VerifyIdentity(xs, s0);
        Assert.InRange(report.WorstError, 0.0, Tolerance);
        using var closedForm = net.StateParameterJacobian(xs, s0, BpttRoute.ClosedForm);
        using var recurrence = net.StateParameterJacobian(xs, s0, BpttRoute.Recurrence);
        using var autodiff = net.StateParameterJacobian(xs, s0, BpttRoute.Autodiff);
        Assert.InRange(RelativeError(closedForm, autodiff), 0.0, Tolerance);
        Assert.InRange(RelativeError(recurrence, closedForm), 0.0, Tolerance);
    }

    [Theory]
    [MemberData(nameof(Cells))]
    public void The_closed_form_equals_central_finite_differences(string name)
    {
        var cell = RecurrentCell.FromEquations(EquationsOf(name));
        using var net = new RecurrentNetwork(cell, Float64);
        using var xs = Randn(43, T, B, I);
        using var s0 = Randn(44, B, cell.StateSize);
        using var closedForm = net.StateParameterJacobian(xs, s0, BpttRoute.ClosedForm); // [T; B; S; P]
        using var v0 = Randn(45, cell.ParameterCount);
        using var v = v0 / v0.norm();
        torch.Tensor Final(double eps)
        {
            using (torch.no_grad()) net.Parameters.add_(v * eps);
            using var run = net.Unroll(xs, s0);
            var last = run.States[T].clone();
            using (torch.no_grad()) net.Parameters.sub_(v * eps);
            return last;
        }
        torch.Tensor Difference(double eps)
        {
            using var plus = Final(eps);
            using var minus = Final(-eps);
            return (plus - minus) / (2 * eps); // [B; S]
        }
        using var d1 = Difference(1e-6);
        using var d2 = Difference(5e-7);
        using var fd = (d2 * 4.0 - d1) / 3.0;
        using var analytic = closedForm[T - 1].matmul(v); // a_T v: [B; S]
        using var scale = closedForm[T - 1].abs().max();
        using var spread = (d1 - d2).abs().max();
        var tolerance = 1e-6 * Math.Max(scale.item<double>(), 1e-3) + 8 * spread.item<double>();
        using var err = (fd - analytic).abs().max();
        Assert.InRange(err.item<double>(), 0.0, tolerance);
    }

    [Fact]
    public void The_derivation_is_written_in_the_lectures_notation()
    {
        var d = Mgu().Derive();
        Assert.Empty(d.Warnings);
        var text = d.ToText();
        Assert.Contains("f_t = σ(W_f x_t + U_f h_(t−1) + b_f)", text);
        Assert.Contains("∂h_t/∂h_(t−1) =", text);
        Assert.Contains("∂h_3/∂θ = b_3 + c_3 b_2 + c_3 c_2 b_1", text);
        Assert.Contains("\\odot", d.ToLatex());
        Assert.StartsWith("## MGU\n", d.ToMarkdown("MGU"));
    }

    [Fact]
    public void Bad_equations_are_refused_saying_where()
    {
        var layout = new CellLayout(new[] { new ParameterShape("W", H, I) });
        var undeclared = new CellEquations("bad", I, layout).WithState("h", H)
            .WithUpdate("h", CellExpression.Tanh(CellMatrix.Block("W") * X + CellMatrix.Block("V") * CellExpression.Previous("h")));
        var e = Assert.Throws<ArgumentException>(() => RecurrentCell.FromEquations(undeclared));
        Assert.Contains("undeclared parameter block 'V'", e.Message);
        var mismatched = new CellEquations("bad", I, layout).WithState("h", H)
            .WithUpdate("h", CellExpression.Tanh(CellMatrix.Block("W") * CellExpression.Previous("h")));
        e = Assert.Throws<ArgumentException>(() => mismatched.Derive());
        Assert.Contains($"W is [{H}; {I}] but 'h_(t−1)' is [{H}]", e.Message);
        var unknown = new CellEquations("bad", I, layout).WithState("h", H)
            .WithUpdate("h", CellExpression.Function("softplus", t => torch.nn.functional.softplus(t), null, CellMatrix.Block("W") * X));
        e = Assert.Throws<ArgumentException>(() => RecurrentCell.FromEquations(unknown));
        Assert.Contains("not differentiable by the rules", e.Message);
        Assert.Throws<ArgumentNullException>(() => CellExpression.Previous(null!));
    }

    [Fact]
    public void A_state_that_never_feeds_back_is_a_warning()
    {
        var layout = new CellLayout(new[] { new ParameterShape("W", H, I) });
        var feedforward = new CellEquations("feedforward", I, layout).WithState("h", H).WithUpdate("h", CellExpression.Tanh(CellMatrix.Block("W") * X));
        Assert.Contains(feedforward.Derive().Warnings, w => w.Contains("never feeds back"));
        using var net = new RecurrentNetwork(RecurrentCell.FromEquations(feedforward), Float64);
        using var xs = Randn(46, T, B, I);
        Assert.InRange(net.VerifyIdentity(xs).WorstError, 0.0, Tolerance);
    }
}
