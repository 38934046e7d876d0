using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;

namespace SeqNets.CSharp;

/// <summary>
/// A sequence-to-sequence model (Sutskever et al. 2014): token embeddings, a multi-layer encoder
/// (optionally bidirectional), a bridge to a multi-layer decoder, attention (Bahdanau or Luong, with a
/// dot, general or additive score) or none, and a readout over the target tokens. It trains on
/// (source, target) token pairs, translates greedily and by beam search with the attention weights of
/// every decoded step, and saves to and loads from checkpoints with its two token vocabularies. It
/// owns native memory: dispose it when done.
/// </summary>
/// <remarks>
/// <para>
/// Each side's vocabulary holds the tokens given plus &lt;pad&gt; (id 0), &lt;bos&gt; (1) and
/// &lt;eos&gt; (2), the tokens in ordinal order after them, so the same tokens always give the same ids.
/// Targets are given without the end token; the model appends it, so a target has at most
/// <see cref="Seq2SeqModelOptions.MaxLength"/> − 1 tokens.
/// </para>
/// <para>
/// Every model does its tensor work on a thread of its own, one call after another; the synchronous
/// methods wait for it and <see cref="TrainAsync(IEnumerable{TranslationPair}, int, TrainingOptions?, IProgress{TrainingProgress}?, CancellationToken)"/>
/// does not. Cancelling a training run is not an error: the run finishes the step it is on and returns
/// a <see cref="TrainingSummary"/> whose <see cref="TrainingSummary.Cancelled"/> is true.
/// </para>
/// </remarks>
public sealed class Seq2SeqModel : IDisposable
{
    private const int TranslationChunk = 256;
    private readonly EngineThread _engine;
    private readonly TrainingSession _session;
    private readonly ModelHost _host;
    private readonly Network _network;
    private readonly TokenVocabulary _source;
    private readonly TokenVocabulary _target;
    private readonly PairData _data;
    private TrainingOptions? _trainerOptions;

    private Seq2SeqModel(EngineThread engine, TrainingSession session, PairData data, TokenVocabulary source, TokenVocabulary target,
        Seq2SeqModelOptions options)
    {
        _engine = engine;
        _session = session;
        _host = new ModelHost(engine, session);
        _network = session.Network;
        _data = data;
        _source = source;
        _target = target;
        Options = options;
    }

