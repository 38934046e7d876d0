namespace SeqNets.CSharp;

/// <summary>
/// How a <see cref="RecurrentNetwork"/> is set up: the seed of its initial parameters, their
/// precision, an optional output layer y_t = V h_t + c and the loss it is scored with. Immutable;
/// change it with <c>WithSeed</c>, <c>WithPrecision</c>, … or a <c>with</c> expression.
/// </summary>
public sealed record NetworkOptions
{
    /// <summary>Options with the defaults: seed 0, float32, no output layer, mean squared error.</summary>
    public NetworkOptions()
    {
    }

    /// <summary>The defaults: seed 0, float32, no output layer, mean squared error.</summary>
    public static NetworkOptions Default { get; } = new();

    /// <summary>The seed of the generator that draws θ and w_o from U(−1/√H, 1/√H), as PyTorch does.</summary>
    public ulong Seed { get; init; }

    /// <summary>The floating-point type of the parameters; inputs must have the same type.</summary>
    public Precision Precision { get; init; } = Precision.Float32;

    /// <summary>O, the width of the output layer y_t = V h_t + c, or null for a network without one (no loss then).</summary>
    public int? OutputSize { get; init; }

    /// <summary>The per-step loss ℓ(y_t, o_t) of <see cref="RecurrentNetwork.LossGradient"/>.</summary>
    public LossKind Loss { get; init; } = LossKind.MeanSquared;

    /// <summary>These options with another seed.</summary>
    /// <param name="seed">The seed of the parameter initialisation.</param>
    /// <returns>A copy with <see cref="Seed"/> replaced.</returns>
    public NetworkOptions WithSeed(ulong seed) => this with { Seed = seed };

    /// <summary>These options with another precision.</summary>
    /// <param name="precision">The floating-point type of the parameters.</param>
    /// <returns>A copy with <see cref="Precision"/> replaced.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="precision"/> is not a defined value.</exception>
    public NetworkOptions WithPrecision(Precision precision)
    {
        Guard.Defined(precision, nameof(precision));
        return this with { Precision = precision };
    }

    /// <summary>These options with an output layer of the given width.</summary>
    /// <param name="outputSize">O, the width of y_t.</param>
    /// <returns>A copy with <see cref="OutputSize"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="outputSize"/> is not positive.</exception>
    public NetworkOptions WithOutputSize(int outputSize)
    {
        Guard.Positive(outputSize, nameof(outputSize));
        return this with { OutputSize = outputSize };
    }

    /// <summary>These options with another per-step loss.</summary>
    /// <param name="loss">The loss ℓ(y_t, o_t).</param>
    /// <returns>A copy with <see cref="Loss"/> replaced.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="loss"/> is not a defined value.</exception>
    public NetworkOptions WithLoss(LossKind loss)
    {
        Guard.Defined(loss, nameof(loss));
        return this with { Loss = loss };
    }
}
