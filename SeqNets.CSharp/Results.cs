namespace SeqNets.CSharp;

/// <summary>
/// Every state and output of one unroll. It owns its tensors: dispose it (or the tensors) to free
/// their native memory promptly.
/// </summary>
public sealed class UnrollResult : IDisposable
{
    internal UnrollResult(Tensor states, Tensor outputs)
    {
        States = states;
        Outputs = outputs;
    }

    /// <summary>Every state, s_0 first: [T+1; B; S].</summary>
    public Tensor States { get; }

    /// <summary>The outputs h_1 … h_T, the first H entries of s_1 … s_T: [T; B; H].</summary>
    public Tensor Outputs { get; }

    /// <summary>The final state s_T: [B; S]. Each call returns a new view of <see cref="States"/>, which the caller may dispose.</summary>
    public Tensor FinalState => States[-1];

    /// <summary>Frees the native memory of both tensors.</summary>
    public void Dispose()
    {
        Outputs.Dispose();
        States.Dispose();
    }
}

/// <summary>The output and the new state of one step. It owns its tensors; dispose it when done.</summary>
public sealed class StepResult : IDisposable
{
    internal StepResult(Tensor output, Tensor state)
    {
        Output = output;
        State = state;
    }

    /// <summary>h_t: [B; H], the first H entries of the new state.</summary>
    public Tensor Output { get; }

    /// <summary>The new state s_t: [B; S].</summary>
    public Tensor State { get; }

    /// <summary>Frees the native memory of both tensors.</summary>
    public void Dispose()
    {
        Output.Dispose();
        State.Dispose();
    }
}

/// <summary>
/// The local Jacobians along a trajectory, the two sequences of the identity
/// ∂s_t/∂θ = b_t + Σ_(i&lt;t) (Π_(j=i+1..t) c_j) b_i. It owns its tensors; dispose it when done.
/// </summary>
public sealed class BpttJacobians : IDisposable
{
    internal BpttJacobians(Tensor state, Tensor parameters)
    {
        State = state;
        Parameters = parameters;
    }

    /// <summary>c_t = ∂s_t/∂s_(t−1) for t = 1..T: [T; B; S; S].</summary>
    public Tensor State { get; }

    /// <summary>b_t = ∂s_t/∂θ (s_(t−1) held fixed) for t = 1..T: [T; B; S; P].</summary>
    public Tensor Parameters { get; }

    /// <summary>Frees the native memory of both tensors.</summary>
    public void Dispose()
    {
        State.Dispose();
        Parameters.Dispose();
    }
}

/// <summary>
/// The gradient of the sequence loss L = 1/T Σ_t ℓ(V h_t + c, o_t) with respect to every parameter.
/// It owns its tensors; dispose it when done.
/// </summary>
public sealed class LossGradients : IDisposable
{
    internal LossGradients(Tensor cell, Tensor output, Tensor initialState)
    {
        CellParameters = cell;
        OutputParameters = output;
        InitialState = initialState;
    }

    /// <summary>∂L/∂θ, the gradient with respect to the cell's parameters: [P].</summary>
    public Tensor CellParameters { get; }

    /// <summary>∂L/∂w_o, the gradient with respect to the output layer's parameters [V; c] flattened: [O·H + O].</summary>
    public Tensor OutputParameters { get; }

    /// <summary>∂L/∂s_0, the gradient with respect to the initial state: [B; S].</summary>
    public Tensor InitialState { get; }

    /// <summary>Frees the native memory of the three tensors.</summary>
    public void Dispose()
    {
        CellParameters.Dispose();
        OutputParameters.Dispose();
        InitialState.Dispose();
    }
}

/// <summary>
/// How closely the routes to ∂s_t/∂θ agree on one trajectory, as largest relative disagreements
/// max |x − y| / max |y|, and how long each route took.
/// </summary>
public sealed class IdentityReport
{
    internal IdentityReport(IdentityResult r)
    {
        StateJacobianError = r.StateJacobianError;
        ParameterJacobianError = r.ParameterJacobianError;
        RecurrenceVsClosedForm = r.RecurrenceVsClosedForm;
        ClosedFormVsAutodiff = r.ClosedFormVsAutodiff;
        Magnitude = r.Magnitude;
        HandDerived = r.HandDerived;
        ClosedFormTime = r.ClosedFormTime;
        RecurrenceTime = r.RecurrenceTime;
        AutodiffTime = r.AutodiffTime;
    }

    /// <summary>The hand-derived c_t against autodiff's.</summary>
    public double StateJacobianError { get; }

    /// <summary>The hand-derived b_t against autodiff's.</summary>
    public double ParameterJacobianError { get; }

    /// <summary>The recurrence a_t = b_t + c_t a_(t−1) against the closed-form sum.</summary>
    public double RecurrenceVsClosedForm { get; }

    /// <summary>The closed-form sum against reverse-mode autodiff through the unrolled graph.</summary>
    public double ClosedFormVsAutodiff { get; }

    /// <summary>The largest of the four disagreements.</summary>
    public double WorstError =>
        Math.Max(Math.Max(StateJacobianError, ParameterJacobianError), Math.Max(RecurrenceVsClosedForm, ClosedFormVsAutodiff));

    /// <summary>The largest |∂s_t/∂θ| of the trajectory, which shows whether gradients vanished or exploded.</summary>
    public double Magnitude { get; }

    /// <summary>
    /// Whether the closed form and the recurrence used the cell's hand-derived c_t and b_t; false for a
    /// cell without them, whose routes then use autodiff's local Jacobians and whose two Jacobian errors are 0.
    /// </summary>
    public bool HandDerived { get; }

    /// <summary>The time for the hand-derived c_t, b_t and the closed-form sum.</summary>
    public TimeSpan ClosedFormTime { get; }

    /// <summary>The time for the hand-derived c_t, b_t and the recurrence.</summary>
    public TimeSpan RecurrenceTime { get; }

    /// <summary>The time for reverse-mode autodiff of ∂s_t/∂θ.</summary>
    public TimeSpan AutodiffTime { get; }

    /// <summary>Shows the four disagreements and the three timings on one line.</summary>
    /// <returns>A one-line summary.</returns>
    public override string ToString() =>
        $"c_t {StateJacobianError:g3}, b_t {ParameterJacobianError:g3}, recurrence/closed form {RecurrenceVsClosedForm:g3}, "
        + $"closed form/autodiff {ClosedFormVsAutodiff:g3}; |∂s/∂θ| ≤ {Magnitude:g3}; "
        + $"closed form {ClosedFormTime.TotalMilliseconds:F1} ms, recurrence {RecurrenceTime.TotalMilliseconds:F1} ms, "
        + $"autodiff {AutodiffTime.TotalMilliseconds:F1} ms";
}