    /// <summary>
    /// A new, untrained model over the given source and target tokens, its parameters drawn by a
    /// generator seeded with <see cref="Seq2SeqModelOptions.Seed"/>.
    /// </summary>
    /// <param name="sourceTokens">The tokens sources are made of; repeats are ignored, and &lt;pad&gt;, &lt;bos&gt;, &lt;eos&gt; are added.</param>
    /// <param name="targetTokens">The tokens targets are made of; repeats are ignored, and the specials are added.</param>
    /// <param name="options">The model's shape; null for <see cref="Seq2SeqModelOptions.Default"/>.</param>
    /// <returns>The model, which the caller disposes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sourceTokens"/> or <paramref name="targetTokens"/> is null.</exception>
    /// <exception cref="ArgumentException">A token list is empty or holds null, or an option is invalid (the parameter name is the property's).</exception>
    public static Seq2SeqModel Create(IEnumerable<string> sourceTokens, IEnumerable<string> targetTokens, Seq2SeqModelOptions? options = null)
    {
        var source = Vocabulary(sourceTokens, nameof(sourceTokens));
        var target = Vocabulary(targetTokens, nameof(targetTokens));
        var o = options ?? Seq2SeqModelOptions.Default;
        var spec = Seq2Seq.Spec(o.ToCore(source, target));
        SeqNetsEngine.EnsureLoaded();
        var engine = new EngineThread("SeqNets seq2seq model");
        try
        {
            return engine.Run(() =>
            {
                var data = new PairData();
                var session = new TrainingSession(new Network(spec, o.DType, o.Seed),
                    FSharpOption<ITrainingData>.Some(data), FSharpOption<SeqNets.Vocabulary>.None);
                session.Tokens = FSharpOption<Tuple<TokenVocabulary, TokenVocabulary>>.Some(Tuple.Create(source, target));
                return new Seq2SeqModel(engine, session, data, source, target, o);
            });
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    private static TokenVocabulary Vocabulary(IEnumerable<string> tokens, string argument)
    {
        Guard.NotNull(tokens, argument);
        var list = tokens.ToArray();
        if (list.Length == 0)
            throw new ArgumentException($"{argument}: expected at least one token, but got none.", argument);
        var nul = Array.IndexOf(list, null);
        if (nul >= 0)
            throw new ArgumentException($"{argument}: expected tokens, but the one at position {nul} is null.", argument);
        return TokenVocabularyModule.OfTokens(list);
    }

    /// <summary>
    /// Loads a model saved by <see cref="Save"/> (or by the core's <c>Seq2Seq.save</c>), with its
    /// parameters, its two token vocabularies and its training run: training it again with the saved
    /// options continues exactly where the saved run stopped.
    /// </summary>
    /// <param name="path">The checkpoint file.</param>
    /// <returns>The model, which the caller disposes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="SeqNetsCheckpointException">The file is missing, truncated, corrupt, foreign, of a newer format, or holds no seq2seq model with its token vocabularies.</exception>
    public static Seq2SeqModel Load(string path)
    {
        Guard.NotNull(path, nameof(path));
        SeqNetsEngine.EnsureLoaded();
        var engine = new EngineThread("SeqNets seq2seq model");
        try
        {
            return engine.Run(() => FromCheckpoint(engine, path));
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    private static Seq2SeqModel FromCheckpoint(EngineThread engine, string path)
    {
        CheckpointContents contents;
        try
        {
            contents = Checkpoint.Load(path);
        }
        catch (CheckpointException e)
        {
            throw new SeqNetsCheckpointException(path, SequenceNetwork.CSharpNames(e.Problem), e);
        }
        TrainingSession session;
        Seq2SeqModelOptions options;
        TokenVocabulary source, target;
        var data = new PairData();
        try
        {
            if (contents.Tokens is not { } tokens)
                throw new SeqNetsCheckpointException(path,
                    "holds no token vocabularies: it is not a seq2seq model saved with them; load other networks with SequenceNetwork.Load");
            (source, target) = (tokens.Value.Item1, tokens.Value.Item2);
            options = Describable(path, contents.Network, source, target);
            session = new TrainingSession(contents.Network, FSharpOption<ITrainingData>.Some(data),
                FSharpOption<SeqNets.Vocabulary>.None, FSharpOption<CheckpointContents>.Some(contents));
        }
        catch
        {
            foreach (var s in contents.State) s.Dispose();
            ((IDisposable)contents.Network).Dispose();
            throw;
        }
        TrainingOptions? saved = null;
        if (session.LastConfig is { } config && session.StepCount > 0)
        {
            saved = TrainingOptions.Of(config.Value);
            // The checkpoint records the path it ran on; Auto is the same run where the automatic choice takes that path.
            saved = saved.AutoWhereSame(session.Network);
        }
        return new Seq2SeqModel(engine, session, data, source, target, options)
        {
            LastTrainingOptions = saved,
            _trainerOptions = saved,
        };
    }

    /// <summary>The options of a loaded network, which must rebuild exactly the network the file holds.</summary>
    private static Seq2SeqModelOptions Describable(string path, Network network, TokenVocabulary source, TokenVocabulary target)
    {
        try
        {
            var options = Seq2SeqModelOptions.Of(network);
            var rebuilt = Seq2Seq.Spec(options.ToCore(source, target));
            if (Description.ToJson(rebuilt).ToJsonString() == Description.ToJson(network.Spec).ToJsonString())
                return options;
        }
        catch (ArgumentException)
        {
        }
        throw new SeqNetsCheckpointException(path,
            $"holds an encoder–decoder that Seq2SeqModelOptions cannot describe ({network.Describe()}); load it with SequenceNetwork.Load");
    }

    /// <summary>The model's shape. For a loaded model <see cref="Seq2SeqModelOptions.Seed"/> is 0: its parameters were not drawn from a seed.</summary>
    public Seq2SeqModelOptions Options { get; }

    /// <summary>Every source token in id order: &lt;pad&gt;, &lt;bos&gt;, &lt;eos&gt;, then the tokens in ordinal order.</summary>
    public IReadOnlyList<string> SourceTokens => _source.Tokens;

    /// <summary>Every target token in id order: &lt;pad&gt;, &lt;bos&gt;, &lt;eos&gt;, then the tokens in ordinal order.</summary>
    public IReadOnlyList<string> TargetTokens => _target.Tokens;

    /// <summary>P, the number of scalar parameters: embeddings, encoder, bridge, decoder, attention and readout.</summary>
    public long ParameterCount => _network.ParameterCount;

    /// <summary>
    /// The options of the latest training run, or of the run a loaded checkpoint was saved from; null
    /// for a model never trained. Training uses them when it is given no options.
    /// </summary>
    public TrainingOptions? LastTrainingOptions { get; private set; }

    /// <summary>The number of training steps the model has taken, counting those recorded in a loaded checkpoint.</summary>
    public int StepCount => _session.StepCount;

    /// <summary>Describes the model's network on one line; checkpoints record the same text.</summary>
    /// <returns>The description.</returns>
    public string Describe() => _network.Describe();

    /// <summary>Describes the model, as <see cref="Describe"/> does.</summary>
    /// <returns>The description.</returns>
    public override string ToString() => Describe();

    /// <summary>A text as tokens of one character (one Unicode scalar value, so an emoji is one token) each.</summary>
    /// <param name="text">The text.</param>
    /// <returns>The characters, as strings.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    public static string[] Characters(string text)
    {
        Guard.NotNull(text, nameof(text));
        return text.EnumerateRunes().Select(r => r.ToString()).ToArray();
    }

    /// <summary>
    /// Trains the model for <paramref name="steps"/> steps on batches of <see cref="TrainingOptions.Batch"/>
    /// pairs drawn from <paramref name="pairs"/> (batch k is the same for a seed, so a resumed run reads
    /// what the uninterrupted one would), and waits for the run. Called again with equal options it
    /// continues the same run (optimizer state, position); with other options it starts a new run on
    /// the same parameters.
    /// </summary>
    /// <param name="pairs">The training pairs, at least one; every source non-empty, every token known, every target shorter than <see cref="Seq2SeqModelOptions.MaxLength"/>.</param>
    /// <param name="steps">The number of steps, positive.</param>
    /// <param name="options">How to train (full BPTT); null for <see cref="LastTrainingOptions"/>, else <see cref="TrainingOptions.Default"/> with full BPTT.</param>
    /// <param name="progress">Receives a report after every step, on the model's thread; null for none.</param>
    /// <param name="cancellationToken">Stops the run after the current step; the run then returns normally with <see cref="TrainingSummary.Cancelled"/> set.</param>
    /// <returns>What the run did.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="pairs"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="pairs"/> is empty or holds a pair that does not fit (the message names the pair and the token), <paramref name="steps"/> is not positive, or an option does not fit (the parameter name is the property's).</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public TrainingSummary Train(IEnumerable<TranslationPair> pairs, int steps, TrainingOptions? options = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var (make, o) = PrepareOnPairs(pairs, steps, options);
        return _engine.Run(() => TrainOnEngine(make, steps, o, progress, cancellationToken));
    }

    /// <summary>
    /// Trains the model for <paramref name="steps"/> steps on the batches <paramref name="batches"/>
    /// makes: batch k is <c>batches(k)</c>, k the run's position (0 at a new run's first step, going
    /// on across calls that continue the same run), and should be the same every time it is asked for,
    /// so that a resumed run reads what the uninterrupted one would.
    /// Otherwise as <see cref="Train(IEnumerable{TranslationPair}, int, TrainingOptions?, IProgress{TrainingProgress}?, CancellationToken)"/>.
    /// </summary>
    /// <param name="batches">Makes batch k: at least one pair, each fitting the model.</param>
    /// <param name="steps">The number of steps, positive.</param>
    /// <param name="options">How to train (full BPTT); null as for the other overload.</param>
    /// <param name="progress">Receives a report after every step, on the model's thread; null for none.</param>
    /// <param name="cancellationToken">Stops the run after the current step.</param>
    /// <returns>What the run did.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="batches"/> is null.</exception>
    /// <exception cref="ArgumentException">A batch is null, empty or holds a pair that does not fit (parameter name <c>batches</c>), <paramref name="steps"/> is not positive, or an option does not fit.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public TrainingSummary Train(Func<int, IEnumerable<TranslationPair>> batches, int steps, TrainingOptions? options = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var (make, o) = PrepareOnBatches(batches, steps, options);
        return _engine.Run(() => TrainOnEngine(make, steps, o, progress, cancellationToken));
    }

    /// <summary>
    /// Trains the model on pairs as <see cref="Train(IEnumerable{TranslationPair}, int, TrainingOptions?, IProgress{TrainingProgress}?, CancellationToken)"/>
    /// does, on the model's own thread, and returns at once with a task of the run. Bad arguments are
    /// reported before the task starts.
    /// </summary>
    /// <param name="pairs">The training pairs.</param>
    /// <param name="steps">The number of steps, positive.</param>
    /// <param name="options">How to train; null as for <c>Train</c>.</param>
    /// <param name="progress">Receives a report after every step; a <see cref="Progress{T}"/> posts it to the caller's context.</param>
    /// <param name="cancellationToken">Stops the run after the current step; the task then completes normally with <see cref="TrainingSummary.Cancelled"/> set.</param>
    /// <returns>A task that completes with what the run did.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="pairs"/> is null.</exception>
    /// <exception cref="ArgumentException">As for <c>Train</c>.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public Task<TrainingSummary> TrainAsync(IEnumerable<TranslationPair> pairs, int steps, TrainingOptions? options = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var (make, o) = PrepareOnPairs(pairs, steps, options);
        return _engine.RunAsync(() => TrainOnEngine(make, steps, o, progress, cancellationToken));
    }

    /// <summary>
    /// Trains the model on the batches a function makes, as the matching <c>Train</c> overload does,
    /// on the model's own thread, and returns at once with a task of the run.
    /// </summary>
    /// <param name="batches">Makes batch k.</param>
    /// <param name="steps">The number of steps, positive.</param>
    /// <param name="options">How to train; null as for <c>Train</c>.</param>
    /// <param name="progress">Receives a report after every step.</param>
    /// <param name="cancellationToken">Stops the run after the current step.</param>
    /// <returns>A task that completes with what the run did.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="batches"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="steps"/> is not positive, or an option does not fit.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public Task<TrainingSummary> TrainAsync(Func<int, IEnumerable<TranslationPair>> batches, int steps, TrainingOptions? options = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var (make, o) = PrepareOnBatches(batches, steps, options);
        return _engine.RunAsync(() => TrainOnEngine(make, steps, o, progress, cancellationToken));
    }

