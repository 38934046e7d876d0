namespace SeqNets.CSharp;

/// <summary>The nonlinearity φ of an Elman cell, h_t = φ(W x_t + b_ih + U h_(t−1) + b_hh).</summary>
public enum Activation
{
    /// <summary>The hyperbolic tangent, PyTorch's default for <c>nn.RNN</c>.</summary>
    Tanh,

    /// <summary>The rectifier max(0, a).</summary>
    Relu,
}

/// <summary>Where the reset gate of a GRU acts on the candidate state.</summary>
public enum GruForm
{
    /// <summary>PyTorch's and cuDNN's form: n = tanh(W_n x + b_in + r ⊙ (U_n h_(t−1) + b_hn)).</summary>
    PyTorch,

    /// <summary>The lecture's (Cho et al. 2014) form: n = tanh(W_n x + b_in + U_n (r ⊙ h_(t−1)) + b_hn).</summary>
    Lecture,
}

/// <summary>The floating-point type of a network's parameters and of the tensors it accepts.</summary>
public enum Precision
{
    /// <summary>32-bit floats: fast, the usual choice for training.</summary>
    Float32,

    /// <summary>64-bit floats: the choice for checking derivatives to tight tolerances.</summary>
    Float64,
}

/// <summary>The per-step loss ℓ(y_t, o_t) of the sequence loss L = 1/T Σ_t ℓ(y_t, o_t).</summary>
public enum LossKind
{
    /// <summary>Mean squared error over the batch and the outputs; targets are float tensors [T; B; O].</summary>
    MeanSquared,

    /// <summary>Softmax cross-entropy; targets are int64 class indices [T; B].</summary>
    CrossEntropy,
}

/// <summary>The route by which ∂s_t/∂θ (and from it ∂L/∂θ) is computed.</summary>
public enum BpttRoute
{
    /// <summary>The recurrence a_t = b_t + c_t a_(t−1) over the hand-derived Jacobians.</summary>
    Recurrence,

    /// <summary>The closed form a_t = b_t + Σ_(i&lt;t) (Π_(j=i+1..t) c_j) b_i over the hand-derived Jacobians.</summary>
    ClosedForm,

    /// <summary>Reverse-mode automatic differentiation through the whole unrolled graph (the reference).</summary>
    Autodiff,
}
