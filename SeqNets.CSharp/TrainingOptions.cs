namespace SeqNets.CSharp;

/// <summary>How far the gradient of each training step flows back in time.</summary>
public enum BpttStrategy
{
    /// <summary>Every batch is a fresh sequence from s_0 = 0, differentiated through all T steps.</summary>
    Full,

    /// <summary>The state carries from batch to batch and the gradient is cut every <see cref="TrainingOptions.Tau"/> steps and at each batch start.</summary>
    Truncated,

    /// <summary>
    /// The state carries; the gradient is cut at random points, on average every
    /// <see cref="TrainingOptions.MeanLength"/> steps, and rescaled so its expectation is the full gradient.
    /// </summary>
    Randomized,
}

/// <summary>The rule that turns a gradient into a parameter update.</summary>
public enum OptimizerKind
{
    /// <summary>Stochastic gradient descent with heavy-ball <see cref="TrainingOptions.Momentum"/>.</summary>
    Sgd,

    /// <summary>Adagrad, as in Karpathy's min-char-rnn.</summary>
    Adagrad,

    /// <summary>RMSprop with decay <see cref="TrainingOptions.Alpha"/>, as in char-rnn.</summary>
    RmsProp,

    /// <summary>Adam with β = (0.9, 0.999).</summary>
    Adam,
}

/// <summary>How the learning rate changes with the step.</summary>
public enum LearningRateSchedule
{
    /// <summary>The learning rate stays the same at every step.</summary>
    Constant,

    /// <summary>The learning rate is multiplied by <see cref="TrainingOptions.DecayFactor"/> every <see cref="TrainingOptions.DecayEvery"/> steps.</summary>
    StepDecay,

    /// <summary>The learning rate follows half a cosine down to <see cref="TrainingOptions.CosineFloor"/> of itself over <see cref="TrainingOptions.CosineSteps"/> steps.</summary>
    Cosine,
}

/// <summary>How a gradient is limited before the update.</summary>
public enum ClippingKind
{
    /// <summary>The gradient is used as it is.</summary>
    None,

    /// <summary>The gradient is scaled so its global norm is at most <see cref="TrainingOptions.ClipThreshold"/>, keeping its direction.</summary>
    ByNorm,

    /// <summary>Every gradient entry is clamped to [−<see cref="TrainingOptions.ClipThreshold"/>, <see cref="TrainingOptions.ClipThreshold"/>].</summary>
    ByValue,
}

/// <summary>How a character model runs its recurrence during training.</summary>
public enum ExecutionPath
{
    /// <summary>The fastest correct path, as the core chooses it (Training.choosePath): derived for GRU layers, for built-in cells libtorch has no kernel for and for randomized BPTT; fused for the other stacks libtorch covers; else step by step.</summary>
    Auto,

    /// <summary>libtorch's fused nn.RNN, nn.GRU or nn.LSTM kernels over views of the model's parameters.</summary>
    Fused,

    /// <summary>The cell's own equations, step by step; every cell and every BPTT strategy supports it.</summary>
    Step,

    /// <summary>The built-in cells' equations with their hand-derived backward pass (the engine on the derivation); every BPTT strategy, no user-defined cells.</summary>
    Derived,
}