    /// <summary>
    /// The greedy translations of <paramref name="sources"/>: each decoded to the end token or the
    /// maximum length, with the attention weights of every decoded step. A source gives exactly what
    /// it gives alone, whatever the others' lengths.
    /// </summary>
    /// <param name="sources">The sources, each a non-empty list of known source tokens.</param>
    /// <returns>One translation per source, in order.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sources"/> is null.</exception>
    /// <exception cref="ArgumentException">A source is null or empty, or holds a token outside the source vocabulary (the message names it and its position).</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public IReadOnlyList<Translation> Translate(IEnumerable<IReadOnlyList<string>> sources)
    {
        ThrowIfDisposed();
        Guard.NotNull(sources, nameof(sources));
        var rows = sources.ToArray();
        for (var i = 0; i < rows.Length; i++) CheckSource(rows[i], nameof(sources), $"source {i}");
        return _engine.Run(() =>
        {
            var all = new List<Translation>(rows.Length);
            foreach (var chunk in rows.Chunk(TranslationChunk)) all.AddRange(TranslateOnEngine(chunk));
            return (IReadOnlyList<Translation>)all.AsReadOnly();
        });
    }

    /// <summary>The greedy translation of one source, as <see cref="Translate(IEnumerable{IReadOnlyList{string}})"/> gives it.</summary>
    /// <param name="source">A non-empty list of known source tokens.</param>
    /// <returns>The translation.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="source"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="source"/> is empty or holds an unknown token.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public Translation Translate(IReadOnlyList<string> source)
    {
        ThrowIfDisposed();
        Guard.NotNull(source, nameof(source));
        CheckSource(source, nameof(source), "the source");
        return _engine.Run(() => TranslateOnEngine([source])[0]);
    }

