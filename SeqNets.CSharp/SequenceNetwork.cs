using System.Text.RegularExpressions;
using Microsoft.FSharp.Core;

namespace SeqNets.CSharp;

/// <summary>
/// A network of layers: an input layer, recurrent layers over any cells (built-in or
/// <see cref="RecurrentCell.Custom"/>, stacked, one direction or both), dropout between them, one of
/// the lecture's five heads and a readout. It trains on <see cref="TrainingData"/> with any BPTT
/// strategy the head allows, predicts and evaluates batches, samples text when it predicts the next
/// token, and saves to and loads from checkpoints and PyTorch state dicts. Its parameters are one flat
/// vector θ with a named view per layer. It owns native memory: dispose it when done.
/// </summary>
/// <remarks>
/// <para>
/// Where the layers match libtorch's <c>nn.RNN</c>, <c>nn.GRU</c> or <c>nn.LSTM</c> (several layers,
/// one direction or both) the fused kernels run over views of θ; otherwise the cells' own equations
/// run step by step. Rows of different lengths give exactly what each row gives alone: a row's state
/// stops at its own last element, a backward direction starts there, and losses and metrics skip padding.
/// </para>
/// <para>
/// Every network does its tensor work on a thread of its own, one call after another; the synchronous
/// methods wait for it and <see cref="TrainAsync"/> does not. Cancelling a training run is not an
/// error: the run finishes the step it is on and returns a <see cref="TrainingSummary"/> whose
/// <see cref="TrainingSummary.Cancelled"/> is true.
/// </para>
/// </remarks>
public sealed partial class SequenceNetwork : IDisposable
{
    private readonly EngineThread _engine;
    private readonly TrainingSession _session;
    private readonly ModelHost _host;
    private readonly Network _network;
    private readonly SeqNets.Vocabulary? _vocabulary;
    private TrainingOptions? _trainerOptions;

    private SequenceNetwork(EngineThread engine, TrainingSession session, TrainingData? data, SequenceNetworkOptions options)
    {
        _engine = engine;
        _session = session;
        _host = new ModelHost(engine, session);
        _network = session.Network;
        _vocabulary = session.Vocabulary?.Value;
        Data = data;
        Options = options;
    }