/// <summary>
/// Everything that decides how a <see cref="CharLanguageModel"/> or a <see cref="SequenceNetwork"/> is trained: the BPTT strategy, the
/// optimizer and its learning-rate schedule, gradient clipping, the batch shape, the execution path
/// and the seed of training's random choices. Immutable; change it with <c>WithLearningRate</c>,
/// <c>WithTruncatedBptt</c>, … or a <c>with</c> expression. Invalid values are refused with an
/// <see cref="ArgumentException"/> whose parameter name is the property's.
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>Options with the defaults: truncated BPTT over 64 steps, Adam at 0.002, clipping by norm 5, B = 32, T = 64.</summary>
    public TrainingOptions()
    {
    }

    /// <summary>The defaults: truncated BPTT over 64 steps, Adam at 0.002, clipping by norm 5, B = 32, T = 64.</summary>
    public static TrainingOptions Default { get; } = new();

    /// <summary>How far gradients flow back in time.</summary>
    public BpttStrategy Bptt { get; init; } = BpttStrategy.Truncated;

    /// <summary>τ, the longest span of a truncated gradient, in steps; used by <see cref="BpttStrategy.Truncated"/>.</summary>
    public int Tau { get; init; } = 64;

    /// <summary>The mean span between random cuts, greater than 1; used by <see cref="BpttStrategy.Randomized"/>.</summary>
    public double MeanLength { get; init; } = 64;

    /// <summary>The rule that turns each gradient into a parameter update.</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;

    /// <summary>The heavy-ball momentum of <see cref="OptimizerKind.Sgd"/>, in [0, 1).</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>The decay α of <see cref="OptimizerKind.RmsProp"/>'s running mean of squared gradients, in (0, 1).</summary>
    public double Alpha { get; init; } = 0.95;

    /// <summary>The base learning rate, positive.</summary>
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>How the learning rate changes with the step.</summary>
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Constant;

    /// <summary>The period, in steps, of <see cref="LearningRateSchedule.StepDecay"/>.</summary>
    public int DecayEvery { get; init; } = 1000;

    /// <summary>The factor, in (0, 1], that <see cref="LearningRateSchedule.StepDecay"/> multiplies the rate by each period.</summary>
    public double DecayFactor { get; init; } = 0.5;

    /// <summary>
    /// The length, in steps, of the cosine of <see cref="LearningRateSchedule.Cosine"/>; 0 means the
    /// step count of the <see cref="CharLanguageModel.Train"/> call that starts the run.
    /// </summary>
    public int CosineSteps { get; init; }

    /// <summary>The fraction of the base rate, in [0, 1], that <see cref="LearningRateSchedule.Cosine"/> ends at.</summary>
    public double CosineFloor { get; init; }

    /// <summary>How the gradient is limited before each update.</summary>
    public ClippingKind Clipping { get; init; } = ClippingKind.ByNorm;

    /// <summary>The positive threshold of clipping: the largest norm or the largest absolute entry.</summary>
    public double ClipThreshold { get; init; } = 5.0;

    /// <summary>B, the number of parallel streams of text in each batch.</summary>
    public int Batch { get; init; } = 32;

    /// <summary>T, the number of characters each stream contributes to a batch.</summary>
    public int SequenceLength { get; init; } = 64;

    /// <summary>How the recurrence runs; randomized BPTT needs <see cref="ExecutionPath.Step"/>, <see cref="ExecutionPath.Derived"/> or <see cref="ExecutionPath.Auto"/>; user-defined cells need Step or Auto.</summary>
    public ExecutionPath ExecutionPath { get; init; } = ExecutionPath.Auto;

    /// <summary>The seed of training's random choices (the cut points of randomized BPTT).</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>How often, in steps, progress reports carry a validation loss; 0 means only at the last step.</summary>
    public int EvaluateEvery { get; init; }

    /// <summary>These options with full backpropagation through each batch from a zero state.</summary>
    /// <returns>A copy with <see cref="Bptt"/> set to <see cref="BpttStrategy.Full"/>.</returns>
    public TrainingOptions WithFullBptt() => this with { Bptt = BpttStrategy.Full };

    /// <summary>These options with truncated BPTT over spans of at most <paramref name="tau"/> steps.</summary>
    /// <param name="tau">τ, at least 1.</param>
    /// <returns>A copy with <see cref="Bptt"/> and <see cref="Tau"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="tau"/> is not positive.</exception>
    public TrainingOptions WithTruncatedBptt(int tau) => Checked(this with { Bptt = BpttStrategy.Truncated, Tau = tau });

    /// <summary>These options with randomized BPTT whose cuts fall on average every <paramref name="meanLength"/> steps.</summary>
    /// <param name="meanLength">The mean span, greater than 1.</param>
    /// <returns>A copy with <see cref="Bptt"/> and <see cref="MeanLength"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="meanLength"/> is not greater than 1.</exception>
    public TrainingOptions WithRandomizedBptt(double meanLength) =>
        Checked(this with { Bptt = BpttStrategy.Randomized, MeanLength = meanLength });

    /// <summary>These options with another BPTT strategy, keeping <see cref="Tau"/> and <see cref="MeanLength"/>.</summary>
    /// <param name="bptt">The strategy.</param>
    /// <returns>A copy with <see cref="Bptt"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="bptt"/> is not a defined value.</exception>
    public TrainingOptions WithBptt(BpttStrategy bptt) => Checked(this with { Bptt = bptt });

    /// <summary>These options with another update rule, keeping <see cref="Momentum"/> and <see cref="Alpha"/>.</summary>
    /// <param name="optimizer">The update rule.</param>
    /// <returns>A copy with <see cref="Optimizer"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="optimizer"/> is not a defined value.</exception>
    public TrainingOptions WithOptimizer(OptimizerKind optimizer) => Checked(this with { Optimizer = optimizer });

    /// <summary>These options with SGD and the given heavy-ball momentum.</summary>
    /// <param name="momentum">The momentum, in [0, 1).</param>
    /// <returns>A copy with <see cref="Optimizer"/> and <see cref="Momentum"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="momentum"/> is outside [0, 1).</exception>
    public TrainingOptions WithSgd(double momentum = 0.9) => Checked(this with { Optimizer = OptimizerKind.Sgd, Momentum = momentum });

    /// <summary>These options with RMSprop and the given decay.</summary>
    /// <param name="alpha">The decay α, in (0, 1).</param>
    /// <returns>A copy with <see cref="Optimizer"/> and <see cref="Alpha"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="alpha"/> is outside (0, 1).</exception>
    public TrainingOptions WithRmsProp(double alpha = 0.95) => Checked(this with { Optimizer = OptimizerKind.RmsProp, Alpha = alpha });

    /// <summary>These options with another base learning rate.</summary>
    /// <param name="learningRate">The rate, positive and finite.</param>
    /// <returns>A copy with <see cref="LearningRate"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="learningRate"/> is not positive and finite.</exception>
    public TrainingOptions WithLearningRate(double learningRate) => Checked(this with { LearningRate = learningRate });

    /// <summary>These options with another schedule, keeping its parameters.</summary>
    /// <param name="schedule">The schedule.</param>
    /// <returns>A copy with <see cref="Schedule"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="schedule"/> is not a defined value.</exception>
    public TrainingOptions WithSchedule(LearningRateSchedule schedule) => Checked(this with { Schedule = schedule });

    /// <summary>These options with a learning rate multiplied by <paramref name="factor"/> every <paramref name="every"/> steps.</summary>
    /// <param name="every">The period in steps, positive.</param>
    /// <param name="factor">The factor, in (0, 1].</param>
    /// <returns>A copy with <see cref="Schedule"/>, <see cref="DecayEvery"/> and <see cref="DecayFactor"/> replaced.</returns>
    /// <exception cref="ArgumentException">The period is not positive or the factor is outside (0, 1].</exception>
    public TrainingOptions WithStepDecay(int every, double factor) =>
        Checked(this with { Schedule = LearningRateSchedule.StepDecay, DecayEvery = every, DecayFactor = factor });

    /// <summary>These options with a cosine schedule from the base rate down to <paramref name="floor"/> of it.</summary>
    /// <param name="steps">The length of the cosine in steps; 0 for the length of the run.</param>
    /// <param name="floor">The final fraction of the base rate, in [0, 1].</param>
    /// <returns>A copy with <see cref="Schedule"/>, <see cref="CosineSteps"/> and <see cref="CosineFloor"/> replaced.</returns>
    /// <exception cref="ArgumentException">The length is negative or the floor is outside [0, 1].</exception>
    public TrainingOptions WithCosineSchedule(int steps = 0, double floor = 0.0) =>
        Checked(this with { Schedule = LearningRateSchedule.Cosine, CosineSteps = steps, CosineFloor = floor });

    /// <summary>These options without gradient clipping.</summary>
    /// <returns>A copy with <see cref="Clipping"/> set to <see cref="ClippingKind.None"/>.</returns>
    public TrainingOptions WithoutClipping() => this with { Clipping = ClippingKind.None };

    /// <summary>These options with the gradient's global norm clipped to <paramref name="maxNorm"/>.</summary>
    /// <param name="maxNorm">The largest norm, positive.</param>
    /// <returns>A copy with <see cref="Clipping"/> and <see cref="ClipThreshold"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="maxNorm"/> is not positive.</exception>
    public TrainingOptions WithClipByNorm(double maxNorm) => Checked(this with { Clipping = ClippingKind.ByNorm, ClipThreshold = maxNorm });

    /// <summary>These options with every gradient entry clamped to ±<paramref name="maxValue"/>.</summary>
    /// <param name="maxValue">The largest absolute entry, positive.</param>
    /// <returns>A copy with <see cref="Clipping"/> and <see cref="ClipThreshold"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="maxValue"/> is not positive.</exception>
    public TrainingOptions WithClipByValue(double maxValue) => Checked(this with { Clipping = ClippingKind.ByValue, ClipThreshold = maxValue });

    /// <summary>These options with another batch width.</summary>
    /// <param name="batch">B, positive.</param>
    /// <returns>A copy with <see cref="Batch"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="batch"/> is not positive.</exception>
    public TrainingOptions WithBatch(int batch) => Checked(this with { Batch = batch });

    /// <summary>These options with another number of characters per stream and batch.</summary>
    /// <param name="sequenceLength">T, positive.</param>
    /// <returns>A copy with <see cref="SequenceLength"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="sequenceLength"/> is not positive.</exception>
    public TrainingOptions WithSequenceLength(int sequenceLength) => Checked(this with { SequenceLength = sequenceLength });

    /// <summary>These options with another execution path.</summary>
    /// <param name="path">The path.</param>
    /// <returns>A copy with <see cref="ExecutionPath"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="path"/> is not a defined value, or is fused with randomized BPTT.</exception>
    public TrainingOptions WithExecutionPath(ExecutionPath path) => Checked(this with { ExecutionPath = path });

    /// <summary>These options with another seed for training's random choices.</summary>
    /// <param name="seed">The seed.</param>
    /// <returns>A copy with <see cref="Seed"/> replaced.</returns>
    public TrainingOptions WithSeed(ulong seed) => this with { Seed = seed };

    /// <summary>These options with validation losses in the progress reports every <paramref name="steps"/> steps.</summary>
    /// <param name="steps">The period in steps; 0 for the last step only.</param>
    /// <returns>A copy with <see cref="EvaluateEvery"/> replaced.</returns>
    /// <exception cref="ArgumentException"><paramref name="steps"/> is negative.</exception>
    public TrainingOptions WithEvaluateEvery(int steps) => Checked(this with { EvaluateEvery = steps });

    /// <summary>
    /// Checks every property, throwing an <see cref="ArgumentException"/> whose parameter name is the
    /// first invalid property's and whose message says what was expected and what arrived.
    /// </summary>
    /// <exception cref="ArgumentException">A property is out of range, or two properties contradict each other.</exception>
    public void Validate()
    {
        Property.Defined(Bptt, nameof(Bptt));
        Property.Positive(Tau, nameof(Tau));
        Property.InRange(MeanLength, 1, false, double.PositiveInfinity, false, nameof(MeanLength));
        Property.Defined(Optimizer, nameof(Optimizer));
        Property.InRange(Momentum, 0, true, 1, false, nameof(Momentum));
        Property.InRange(Alpha, 0, false, 1, false, nameof(Alpha));
        Property.InRange(LearningRate, 0, false, double.PositiveInfinity, false, nameof(LearningRate));
        Property.Defined(Schedule, nameof(Schedule));
        Property.Positive(DecayEvery, nameof(DecayEvery));
        Property.InRange(DecayFactor, 0, false, 1, true, nameof(DecayFactor));
        if (CosineSteps < 0) Property.Fail(nameof(CosineSteps), $"expected 0 (the length of the run) or a positive count, but got {CosineSteps}.");
        Property.InRange(CosineFloor, 0, true, 1, true, nameof(CosineFloor));
        Property.Defined(Clipping, nameof(Clipping));
        Property.InRange(ClipThreshold, 0, false, double.PositiveInfinity, false, nameof(ClipThreshold));
        Property.Positive(Batch, nameof(Batch));
        Property.Positive(SequenceLength, nameof(SequenceLength));
        Property.Defined(ExecutionPath, nameof(ExecutionPath));
        if (ExecutionPath == ExecutionPath.Fused && Bptt == BpttStrategy.Randomized)
            Property.Fail(nameof(ExecutionPath),
                "expected Step or Auto with randomized BPTT, which scales gradients inside a sequence where the fused kernels cannot, but got Fused.");
        if (EvaluateEvery < 0) Property.Fail(nameof(EvaluateEvery), $"expected 0 (the last step only) or a positive period, but got {EvaluateEvery}.");
    }

    private static TrainingOptions Checked(TrainingOptions options)
    {
        options.Validate();
        return options;
    }

    /// <summary>The core configuration; <paramref name="runSteps"/> resolves a cosine length of 0.</summary>
    internal TrainingConfig ToCore(int runSteps) => new(
        Bptt switch
        {
            BpttStrategy.Full => SeqNets.BpttStrategy.Full,
            BpttStrategy.Truncated => SeqNets.BpttStrategy.NewTruncated(Tau),
            _ => SeqNets.BpttStrategy.NewRandomized(MeanLength),
        },
        Optimizer switch
        {
            OptimizerKind.Sgd => SeqNets.OptimizerKind.NewSgd(Momentum),
            OptimizerKind.Adagrad => SeqNets.OptimizerKind.Adagrad,
            OptimizerKind.RmsProp => SeqNets.OptimizerKind.NewRmsProp(Alpha),
            _ => SeqNets.OptimizerKind.Adam,
        },
        LearningRate,
        Schedule switch
        {
            LearningRateSchedule.Constant => SeqNets.Schedule.Constant,
            LearningRateSchedule.StepDecay => SeqNets.Schedule.NewStepDecay(DecayEvery, DecayFactor),
            _ => SeqNets.Schedule.NewCosine(CosineSteps > 0 ? CosineSteps : Math.Max(1, runSteps), CosineFloor),
        },
        Clipping switch
        {
            ClippingKind.None => SeqNets.Clipping.NoClipping,
            ClippingKind.ByNorm => SeqNets.Clipping.NewByNorm(ClipThreshold),
            _ => SeqNets.Clipping.NewByValue(ClipThreshold),
        },
        Batch,
        SequenceLength,
        ExecutionPath switch
        {
            ExecutionPath.Fused => Microsoft.FSharp.Core.FSharpOption<SeqNets.ExecutionPath>.Some(SeqNets.ExecutionPath.Fused),
            ExecutionPath.Step => Microsoft.FSharp.Core.FSharpOption<SeqNets.ExecutionPath>.Some(SeqNets.ExecutionPath.Step),
            ExecutionPath.Derived => Microsoft.FSharp.Core.FSharpOption<SeqNets.ExecutionPath>.Some(SeqNets.ExecutionPath.Derived),
            _ => Microsoft.FSharp.Core.FSharpOption<SeqNets.ExecutionPath>.None,
        },
        Seed);

    /// <summary>The path these options run on for a network: <see cref="ExecutionPath"/> when set, else the one the core's automatic choice takes.</summary>
    internal ExecutionPath PathOn(Network network)
    {
        if (ExecutionPath != ExecutionPath.Auto) return ExecutionPath;
        var p = Training.ChoosePath(network, ToCore(1));
        return p.IsFused ? ExecutionPath.Fused : p.IsDerived ? ExecutionPath.Derived : ExecutionPath.Step;
    }

    /// <summary>These options with <see cref="ExecutionPath.Auto"/> in place of the path the automatic choice takes for them on the network anyway.</summary>
    internal TrainingOptions AutoWhereSame(Network network)
    {
        var auto = this with { ExecutionPath = ExecutionPath.Auto };
        return ExecutionPath == auto.PathOn(network) ? auto : this;
    }

    /// <summary>The options that describe a core configuration, such as one read from a checkpoint.</summary>
    internal static TrainingOptions Of(TrainingConfig c)
    {
        var o = new TrainingOptions
        {
            LearningRate = c.LearningRate,
            Batch = c.Batch,
            SequenceLength = c.SequenceLength,
            Seed = c.Seed,
            ExecutionPath = c.Path is null ? ExecutionPath.Auto : c.Path.Value.IsFused ? ExecutionPath.Fused : c.Path.Value.IsDerived ? ExecutionPath.Derived : ExecutionPath.Step,
        };
        o = c.Strategy switch
        {
            SeqNets.BpttStrategy.Truncated t => o with { Bptt = BpttStrategy.Truncated, Tau = t.tau },
            SeqNets.BpttStrategy.Randomized r => o with { Bptt = BpttStrategy.Randomized, MeanLength = r.meanLength },
            _ => o with { Bptt = BpttStrategy.Full },
        };
        o = c.Optimizer switch
        {
            SeqNets.OptimizerKind.Sgd s => o with { Optimizer = OptimizerKind.Sgd, Momentum = s.momentum },
            SeqNets.OptimizerKind.RmsProp r => o with { Optimizer = OptimizerKind.RmsProp, Alpha = r.alpha },
            _ when c.Optimizer.IsAdagrad => o with { Optimizer = OptimizerKind.Adagrad },
            _ => o with { Optimizer = OptimizerKind.Adam },
        };
        o = c.Schedule switch
        {
            SeqNets.Schedule.StepDecay d => o with { Schedule = LearningRateSchedule.StepDecay, DecayEvery = d.every, DecayFactor = d.factor },
            SeqNets.Schedule.Cosine k => o with { Schedule = LearningRateSchedule.Cosine, CosineSteps = k.total, CosineFloor = k.minFraction },
            _ => o with { Schedule = LearningRateSchedule.Constant },
        };
        return c.Clipping switch
        {
            SeqNets.Clipping.ByNorm n => o with { Clipping = ClippingKind.ByNorm, ClipThreshold = n.maxNorm },
            SeqNets.Clipping.ByValue v => o with { Clipping = ClippingKind.ByValue, ClipThreshold = v.maxValue },
            _ => o with { Clipping = ClippingKind.None },
        };
    }
}