    /// <summary>The share of <paramref name="pairs"/> whose greedy translation is exactly the target, token for token.</summary>
    /// <param name="pairs">The pairs, at least one, every source non-empty and made of known tokens.</param>
    /// <returns>The exact-match share, in [0, 1].</returns>
    /// <exception cref="ArgumentNullException"><paramref name="pairs"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="pairs"/> is empty, or a source is empty or holds an unknown token.</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public double ExactMatch(IEnumerable<TranslationPair> pairs)
    {
        ThrowIfDisposed();
        Guard.NotNull(pairs, nameof(pairs));
        var rows = pairs.ToArray();
        if (rows.Length == 0) throw new ArgumentException("pairs: expected at least one pair, but got none.", nameof(pairs));
        for (var i = 0; i < rows.Length; i++)
        {
            if (rows[i] is null) throw new ArgumentException($"pairs: expected pairs, but pair {i} is null.", nameof(pairs));
            CheckSource(rows[i].Source, nameof(pairs), $"pair {i}");
        }
        var outputs = Translate(rows.Select(p => p.Source));
        return rows.Zip(outputs).Count(x => x.First.Target.SequenceEqual(x.Second.Tokens, StringComparer.Ordinal)) / (double)rows.Length;
    }

    /// <summary>
    /// Beam search for one source: at every step each of the <paramref name="width"/> live hypotheses is
    /// extended by every target token and the best are kept; a hypothesis that ends with the end token
    /// leaves the beam (so it is returned once); the search stops when <paramref name="width"/> have
    /// ended or at the maximum length. Width 1 is greedy decoding: the same tokens as <see cref="Translate(IReadOnlyList{string})"/>.
    /// </summary>
    /// <param name="source">A non-empty list of known source tokens.</param>
    /// <param name="width">k, the hypotheses kept alive at every step, at least 1.</param>
    /// <param name="nBest">How many of the best hypotheses to return, in [1, <paramref name="width"/>].</param>
    /// <param name="alpha">α of the length normalisation, finite and ≥ 0.</param>
    /// <param name="normalization">How hypotheses of different lengths are ranked.</param>
    /// <param name="maxLength">The longest hypothesis, the end token included; null for <see cref="Seq2SeqModelOptions.MaxLength"/>.</param>
    /// <returns>The best hypotheses, best first; unfinished ones only when none ended.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="source"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="source"/> is empty or holds an unknown token, or a number is out of range (the parameter name says which).</exception>
    /// <exception cref="ObjectDisposedException">The model has been disposed.</exception>
    public IReadOnlyList<BeamHypothesis> Beam(IReadOnlyList<string> source, int width = 5, int nBest = 1, double alpha = 0.6,
        LengthNormalization normalization = LengthNormalization.Gnmt, int? maxLength = null)
    {
        ThrowIfDisposed();
        Guard.NotNull(source, nameof(source));
        CheckSource(source, nameof(source), "the source");
        if (width < 1)
            throw new ArgumentException($"width: expected a beam width of at least 1, but got {width}.", nameof(width));
        if (nBest < 1 || nBest > width)
            throw new ArgumentException($"nBest: expected 1 <= nBest <= width = {width}, but got {nBest}.", nameof(nBest));
        if (!(alpha >= 0) || double.IsInfinity(alpha))
            throw new ArgumentException($"alpha: expected a finite value >= 0, but got {alpha}.", nameof(alpha));
        Guard.Defined(normalization, nameof(normalization));
        if (maxLength is int m && m < 1)
            throw new ArgumentException($"maxLength: expected a positive length or null, but got {m}.", nameof(maxLength));
        var beam = new BeamOptions(width, nBest, alpha,
            normalization switch
            {
                LengthNormalization.None => SeqNets.LengthNormalization.NoNormalization,
                LengthNormalization.Power => SeqNets.LengthNormalization.Power,
                _ => SeqNets.LengthNormalization.Gnmt,
            },
            maxLength is int l ? FSharpOption<int>.Some(l) : FSharpOption<int>.None);
        var tokens = ListModule.OfSeq(source.ToArray());
        return _engine.Run(() =>
        {
            var found = Seq2Seq.Beam(_network, _source, tokens, beam);
            return (IReadOnlyList<BeamHypothesis>)found
                .Select(h => new BeamHypothesis(Decode(h.Tokens, h.Tokens.Length), h.LogProbability, h.Score, h.Finished,
                    h.Attention.Select(r => (double[])r.Clone()).ToArray()))
                .ToArray().AsReadOnly();
        });
    }