    /// <summary>
    /// A new, untrained network of the given shape, its parameters drawn by a generator seeded with
    /// <see cref="SequenceNetworkOptions.Seed"/> (each cell's U(−1/√H, 1/√H), as PyTorch), that learns from <paramref name="data"/>.
    /// </summary>
    /// <param name="options">The network's shape, precision and seed.</param>
    /// <param name="data">What it trains on, or null for a network that only predicts (or trains after being saved and loaded with data).</param>
    /// <returns>The network, which the caller disposes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="ArgumentException">An option is invalid (the parameter name is the property's), or the data does not fit the network (<c>data</c>).</exception>
    public static SequenceNetwork Create(SequenceNetworkOptions options, TrainingData? data = null)
    {
        Guard.NotNull(options, nameof(options));
        var spec = options.ToCore();
        CheckData(options, data, nameof(data));
        SeqNetsEngine.EnsureLoaded();
        var engine = new EngineThread("SeqNets sequence network");
        try
        {
            var session = engine.Run(() => NewSession(new Network(spec, options.DType, options.Seed), options, data));
            return new SequenceNetwork(engine, session, data, options);
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads a network saved by <see cref="Save"/>, with its parameters, its vocabulary (for a text
    /// model) and its training run. With <paramref name="dataForResume"/> it can train further, and
    /// training with the saved options continues exactly where the saved run stopped (optimizer
    /// state, position in the data, random state, carried state); without it, it predicts, evaluates,
    /// samples and saves.
    /// </summary>
    /// <remarks>A checkpoint that holds a user-defined cell loads once the cell is registered with <see cref="RecurrentCell.Register"/>.</remarks>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="dataForResume">The data to continue training on, or null.</param>
    /// <returns>The network, which the caller disposes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="SeqNetsCheckpointException">The file is missing, truncated, corrupt, foreign, of a newer format, or holds a cell that is not registered.</exception>
    /// <exception cref="ArgumentException">The data does not fit the saved network (a corpus of another vocabulary, for instance).</exception>
    public static SequenceNetwork Load(string path, TrainingData? dataForResume = null)
    {
        Guard.NotNull(path, nameof(path));
        SeqNetsEngine.EnsureLoaded();
        var engine = new EngineThread("SeqNets sequence network");
        try
        {
            return engine.Run(() => FromCheckpoint(engine, path, dataForResume));
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A network of the given shape whose parameters are read from a PyTorch state dict, such as one
    /// <see cref="ExportPyTorch"/> wrote or <c>torch.save(module.state_dict(), path)</c> wrote for a module
    /// with the same keys. The values come in the file's precision (float32 or float64); the options'
    /// precision and seed are not used.
    /// </summary>
    /// <param name="path">The <c>.pt</c> file, in the zip format <c>torch.save</c> has written since PyTorch 1.6.</param>
    /// <param name="options">The network's shape, which fixes the keys and shapes the file must have.</param>
    /// <param name="data">What the network trains on, or null.</param>
    /// <returns>The network, which the caller disposes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> or <paramref name="options"/> is null.</exception>
    /// <exception cref="ArgumentException">An option is invalid, or the data does not fit the network.</exception>
    /// <exception cref="SeqNetsStateDictException">The file is missing, not a zip-format state dict, or lacks a key, has another or has a shape or dtype that does not fit.</exception>
    public static SequenceNetwork ImportPyTorch(string path, SequenceNetworkOptions options, TrainingData? data = null)
    {
        PyTorchForm.PathArgument(path, nameof(path));
        Guard.NotNull(options, nameof(options));
        var spec = options.ToCore();
        CheckData(options, data, nameof(data));
        SeqNetsEngine.EnsureLoaded();
        var engine = new EngineThread("SeqNets sequence network");
        try
        {
            return engine.Run(() =>
            {
                var network = PyTorchForm.Translate(() => SeqNets.Interop.ImportNetwork(spec, path));
                var imported = options with
                {
                    Precision = network.DType == torch.float64 ? Precision.Float64 : Precision.Float32,
                    Seed = 0,
                };
                return new SequenceNetwork(engine, NewSession(network, imported, data), data, imported);
            });
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    private static TrainingSession NewSession(Network network, SequenceNetworkOptions options, TrainingData? data) =>
        new(network,
            data is null ? FSharpOption<ITrainingData>.None : FSharpOption<ITrainingData>.Some(data.ToCore(options.Head)),
            data?.Corpus is { } corpus ? FSharpOption<SeqNets.Vocabulary>.Some(corpus.Core.Vocabulary) : FSharpOption<SeqNets.Vocabulary>.None);

    /// <summary>A corpus trains only a next-token network over its vocabulary.</summary>
    private static void CheckData(SequenceNetworkOptions options, TrainingData? data, string argument)
    {
        if (data?.Corpus is not { } corpus) return;
        var V = corpus.Vocabulary.Count;
        if (!options.Input.TakesTokens || options.Input.Vocabulary != V || options.Head.Kind != HeadKind.PerStep
            || options.OutputSize != V || options.Loss != LossKind.CrossEntropy)
            throw new ArgumentException(
                $"{argument}: a corpus trains a next-token network (token input of the corpus's V = {V} characters, a PerStep head, "
                + $"OutputSize = {V}, cross-entropy), but the network has input {options.Input}, head {options.Head}, "
                + $"OutputSize = {options.OutputSize} and {options.Loss}; use SequenceNetworkOptions.NextToken({V}, layers).", argument);
    }

    private static SequenceNetwork FromCheckpoint(EngineThread engine, string path, TrainingData? data)
    {
        CheckpointContents contents;
        try
        {
            contents = Checkpoint.Load(path);
        }
        catch (CheckpointException e)
        {
            throw new SeqNetsCheckpointException(path, CSharpNames(e.Problem), e);
        }
        TrainingSession session;
        SequenceNetworkOptions options;
        try
        {
            options = SequenceNetworkOptions.Of(contents.Network);
            CheckData(options, data, "dataForResume");
            if (data?.Corpus is { } corpus && contents.Vocabulary is { } saved && !corpus.Core.Vocabulary.Equals(saved.Value))
                throw new ArgumentException(
                    $"dataForResume: expected a corpus with the checkpoint's vocabulary of {saved.Value.Size} characters, "
                    + $"but its vocabulary has {corpus.Vocabulary.Count} different ones.", "dataForResume");
            session = new TrainingSession(contents.Network,
                data is null ? FSharpOption<ITrainingData>.None : FSharpOption<ITrainingData>.Some(data.ToCore(options.Head)),
                contents.Vocabulary, FSharpOption<CheckpointContents>.Some(contents));
        }
        catch
        {
            foreach (var s in contents.State) s.Dispose();
            ((IDisposable)contents.Network).Dispose();
            throw;
        }
        TrainingOptions? saved2 = null;
        if (session.LastConfig is { } config && session.StepCount > 0)
        {
            saved2 = TrainingOptions.Of(config.Value);
            // The checkpoint records the path it ran on; Auto is the same run where the automatic choice takes that path.
            saved2 = saved2.AutoWhereSame(session.Network);
        }
        // The saved run is resumed by the first Train call with equal options (the session compares them).
        return new SequenceNetwork(engine, session, data, options)
        {
            LastTrainingOptions = saved2,
            _trainerOptions = saved2,
        };
    }

    /// <summary>The network's shape. For a loaded or imported network <see cref="SequenceNetworkOptions.Seed"/> is 0: its parameters were not drawn from a seed.</summary>
    public SequenceNetworkOptions Options { get; }

    /// <summary>What the network trains on, or null for a network created or loaded without data.</summary>
    public TrainingData? Data { get; }

    /// <summary>P, the number of scalar parameters: the input layer's, every layer and direction's θ, a bridge's, a decoder's and the readout's.</summary>
    public long ParameterCount => _network.ParameterCount;

    /// <summary>Whether libtorch's fused kernels can run the network's layers (the same PyTorch-form cell and hidden size in every layer).</summary>
    public bool HasFusedPath => _network.HasFusedPath;

    /// <summary>
    /// The options of the latest training run, or of the run a loaded checkpoint was saved from; null
    /// for a network never trained. <see cref="Train"/> uses them when it is given no options.
    /// </summary>
    public TrainingOptions? LastTrainingOptions { get; private set; }

    /// <summary>The number of training steps the network has taken, counting those recorded in a loaded checkpoint.</summary>
    public int StepCount => _session.StepCount;

    /// <summary>
    /// Describes the network on one line: its input, its layers with their directions, its head, its
    /// readout and its number of parameters; checkpoints record the same text.
    /// </summary>
    /// <returns>The description.</returns>
    public string Describe() => _network.Describe();

    /// <summary>Describes the network, as <see cref="Describe"/> does.</summary>
    /// <returns>The description.</returns>
    public override string ToString() => Describe();

    /// <summary>
    /// Trains the network for <paramref name="steps"/> steps, one batch each, and waits for the run.
    /// Called again with equal options it continues the same run (optimizer state, position in the
    /// data, carried state); with other options it starts a new run on the same parameters.
    /// </summary>
    /// <param name="steps">The number of steps, positive.</param>
    /// <param name="options">How to train; null for <see cref="LastTrainingOptions"/>, else <see cref="TrainingOptions.Default"/> on a text and its full-BPTT variant on batches.</param>
    /// <param name="progress">Receives a report after every step, on the network's thread; null for none.</param>
    /// <param name="cancellationToken">Stops the run after the current step; the run then returns normally with <see cref="TrainingSummary.Cancelled"/> set.</param>
    /// <returns>What the run did.</returns>
    /// <exception cref="ArgumentException"><paramref name="steps"/> is not positive, an option does not fit this network or data (the parameter name is the property's), or a batch does not fit the head.</exception>
    /// <exception cref="InvalidOperationException">The network has no data to train on.</exception>
    /// <exception cref="ObjectDisposedException">The network has been disposed.</exception>
    public TrainingSummary Train(int steps, TrainingOptions? options = null, IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var o = Prepare(steps, options);
        return _engine.Run(() => TrainOnEngine(steps, o, progress, cancellationToken));
    }

    /// <summary>
    /// Trains the network as <see cref="Train"/> does, on the network's own thread, and returns at once
    /// with a task of the run. Bad arguments are reported before the task starts.
    /// </summary>
    /// <param name="steps">The number of steps, positive.</param>
    /// <param name="options">How to train; null as for <see cref="Train"/>.</param>
    /// <param name="progress">Receives a report after every step; a <see cref="Progress{T}"/> posts it to the caller's context.</param>
    /// <param name="cancellationToken">Stops the run after the current step; the task then completes normally with <see cref="TrainingSummary.Cancelled"/> set.</param>
    /// <returns>A task that completes with what the run did.</returns>
    /// <exception cref="ArgumentException"><paramref name="steps"/> is not positive, or an option does not fit this network or data.</exception>
    /// <exception cref="InvalidOperationException">The network has no data to train on.</exception>
    /// <exception cref="ObjectDisposedException">The network has been disposed.</exception>
    public Task<TrainingSummary> TrainAsync(int steps, TrainingOptions? options = null, IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var o = Prepare(steps, options);
        return _engine.RunAsync(() => TrainOnEngine(steps, o, progress, cancellationToken));
    }

    /// <summary>
    /// What the network predicts for <paramref name="inputs"/>, shaped as <see cref="SequenceBatch.Inputs"/>
    /// for its head: classes (cross-entropy) or values (mean squared error), per step or per row, and
    /// for an encoder–decoder the greedily decoded ids with each row's length. Rows of different
    /// lengths give exactly what each row gives alone.
    /// </summary>
    /// <param name="inputs">[T; B] ids or [T; B; I] vectors for a sequence head, [B; I] vectors for a vector head.</param>
    /// <param name="lengths">The real steps of each row of a sequence input (B of them, each in [1, T]), or null when none is padded.</param>
    /// <param name="steps">How many steps a one-to-many head generates; other heads ignore it.</param>
    /// <returns>The predictions, which the caller disposes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="inputs"/> is null.</exception>
    /// <exception cref="ArgumentException">The inputs, lengths or steps do not fit the network; the parameter name says which.</exception>
    /// <exception cref="ObjectDisposedException">The network has been disposed.</exception>
    public SequencePrediction Predict(Tensor inputs, long[]? lengths = null, int? steps = null)
    {
        ThrowIfDisposed();
        Guard.NotNull(inputs, nameof(inputs));
        if (Options.Head.Kind == HeadKind.OneToMany && steps is null)
            throw new ArgumentException("steps: a one-to-many head needs the number of steps to generate, but got null.", nameof(steps));
        return _engine.Run(() =>
        {
            using var scope = torch.NewDisposeScope();
            var p = Heads.Predict(_network, _network.DefaultPath, inputs,
                lengths is null ? FSharpOption<long[]>.None : FSharpOption<long[]>.Some((long[])lengths.Clone()),
                steps is int n ? FSharpOption<int>.Some(n) : FSharpOption<int>.None);
            return new SequencePrediction(p.Values.MoveToOuterDisposeScope(), p.Lengths?.Value);
        });
    }

    /// <summary>The loss and the metrics of the network's head on a batch: accuracy, exact match or mean absolute error, padding ignored.</summary>
    /// <param name="batch">The batch, shaped for the head.</param>
    /// <returns>The metrics.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="batch"/> is null.</exception>
    /// <exception cref="ArgumentException">The batch does not fit the network; the parameter name names the property, such as <c>batch.Targets</c>.</exception>
    /// <exception cref="ObjectDisposedException">The network has been disposed.</exception>
    public SequenceMetrics Evaluate(SequenceBatch batch)
    {
        ThrowIfDisposed();
        Guard.NotNull(batch, nameof(batch));
        return _engine.Run(() =>
        {
            using var scope = torch.NewDisposeScope();
            return new SequenceMetrics(Heads.Evaluate(_network, _network.DefaultPath, batch.ToCore()));
        });
    }

    /// <summary>
    /// Generates text from a next-token network: reads <paramref name="prime"/> from the zero state, then
    /// draws <paramref name="length"/> characters one at a time from softmax(y_t / temperature), feeding
    /// each back in. The same seed gives the same text.
    /// </summary>
    /// <param name="prime">The text to start from; empty for a newline, or the first vocabulary character if there is no newline.</param>
    /// <param name="length">How many characters to generate, zero or more.</param>
    /// <param name="temperature">Divides the logits: below 1 sharper, above 1 flatter; positive.</param>
    /// <param name="topK">Draw only among the k most likely characters; 0 for all of them.</param>
    /// <param name="seed">The seed of the draws.</param>
    /// <returns>The generated characters, without the prime.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="prime"/> is null.</exception>
    /// <exception cref="ArgumentException">A character of the prime is outside the vocabulary, or a number is out of range.</exception>
    /// <exception cref="InvalidOperationException">The network has no vocabulary (it was not made with a corpus) or does not predict the next token.</exception>
    /// <exception cref="ObjectDisposedException">The network has been disposed.</exception>
    public string Sample(string prime, int length, double temperature = 0.8, int topK = 0, ulong seed = 1)
    {
        ThrowIfDisposed();
        Guard.NotNull(prime, nameof(prime));
        if (_vocabulary is null)
            throw new InvalidOperationException(
                "The network has no vocabulary to sample characters from: create it with TrainingData.FromCorpus, or load a checkpoint of such a network.");
        var o = Options;
        if (!(o.Input.TakesTokens && o.Head.Kind == HeadKind.PerStep && o.Loss == LossKind.CrossEntropy && o.Layers.All(l => l.Directions == 1)))
            throw new InvalidOperationException(
                $"Sampling feeds each drawn token back in, so it needs a next-token network (token input, layers reading left to right, a PerStep head, cross-entropy), but this one is: {Describe()}.");
        CharCorpus.EncodeWith(_vocabulary, prime, nameof(prime));
        if (length < 0)
            throw new ArgumentException($"length: expected zero or more characters, but got {length}.", nameof(length));
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentException($"temperature: expected a positive finite value, but got {temperature}.", nameof(temperature));
        if (topK < 0)
            throw new ArgumentException($"topK: expected 0 (all characters) or a positive count, but got {topK}.", nameof(topK));
        var sampling = new SamplingOptions(temperature, topK, seed);
        return _engine.Run(() => Sampling.Generate(_network, _vocabulary, prime, length, sampling));
    }

    /// <summary>
    /// Saves the network (its description and parameters), its vocabulary and the state of its
    /// training run (options, optimizer, position in the data, random state, carried state) to
    /// <paramref name="path"/>, in checkpoint format 2. The file is written under a temporary name and
    /// then renamed, so an interrupted save leaves any earlier file intact.
    /// </summary>
    /// <param name="path">The checkpoint file; its folder is created when missing.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="IOException">The file cannot be written.</exception>
    /// <exception cref="ObjectDisposedException">The network has been disposed.</exception>
    public void Save(string path)
    {
        ThrowIfDisposed();
        Guard.NotNull(path, nameof(path));
        _engine.Run(() =>
        {
            _session.Save(path);
            return 0;
        });
    }

    /// <summary>
    /// Writes the network's parameters as a PyTorch state dict, under PyTorch's own names where a layer
    /// is one of its modules: <c>embedding.weight</c> or <c>input.weight</c>, <c>input.bias</c>;
    /// <c>rnn.weight_ih_l0</c> … <c>rnn.bias_hh_l1_reverse</c>; a user-defined cell's blocks as
    /// <c>rnn.l0.&lt;block&gt;</c> (<c>rnn.l0_reverse.&lt;block&gt;</c>); a decoder's under <c>decoder.</c>; then
    /// <c>out.weight</c> and <c>out.bias</c>. The file is replaced atomically.
    /// </summary>
    /// <param name="path">The <c>.pt</c> file; its folder is created when missing.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="IOException">The file cannot be written.</exception>
    /// <exception cref="ObjectDisposedException">The network has been disposed.</exception>
    public void ExportPyTorch(string path)
    {
        ThrowIfDisposed();
        PyTorchForm.PathArgument(path, nameof(path));
        _engine.Run(() =>
        {
            SeqNets.Interop.ExportNetwork(_network, path);
            return 0;
        });
    }

    /// <summary>A copy of θ, every parameter of the network in one flat vector [P] in its precision; the caller disposes it.</summary>
    /// <returns>The copy, detached from the network.</returns>
    /// <exception cref="ObjectDisposedException">The network has been disposed.</exception>
    public Tensor GetParameters()
    {
        ThrowIfDisposed();
        return _engine.Run(() =>
        {
            using var noGrad = torch.no_grad();
            return _network.Parameters.detach().clone();
        });
    }

    /// <summary>Runs <paramref name="work"/> on the network's thread with the core network; for the tests.</summary>
    internal T WithCore<T>(Func<Network, T> work) => _engine.Run(() => work(_network));

    /// <summary>
    /// Frees the network's native memory and ends its thread. A training run in progress stops after
    /// its current step first; the network cannot be used afterwards.
    /// </summary>
    public void Dispose() => _host.Dispose();

    private void ThrowIfDisposed() => _host.ThrowIfDisposed(this);

    /// <summary>Checks a run's arguments on the caller's thread and resolves the options.</summary>
    private TrainingOptions Prepare(int steps, TrainingOptions? options)
    {
        ThrowIfDisposed();
        Guard.Positive(steps, nameof(steps));
        if (Data is null)
            throw new InvalidOperationException(
                "The network has no data to train on: create it with TrainingData, or pass TrainingData to Load as dataForResume.");
        var o = options ?? LastTrainingOptions ?? (Data.Corpus is null ? TrainingOptions.Default.WithFullBptt() : TrainingOptions.Default);
        o.Validate();
        if (o.ExecutionPath == ExecutionPath.Fused && !_network.HasFusedPath)
            Property.Fail(nameof(TrainingOptions.ExecutionPath),
                $"expected Step or Auto for this network, whose layers no libtorch kernel runs ({Describe()}), but got Fused.");
        if (o.ExecutionPath == ExecutionPath.Derived && !_network.HasDerivedPath)
            Property.Fail(nameof(TrainingOptions.ExecutionPath),
                $"expected Step or Auto for this network, which has a layer that is not a built-in cell ({Describe()}), but got Derived.");
        if (o.Bptt != BpttStrategy.Full && !Options.Head.ReadsSequence)
            Property.Fail(nameof(TrainingOptions.Bptt),
                $"expected Full for a {Options.Head.Kind} head: {o.Bptt} BPTT cuts the gradient inside a sequence read step by step, "
                + $"which only PerStep and ManyToOne heads do, but got {o.Bptt}.");
        if (o.Bptt != BpttStrategy.Full && Options.Layers.Any(l => l.Directions == 2))
            Property.Fail(nameof(TrainingOptions.Bptt),
                $"expected Full for a network with a bidirectional layer, which reads the whole sequence both ways, but got {o.Bptt}.");
        if (Data.Corpus is { } corpus)
        {
            var perStream = (corpus.TrainingLength - 1) / o.Batch;
            if (perStream < o.SequenceLength)
                Property.Fail(nameof(TrainingOptions.Batch),
                    $"expected a training text of at least B·T + 1 = {(long)o.Batch * o.SequenceLength + 1} characters "
                    + $"for Batch = {o.Batch} and SequenceLength = {o.SequenceLength}, but the corpus has {corpus.TrainingLength}; "
                    + "lower Batch or SequenceLength.");
        }
        return o;
    }

    /// <summary>The options with every setting that does not change the trainer's behaviour reset, so equal keys mean one run.</summary>
    private TrainingOptions RunKey(TrainingOptions o)
    {
        var path = o.PathOn(_network);
        var d = TrainingOptions.Default;
        return o with
        {
            ExecutionPath = path,
            EvaluateEvery = 0,
            Tau = o.Bptt == BpttStrategy.Truncated ? o.Tau : d.Tau,
            MeanLength = o.Bptt == BpttStrategy.Randomized ? o.MeanLength : d.MeanLength,
            Momentum = o.Optimizer == OptimizerKind.Sgd ? o.Momentum : d.Momentum,
            Alpha = o.Optimizer == OptimizerKind.RmsProp ? o.Alpha : d.Alpha,
            DecayEvery = o.Schedule == LearningRateSchedule.StepDecay ? o.DecayEvery : d.DecayEvery,
            DecayFactor = o.Schedule == LearningRateSchedule.StepDecay ? o.DecayFactor : d.DecayFactor,
            CosineSteps = o.Schedule == LearningRateSchedule.Cosine ? o.CosineSteps : d.CosineSteps,
            CosineFloor = o.Schedule == LearningRateSchedule.Cosine ? o.CosineFloor : d.CosineFloor,
            ClipThreshold = o.Clipping != ClippingKind.None ? o.ClipThreshold : d.ClipThreshold,
        };
    }

    /// <summary>
    /// The core configuration of a run with these options: the current run's when the options describe
    /// it (a cosine schedule of length 0 resolves to the first call's steps), a new one otherwise.
    /// </summary>
    private TrainingConfig ConfigFor(TrainingOptions options, int steps)
    {
        if (_trainerOptions is not null && RunKey(_trainerOptions) == RunKey(options))
        {
            if (_session.Trainer is { } t) return t.Value.Config;
            if (_session.LastConfig is { } c) return c.Value;
        }
        return options.ToCore(steps);
    }

    private TrainingSummary TrainOnEngine(int steps, TrainingOptions options, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        return _host.Train("network", steps, () =>
        {
            var config = ConfigFor(options, steps);
            _trainerOptions = options;
            LastTrainingOptions = options;
            return config;
        }, progress, options.EvaluateEvery, cancellationToken);
    }

    /// <summary>The core's hints name its F# functions; a C# caller reads the facade's methods instead.</summary>
    internal static string CSharpNames(string problem) =>
        CatalogHint().Replace(problem, m => $"RecurrentCell.Register(\"{m.Groups[1].Value}\", make)");

    [GeneratedRegex("CellCatalog\\.register \"([^\"]*)\"")]
    private static partial Regex CatalogHint();
}
