using System.Collections.ObjectModel;
using Microsoft.FSharp.Core;
using System.Diagnostics;
using System.Text;

namespace SeqNets.CSharp;

/// <summary>
/// A character-level language model, the lecture's running example: one-hot characters, L stacked
/// recurrent layers, y_t = V h_t + c and a softmax over the next character. It trains on a
/// <see cref="CharCorpus"/>, predicts and samples text, and saves to and loads from checkpoint files.
/// It owns native memory: dispose it when done.
/// </summary>
/// <remarks>
/// <para>
/// Every model does its tensor work on a thread of its own, one call after another; the synchronous
/// methods wait for it and <see cref="TrainAsync"/> does not. Calls from several threads are
/// therefore safe and run in turn, and a caller's TorchSharp dispose scope never captures the
/// model's tensors.
/// </para>
/// <para>
/// Cancelling a training run is not an error: the run finishes the step it is on and returns a
/// <see cref="TrainingSummary"/> whose <see cref="TrainingSummary.Cancelled"/> is true, and the model
/// can be used, trained further or saved as usual. A caller that prefers an exception calls
/// <c>cancellationToken.ThrowIfCancellationRequested()</c> after the run returns.
/// </para>
/// </remarks>
public sealed class CharLanguageModel : IDisposable
{
    private const int ValidationBatches = 20;

    private readonly EngineThread _engine;
    private readonly TrainingSession _session;
    private readonly ModelHost _host;
    private readonly Network _model;
    private readonly SeqNets.Vocabulary _vocabulary;
    private TrainingOptions? _trainerOptions;

    private CharLanguageModel(EngineThread engine, TrainingSession session, SeqNets.Vocabulary vocabulary, CharCorpus? corpus, CharModelOptions options)
    {
        _engine = engine;
        _session = session;
        _host = new ModelHost(engine, session);
        _model = session.Network;
        _vocabulary = vocabulary;
        Corpus = corpus;
        Options = options;
        Vocabulary = new ReadOnlyCollection<Rune>(vocabulary.Characters.ToArray());
    }