    /// <summary>
    /// Saves the model (its description and parameters), its two token vocabularies and the state of
    /// its training run (options, optimizer, position, random state) to <paramref name="path"/>. The
    /// file is written under a temporary name and then renamed, so an interrupted save leaves any
    /// earlier file intact; a file that could not be read back is never written.
    /// </summary>
    /// <param name="path">The checkpoint file; its folder is created when missing.</param>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is empty.</exception>
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

    /// <summary>Runs <paramref name="work"/> on the model's thread with the core network; for the tests.</summary>
    internal T WithCore<T>(Func<Network, T> work) => _engine.Run(() => work(_network));

    /// <summary>
    /// Frees the model's native memory and ends its thread. A training run in progress stops after its
    /// current step first; the model cannot be used afterwards.
    /// </summary>
    public void Dispose() => _host.Dispose();

    private void ThrowIfDisposed() => _host.ThrowIfDisposed(this);

    // ---- checks ----

    private void CheckSource(IReadOnlyList<string>? source, string argument, string what)
    {
        if (source is null)
            throw new ArgumentException($"{argument}: expected a list of source tokens, but {what} is null.", argument);
        if (source.Count == 0)
            throw new ArgumentException($"{argument}: expected a non-empty source, but {what} has no tokens.", argument);
        for (var j = 0; j < source.Count; j++)
            if (!_source.Contains(source[j]))
                throw new ArgumentException(
                    $"{argument}: {what} has the token '{source[j]}' at position {j}, which is not in the source vocabulary of {_source.Size} tokens.",
                    argument);
    }

    private void CheckPair(TranslationPair? pair, string argument, string what)
    {
        if (pair is null) throw new ArgumentException($"{argument}: expected pairs, but {what} is null.", argument);
        CheckSource(pair.Source, argument, what);
        var t = pair.Target;
        if (t.Count + 1 > Options.MaxLength)
            throw new ArgumentException(
                $"{argument}: expected targets of at most MaxLength − 1 = {Options.MaxLength - 1} tokens (the end token makes {Options.MaxLength}), but {what} has {t.Count}.",
                argument);
        for (var j = 0; j < t.Count; j++)
            if (!_target.Contains(t[j]))
                throw new ArgumentException(
                    $"{argument}: {what} has the target token '{t[j]}' at position {j}, which is not in the target vocabulary of {_target.Size} tokens.",
                    argument);
    }

    private TranslationPair[] CheckPairs(IEnumerable<TranslationPair>? pairs, string argument, string batch)
    {
        if (pairs is null) throw new ArgumentException($"{argument}: expected pairs, but {batch} is null.", argument);
        var rows = pairs.ToArray();
        if (rows.Length == 0) throw new ArgumentException($"{argument}: expected at least one pair, but {batch} has none.", argument);
        for (var i = 0; i < rows.Length; i++) CheckPair(rows[i], argument, $"pair {i}{(batch.Length == 0 ? "" : " of " + batch)}");
        return rows;
    }