    /// <summary>
    /// A new, untrained model over the corpus's vocabulary, its parameters drawn from
    /// U(−1/√H, 1/√H) by a generator seeded with <see cref="CharModelOptions.Seed"/>.
    /// </summary>
    /// <param name="corpus">The text the model will train on; its vocabulary fixes the model's input and output width.</param>
    /// <param name="options">The cell family, sizes, precision and seed; <see cref="CharModelOptions.Default"/> when null.</param>
    /// <returns>The model, which the caller disposes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="corpus"/> is null.</exception>
    /// <exception cref="ArgumentException">An option is out of range; the parameter name is the property's.</exception>
    public static CharLanguageModel Create(CharCorpus corpus, CharModelOptions? options = null)
    {
        Guard.NotNull(corpus, nameof(corpus));
        options ??= CharModelOptions.Default;
        options.Validate();
        SeqNetsEngine.EnsureLoaded();
        var engine = new EngineThread("SeqNets character model");
        try
        {
            var config = new ModelConfig(options.CoreKind, corpus.Vocabulary.Count, options.HiddenSize, options.Layers);
            var session = engine.Run(() => NewSession(SeqNets.CharModel.Create(config, options.DType, options.Seed), corpus, corpus.Core.Vocabulary));
            return new CharLanguageModel(engine, session, corpus.Core.Vocabulary, corpus, options);
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads a model saved by <see cref="Save"/>. With <paramref name="corpusForResume"/> the model
    /// can train further, continuing exactly where the saved run stopped (optimizer state, position
    /// in the text, random state); without it, it can predict, sample, and be saved again.
    /// </summary>
    /// <param name="path">The checkpoint file.</param>
    /// <param name="corpusForResume">The corpus to continue training on, with the checkpoint's vocabulary; or null.</param>
    /// <returns>The model, which the caller disposes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="SeqNetsCheckpointException">The file is missing, truncated, corrupt, foreign or of a newer format.</exception>
    /// <exception cref="ArgumentException">The corpus's vocabulary differs from the checkpoint's, or its text is too short for the saved batch shape.</exception>
    public static CharLanguageModel Load(string path, CharCorpus? corpusForResume = null)
    {
        Guard.NotNull(path, nameof(path));
        SeqNetsEngine.EnsureLoaded();
        var engine = new EngineThread("SeqNets character model");
        try
        {
            var session = engine.Run(() =>
            {
                try
                {
                    return TrainingSession.Load(path, Data(corpusForResume));
                }
                catch (CheckpointException e)
                {
                    throw new SeqNetsCheckpointException(path, e.Problem, e);
                }
            });
            try
            {
                return engine.Run(() => FromSession(engine, path, session, corpusForResume));
            }
            catch
            {
                engine.Run(() =>
                {
                    ((IDisposable)session).Dispose();
                    return 0;
                });
                throw;
            }
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A model whose parameters are read from the state dict of a PyTorch character model: the file
    /// that <c>torch.save(model.state_dict(), path)</c> writes for a module with
    /// <c>self.rnn = nn.RNN / nn.GRU / nn.LSTM(V, H, L)</c> over one-hot characters and
    /// <c>self.out = nn.Linear(H, V)</c>, with the keys <c>rnn.weight_ih_l0</c> …
    /// <c>rnn.bias_hh_l(L−1)</c>, <c>out.weight</c> and <c>out.bias</c>. H, L and the precision come
    /// from the file; the model can predict, sample, train further on the corpus, and be saved.
    /// </summary>
    /// <remarks>
    /// A state dict records neither the cell family (<c>nn.RNN</c> with tanh and with ReLU have the
    /// same keys) nor the characters, so both are given: id i of the PyTorch model is
    /// <c>corpus.Vocabulary[i]</c>, the corpus's characters sorted by code point, as Python's
    /// <c>sorted(set(text))</c> orders them. <see cref="Options"/> reports seed 0, since the
    /// parameters were not drawn from one.
    /// </remarks>
    /// <param name="path">The <c>.pt</c> file, in the zip format <c>torch.save</c> has written since PyTorch 1.6.</param>
    /// <param name="corpus">The text the model reads and may train on; its vocabulary must have the file's V characters.</param>
    /// <param name="kind">The family of the file's <c>self.rnn</c>: ElmanTanh or ElmanRelu for <c>nn.RNN</c>, Gru for <c>nn.GRU</c>, Lstm for <c>nn.LSTM</c>.</param>
    /// <returns>The model, which the caller disposes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> or <paramref name="corpus"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="kind"/> has no PyTorch module (GruLecture, MultiplicativeRnn), or the corpus's vocabulary is not the file's size.</exception>
    /// <exception cref="SeqNetsStateDictException">The file is missing, not a zip-format state dict, or has a key, shape or dtype that does not fit a model of this kind.</exception>
    public static CharLanguageModel ImportPyTorch(string path, CharCorpus corpus, CellKind kind)
    {
        PyTorchForm.PathArgument(path, nameof(path));
        Guard.NotNull(corpus, nameof(corpus));
        Guard.Defined(kind, nameof(kind));
        if (PyTorchForm.WhyNot(kind) is string why)
            throw new ArgumentException(
                $"kind: expected a cell family with a PyTorch module ({PyTorchForm.Kinds}), but got {kind}: {why}.", nameof(kind));
        SeqNetsEngine.EnsureLoaded();
        var coreKind = new CharModelOptions { Cell = kind }.CoreKind;
        var engine = new EngineThread("SeqNets character model");
        try
        {
            return engine.Run(() =>
            {
                var model = PyTorchForm.Translate(() => SeqNets.Interop.ImportModel(coreKind, path));
                var V = model.Spec.Output;
                if (V != corpus.Vocabulary.Count)
                {
                    ((IDisposable)model).Dispose();
                    throw new ArgumentException(
                        $"corpus: expected a vocabulary of V = {V} characters, the width of the file's one-hot input and output, "
                        + $"but the corpus has {corpus.Vocabulary.Count}.", nameof(corpus));
                }
                return new CharLanguageModel(engine, NewSession(model, corpus, corpus.Core.Vocabulary), corpus.Core.Vocabulary, corpus, CharModelOptions.Of(model));
            });
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    private static TrainingSession NewSession(Network network, CharCorpus? corpus, SeqNets.Vocabulary vocabulary) =>
        new(network, Data(corpus), FSharpOption<SeqNets.Vocabulary>.Some(vocabulary));

    private static FSharpOption<ITrainingData>? Data(CharCorpus? corpus) =>
        corpus is null ? FSharpOption<ITrainingData>.None : FSharpOption<ITrainingData>.Some(new TextData(corpus.Core));

    private static CharLanguageModel FromSession(EngineThread engine, string path, TrainingSession session, CharCorpus? corpus)
    {
        if (session.Vocabulary is null)
            throw new SeqNetsCheckpointException(path, "holds a network without a text vocabulary, so it is not a character model", null);
        var vocabulary = session.Vocabulary.Value;
        if (FSharpOption<ModelConfig>.get_IsNone(SeqNets.CharModel.TryConfig(session.Network)))
            throw new SeqNetsCheckpointException(path,
                $"holds a network that is not a character model of one built-in cell family ({session.Network.Describe()})", null);
        if (corpus is not null && !corpus.Core.Vocabulary.Equals(vocabulary))
            throw new ArgumentException(
                $"corpusForResume: expected a corpus with the checkpoint's vocabulary of {vocabulary.Size} characters, "
                + $"but its vocabulary has {corpus.Vocabulary.Count} different ones.", "corpusForResume");
        TrainingOptions? saved = null;
        if (session.LastConfig is { } config && session.StepCount > 0)
        {
            saved = TrainingOptions.Of(config.Value);
            // The checkpoint records the path it ran on; Auto is the same run on a model whose default it is.
            // The checkpoint records the path it ran on; Auto is the same run where the automatic choice takes that path.
            saved = saved.AutoWhereSame(session.Network);
        }
        // The saved run is resumed by the first Train call with equal options (the session compares them).
        return new CharLanguageModel(engine, session, vocabulary, corpus, CharModelOptions.Of(session.Network))
        {
            LastTrainingOptions = saved,
            _trainerOptions = saved,
        };
    }

    /// <summary>The corpus the model trains on, or null for a model loaded without one.</summary>
    public CharCorpus? Corpus { get; }

    /// <summary>
    /// The shape of the model. For a loaded model <see cref="CharModelOptions.Seed"/> is 0, because a
    /// checkpoint records the trained parameters rather than the seed that first drew them.
    /// </summary>
    public CharModelOptions Options { get; }

    /// <summary>The characters (Unicode scalar values) the model reads and writes, in id order.</summary>
    public IReadOnlyList<Rune> Vocabulary { get; }

    /// <summary>The number of scalar parameters: every layer's θ and the output layer's weights and biases.</summary>
    public long ParameterCount => _model.ParameterCount;

    /// <summary>
    /// The options of the latest training run, or of the run a loaded checkpoint was saved from; null
    /// for a model never trained. <see cref="Train"/> uses them when it is given no options.
    /// </summary>
    public TrainingOptions? LastTrainingOptions { get; private set; }

    /// <summary>The number of training steps the model has taken, counting those recorded in a loaded checkpoint.</summary>
    public int StepCount => _session.StepCount;

    /// <summary>
    /// Trains the model for <paramref name="steps"/> steps, one batch each, and waits for the run.
    /// Called again with equal options it continues the same run (optimizer state, position in the
    /// text, carried state); with other options it starts a new run on the same parameters.
    /// </summary>
    /// <param name="steps">The number of steps, positive.</param>
    /// <param name="options">How to train; null for <see cref="LastTrainingOptions"/>, or <see cref="TrainingOptions.Default"/> for a model never trained.</param>
    /// <param name="progress">Receives a report after every step, on the model's thread; null for none.</param>
    /// <param name="cancellationToken">Stops the run after the current step; the run then returns normally with <see cref="TrainingSummary.Cancelled"/> set.</param>
    /// <returns>What the run did.</returns>
    /// <exception cref="ArgumentException"><paramref name="steps"/> is not positive, or an option is invalid for this model or corpus (the parameter name is the property's).</exception>
    /// <exception cref="InvalidOperationException">The model was loaded without a corpus, so it has nothing to train on.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public TrainingSummary Train(int steps, TrainingOptions? options = null, IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var o = Prepare(steps, options);
        return _engine.Run(() => TrainOnEngine(steps, o, progress, cancellationToken));
    }

    /// <summary>
    /// Trains the model as <see cref="Train"/> does, on the model's own thread, and returns at once
    /// with a task of the run. Bad arguments are reported before the task starts.
    /// </summary>
    /// <param name="steps">The number of steps, positive.</param>
    /// <param name="options">How to train; null for <see cref="LastTrainingOptions"/>, or <see cref="TrainingOptions.Default"/> for a model never trained.</param>
    /// <param name="progress">Receives a report after every step; a <see cref="Progress{T}"/> posts it to the caller's context.</param>
    /// <param name="cancellationToken">Stops the run after the current step; the task then completes normally with <see cref="TrainingSummary.Cancelled"/> set.</param>
    /// <returns>A task that completes with what the run did.</returns>
    /// <exception cref="ArgumentException"><paramref name="steps"/> is not positive, or an option is invalid for this model or corpus.</exception>
    /// <exception cref="InvalidOperationException">The model was loaded without a corpus, so it has nothing to train on.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public Task<TrainingSummary> TrainAsync(int steps, TrainingOptions? options = null, IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var o = Prepare(steps, options);
        return _engine.RunAsync(() => TrainOnEngine(steps, o, progress, cancellationToken));
    }

    /// <summary>
    /// The mean cross-entropy, in nats per character, of the model's predictions over (up to 20
    /// batches of) the corpus's validation part, with the state carried from batch to batch.
    /// </summary>
    /// <returns>The validation loss; ln V for a model that has learned nothing.</returns>
    /// <exception cref="InvalidOperationException">There is no corpus, or its validation part has fewer than two characters.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public double Evaluate()
    {
        ThrowIfDisposed();
        if (Corpus is null)
            throw new InvalidOperationException("The model was loaded without a corpus, so it has no validation text: pass one to Load.");
        if (Corpus.ValidationLength < 2)
            throw new InvalidOperationException(
                $"The corpus has {Corpus.ValidationLength} validation characters, but evaluation needs at least 2: use a trainFraction below 1.");
        return _engine.Run(() => ValidationLoss(LastTrainingOptions ?? TrainingOptions.Default)!.Value);
    }

    /// <summary>
    /// The most likely next character after each prefix of <paramref name="text"/>, starting from
    /// the zero state: after training on "hello", <c>Predict("hell")</c> gives "ello".
    /// </summary>
    /// <param name="text">The characters read, at least one, all in the vocabulary.</param>
    /// <returns>One predicted character per character of <paramref name="text"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    /// <exception cref="ArgumentException">The text is empty or has a character outside the vocabulary.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public string Predict(string text)
    {
        ThrowIfDisposed();
        var ids = CharCorpus.EncodeWith(_vocabulary, text, nameof(text));
        if (ids.Length == 0)
            throw new ArgumentException("text: expected at least one character, but got an empty text.", nameof(text));
        return _engine.Run(() =>
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            using var input = torch.tensor(ids.Select(i => (long)i).ToArray()).reshape(ids.Length, 1); // [T; 1]
            var logits = _model.Forward(_model.DefaultPath, input, _model.ZeroState(1), null, null, null).Item1; // [T; 1; V]
            var best = logits.argmax(2).reshape(-1).to_type(torch.int64).data<long>().ToArray();
            return string.Concat(best.Select(i => _vocabulary.TextOf((int)i)));
        });
    }

    /// <summary>
    /// Generates text: reads <paramref name="prime"/> from the zero state, then draws
    /// <paramref name="length"/> characters one at a time from softmax(y_t / temperature), feeding
    /// each back in. The same seed gives the same text.
    /// </summary>
    /// <param name="prime">The text to start from; empty for a newline, or the first vocabulary character if there is no newline.</param>
    /// <param name="length">How many characters to generate, zero or more.</param>
    /// <param name="temperature">Divides the logits: below 1 sharper and more repetitive, above 1 flatter and more surprising; positive.</param>
    /// <param name="topK">Draw only among the k most likely characters; 0 for all of them.</param>
    /// <param name="seed">The seed of the draws.</param>
    /// <returns>The generated characters, without the prime.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="prime"/> is null.</exception>
    /// <exception cref="ArgumentException">A character of the prime is outside the vocabulary, or a number is out of range.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public string Sample(string prime, int length, double temperature = 0.8, int topK = 0, ulong seed = 1)
    {
        ThrowIfDisposed();
        CharCorpus.EncodeWith(_vocabulary, prime, nameof(prime));
        if (length < 0)
            throw new ArgumentException($"length: expected zero or more characters, but got {length}.", nameof(length));
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentException($"temperature: expected a positive finite value, but got {temperature}.", nameof(temperature));
        if (topK < 0)
            throw new ArgumentException($"topK: expected 0 (all characters) or a positive count, but got {topK}.", nameof(topK));
        var options = new SamplingOptions(temperature, topK, seed);
        return _engine.Run(() => Sampling.Generate(_model, _vocabulary, prime, length, options));
    }

    /// <summary>
    /// Saves the model, its vocabulary and the state of its training run (options, optimizer, position
    /// in the text, random state) to <paramref name="path"/>. The file is written under a temporary
    /// name and then renamed, so an interrupted save leaves any earlier file intact.
    /// </summary>
    /// <param name="path">The checkpoint file; its folder is created when missing.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="IOException">The file cannot be written.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
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
    /// Writes the model's parameters as the state dict of the PyTorch character model that
    /// <see cref="ImportPyTorch"/> reads: <c>rnn.weight_ih_l0</c> … <c>rnn.bias_hh_l(L−1)</c>,
    /// <c>out.weight</c> and <c>out.bias</c>, in the model's precision, which
    /// <c>model.load_state_dict(torch.load(path))</c> accepts with strict keys and shapes. The file is
    /// written under a temporary name and then renamed, so an interrupted export leaves any earlier
    /// file intact.
    /// </summary>
    /// <remarks>
    /// Only the parameters go out: the vocabulary and the training run stay with <see cref="Save"/>'s
    /// checkpoints. A run in progress finishes before the export, which sees its final parameters.
    /// </remarks>
    /// <param name="path">The <c>.pt</c> file; its folder is created when missing.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
    /// <exception cref="InvalidOperationException">The model's cells have no PyTorch module: GruLecture or MultiplicativeRnn.</exception>
    /// <exception cref="IOException">The file cannot be written.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public void ExportPyTorch(string path)
    {
        ThrowIfDisposed();
        PyTorchForm.PathArgument(path, nameof(path));
        if (PyTorchForm.WhyNot(Options.Cell) is string why)
            throw new InvalidOperationException($"A {Options.Cell} model cannot be exported as a PyTorch state dict: {why}.");
        _engine.Run(() =>
        {
            SeqNets.Interop.ExportModel(_model, path);
            return 0;
        });
    }

    /// <summary>Runs <paramref name="work"/> on the model's thread with the core model; for the tests.</summary>
    internal T WithCore<T>(Func<Network, T> work) => _engine.Run(() => work(_model));

    /// <summary>
    /// Frees the model's native memory and ends its thread. A training run in progress stops after
    /// its current step first; the model cannot be used afterwards.
    /// </summary>
    public void Dispose() => _host.Dispose();

    private void ThrowIfDisposed() => _host.ThrowIfDisposed(this);

    /// <summary>Checks a run's arguments on the caller's thread and resolves the options.</summary>
    private TrainingOptions Prepare(int steps, TrainingOptions? options)
    {
        ThrowIfDisposed();
        Guard.Positive(steps, nameof(steps));
        if (Corpus is null)
            throw new InvalidOperationException(
                "The model was loaded without a corpus, so it has nothing to train on: pass the corpus to Load as corpusForResume.");
        var o = options ?? LastTrainingOptions ?? TrainingOptions.Default;
        o.Validate();
        if (o.ExecutionPath == ExecutionPath.Fused && !_model.HasFusedPath)
            Property.Fail(nameof(TrainingOptions.ExecutionPath),
                $"expected Step or Auto for a {Options.Cell} model, which libtorch has no fused kernel for, but got Fused.");
        CheckFits(Corpus, o, nameof(TrainingOptions.Batch));
        return o;
    }

    private static void CheckFits(CharCorpus corpus, TrainingOptions o, string argument)
    {
        var perStream = (corpus.TrainingLength - 1) / o.Batch;
        if (perStream < o.SequenceLength)
            throw new ArgumentException(
                $"{argument}: expected a training text of at least B·T + 1 = {(long)o.Batch * o.SequenceLength + 1} characters "
                + $"for Batch = {o.Batch} and SequenceLength = {o.SequenceLength}, but the corpus has {corpus.TrainingLength}; "
                + "lower Batch or SequenceLength.", argument);
    }

    /// <summary>The options with every setting that does not change the trainer's behaviour reset, so equal keys mean one run.</summary>
    private TrainingOptions RunKey(TrainingOptions o)
    {
        var path = o.PathOn(_model);
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

    private double? ValidationLoss(TrainingOptions o)
    {
        if (Corpus is null || Corpus.ValidationLength < 2) return null;
        var loss = _session.Validate(_session.Trainer is { } t ? t.Value.Config : o.ToCore(1));
        return double.IsNaN(loss) ? null : loss;
    }

    private TrainingSummary TrainOnEngine(int steps, TrainingOptions options, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        return _host.Train("model", steps, () =>
        {
            var config = ConfigFor(options, steps);
            _trainerOptions = options;
            LastTrainingOptions = options;
            return config;
        }, progress, options.EvaluateEvery, cancellationToken);
    }
}