    // ---- training ----

    /// <summary>The batches of a run; the session's data reads whichever the current run set.</summary>
    private sealed class PairData : ITrainingData
    {
        public Func<int, TrainingConfig, SeqNets.Batch>? Make { get; set; }

        public IBatchSource Source(TrainingConfig config) =>
            new GeneratedBatches(1_000_000, config.Batch, FuncConvert.FromFunc<int, SeqNets.Batch>(k =>
                (Make ?? throw new InvalidOperationException("The model has no pairs to train on: pass them to Train."))(k, config)));

        public double Validate(Network network, SeqNets.ExecutionPath path, TrainingConfig config) => double.NaN;
    }

    private SeqNets.Batch CoreBatch(IEnumerable<TranslationPair> rows) =>
        Seq2Seq.Batch(_source, _target, Options.MaxLength,
            ListModule.OfSeq(rows.Select(p => Tuple.Create(ListModule.OfSeq(p.Source), ListModule.OfSeq(p.Target)))));

    private (Func<int, TrainingConfig, SeqNets.Batch>, TrainingOptions) PrepareOnPairs(IEnumerable<TranslationPair> pairs, int steps, TrainingOptions? options)
    {
        ThrowIfDisposed();
        Guard.NotNull(pairs, nameof(pairs));
        var rows = CheckPairs(pairs, nameof(pairs), "");
        var o = Prepare(steps, options);
        return ((k, config) =>
        {
            // Batch k draws Batch pairs with replacement from a generator seeded by the run's seed and k.
            var rng = new Random((int)((config.Seed * 6364136223846793005UL + (ulong)k * 1442695040888963407UL + 1UL) >> 33));
            return CoreBatch(Enumerable.Range(0, config.Batch).Select(_ => rows[rng.Next(rows.Length)]));
        }, o);
    }

    private (Func<int, TrainingConfig, SeqNets.Batch>, TrainingOptions) PrepareOnBatches(Func<int, IEnumerable<TranslationPair>> batches, int steps, TrainingOptions? options)
    {
        ThrowIfDisposed();
        Guard.NotNull(batches, nameof(batches));
        var o = Prepare(steps, options);
        return ((k, _) => CoreBatch(CheckPairs(batches(k), nameof(batches), $"batch {k}")), o);
    }

    private TrainingOptions Prepare(int steps, TrainingOptions? options)
    {
        Guard.Positive(steps, nameof(steps));
        var o = options ?? LastTrainingOptions ?? TrainingOptions.Default.WithFullBptt();
        o.Validate();
        if (o.Bptt != BpttStrategy.Full)
            Property.Fail(nameof(TrainingOptions.Bptt),
                $"expected Full for a seq2seq model, whose encoder reads the whole source and whose decoder the whole target, but got {o.Bptt}.");
        if (o.ExecutionPath == ExecutionPath.Fused && !_network.HasFusedPath)
            Property.Fail(nameof(TrainingOptions.ExecutionPath),
                $"expected Step or Auto for this model, whose layers no libtorch kernel runs ({Describe()}), but got Fused.");
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
            Tau = d.Tau,
            MeanLength = d.MeanLength,
            SequenceLength = d.SequenceLength,
            Momentum = o.Optimizer == OptimizerKind.Sgd ? o.Momentum : d.Momentum,
            Alpha = o.Optimizer == OptimizerKind.RmsProp ? o.Alpha : d.Alpha,
            DecayEvery = o.Schedule == LearningRateSchedule.StepDecay ? o.DecayEvery : d.DecayEvery,
            DecayFactor = o.Schedule == LearningRateSchedule.StepDecay ? o.DecayFactor : d.DecayFactor,
            CosineSteps = o.Schedule == LearningRateSchedule.Cosine ? o.CosineSteps : d.CosineSteps,
            CosineFloor = o.Schedule == LearningRateSchedule.Cosine ? o.CosineFloor : d.CosineFloor,
            ClipThreshold = o.Clipping != ClippingKind.None ? o.ClipThreshold : d.ClipThreshold,
        };
    }

    private TrainingConfig ConfigFor(TrainingOptions options, int steps)
    {
        if (_trainerOptions is not null && RunKey(_trainerOptions) == RunKey(options))
        {
            if (_session.Trainer is { } t) return t.Value.Config;
            if (_session.LastConfig is { } c) return c.Value;
        }
        return options.ToCore(steps);
    }

    private TrainingSummary TrainOnEngine(Func<int, TrainingConfig, SeqNets.Batch> make, int steps, TrainingOptions options,
        IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        return _host.Train("model", steps, () =>
        {
            var config = ConfigFor(options, steps);
            _trainerOptions = options;
            LastTrainingOptions = options;
            _data.Make = make;
            return config;
        }, progress, 0, cancellationToken);
    }

    // ---- decoding ----

    /// <summary>The tokens of ids up to (without) the first end id, skipping &lt;pad&gt; and &lt;bos&gt;.</summary>
    private string[] Decode(long[] ids, int count)
    {
        var tokens = new List<string>();
        for (var i = 0; i < count && ids[i] != TokenVocabulary.Eos; i++)
            if (ids[i] != TokenVocabulary.Pad && ids[i] != TokenVocabulary.Bos) tokens.Add(_target.Token(ids[i]));
        return tokens.ToArray();
    }

    private Translation[] TranslateOnEngine(IReadOnlyList<string>[] sources)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var b = Seq2Seq.Batch(_source, _target, int.MaxValue,
            ListModule.OfSeq(sources.Select(s => Tuple.Create(ListModule.OfSeq(s), FSharpList<string>.Empty))));
        var p = Heads.Predict(_network, _network.DefaultPath, b.Inputs, b.Lengths, FSharpOption<int>.None);
        var ids = p.Values; // [T'; B]
        var T = (int)ids.shape[0];
        var lengths = p.Lengths!.Value;
        var sourceLengths = b.Lengths!.Value;
        var all = ids.t().contiguous().data<long>().ToArray(); // [B; T'] row-major
        var attention = p.Attention is { } a ? a.Value.to_type(torch.float64).permute(1, 0, 2).contiguous() : null; // [B; T'; S]
        var S = attention is null ? 0 : (int)attention.shape[2];
        var weights = attention?.data<double>().ToArray();
        var result = new Translation[sources.Length];
        for (var r = 0; r < sources.Length; r++)
        {
            var n = (int)lengths[r];
            var row = all.AsSpan(r * T, n).ToArray();
            var finished = n > 0 && row[n - 1] == TokenVocabulary.Eos;
            var rows = weights is null
                ? []
                : Enumerable.Range(0, n).Select(t => weights.AsSpan((r * T + t) * S, (int)sourceLengths[r]).ToArray()).ToArray();
            result[r] = new Translation(Decode(row, n), finished, rows);
        }
        return result;
    }
}
