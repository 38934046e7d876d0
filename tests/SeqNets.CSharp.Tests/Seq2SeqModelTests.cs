using System.Diagnostics;
using SeqNets.CSharp;
using Xunit;
using Xunit.Abstractions;

namespace SeqNets.CSharp.Tests;

/// <summary>
/// The reversal task (Sutskever et al. 2014's sanity check): sources of 3–7 letters from six, the
/// target the same letters reversed; held-out sources never appear in training. A small attention
/// model is trained once, seeded, and shared by the tests that read it.
/// </summary>
public sealed class ReversalFixture : IDisposable
{
    public static readonly string[] Letters = ["a", "b", "c", "d", "e", "f"];

    /// <summary>E = 12, H = 20, one bidirectional LSTM layer, Luong attention (general score, input feeding), targets up to 9 tokens.</summary>
    public static readonly Seq2SeqModelOptions Options = Seq2SeqModelOptions.Default with
    {
        EmbeddingSize = 12, HiddenSize = 20, MaxLength = 9, Seed = 3,
    };

    /// <summary>B = 24 pairs per step, Adam at 0.01.</summary>
    public static readonly TrainingOptions Training = TrainingOptions.Default.WithFullBptt().WithBatch(24).WithLearningRate(0.01).WithSeed(2);

    public const int Steps = 250;

    public static TranslationPair Reversal(string s) =>
        TranslationPair.Characters(s, new string(s.Reverse().ToArray()));

    public static List<string> Sources(int seed, int count)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count)
            .Select(_ => new string(Enumerable.Range(0, rng.Next(3, 8)).Select(_ => (char)('a' + rng.Next(6))).ToArray()))
            .ToList();
    }

    public ReversalFixture()
    {
        HeldOut = Sources(11, 400).Distinct().Take(200).Select(Reversal).ToList();
        var excluded = HeldOut.Select(p => string.Concat(p.Source)).ToHashSet();
        TrainingPairs = Sources(12, 4000).Where(s => !excluded.Contains(s)).Select(Reversal).ToList();
        Model = Seq2SeqModel.Create(Letters, Letters, Options);
        var clock = Stopwatch.StartNew();
        Summary = Model.Train(TrainingPairs, Steps, Training);
        TrainingTime = clock.Elapsed;
    }

    public List<TranslationPair> HeldOut { get; }
    public List<TranslationPair> TrainingPairs { get; }
    public Seq2SeqModel Model { get; }
    public TrainingSummary Summary { get; }
    public TimeSpan TrainingTime { get; }

    public void Dispose() => Model.Dispose();
}

/// <summary>
/// Sequence to sequence from C#, as a C# user writes it: the reversal task to a stated bar on held-out
/// sources, greedy translation against beam width 1, the attention weights, checkpoints with both
/// vocabularies, asynchronous training and cancellation, every attention style, and the messages of
/// bad input.
/// </summary>
public class Seq2SeqModelTests(ReversalFixture reversal, ITestOutputHelper output) : IClassFixture<ReversalFixture>
{
    private static void Names(string name, Action action, string? mentions = null)
    {
        var e = Assert.ThrowsAny<ArgumentException>(action);
        Assert.Equal(name, e.ParamName);
        Assert.StartsWith(name + ":", e.Message);
        if (mentions is not null) Assert.Contains(mentions, e.Message);
    }

    [Fact]
    public void Reversal_reaches_95_percent_exact_match_on_held_out_sources_after_250_steps()
    {
        var exact = reversal.Model.ExactMatch(reversal.HeldOut);
        output.WriteLine($"exact match {exact:P1} on {reversal.HeldOut.Count} held-out sources after {ReversalFixture.Steps} steps "
            + $"({reversal.TrainingTime.TotalSeconds:F1} s, last loss {reversal.Summary.LastLoss:F4})");
        Assert.Equal(ReversalFixture.Steps, reversal.Summary.Steps);
        Assert.False(reversal.Summary.Cancelled);
        Assert.True(exact >= 0.95, $"exact match {exact:P1} on held-out sources, bar 95%");
        // The pairs never met in training.
        var seen = reversal.TrainingPairs.Select(p => string.Concat(p.Source)).ToHashSet();
        Assert.DoesNotContain(reversal.HeldOut, p => seen.Contains(string.Concat(p.Source)));
    }

    [Fact]
    public void Translation_is_beam_search_of_width_1_and_its_attention_rows_are_distributions_over_the_source()
    {
        var sources = reversal.HeldOut.Take(40).Select(p => p.Source).ToList();
        var greedy = reversal.Model.Translate(sources);
        Assert.Equal(sources.Count, greedy.Count);
        for (var i = 0; i < sources.Count; i++)
        {
            var beam = reversal.Model.Beam(sources[i], width: 1, nBest: 1, normalization: LengthNormalization.None);
            var h = Assert.Single(beam);
            Assert.Equal(greedy[i].Tokens, h.Tokens);
            Assert.Equal(greedy[i].Finished, h.Finished);
            Assert.Equal(greedy[i].Attention.Length, h.Attention.Length);
            for (var t = 0; t < h.Attention.Length; t++)
                Assert.Equal(greedy[i].Attention[t], h.Attention[t], (a, b) => Math.Abs(a - b) < 1e-5);
            // Attention: one row per decoded step (the tokens and the end), each summing to 1 over the source.
            var rows = greedy[i].Attention;
            Assert.Equal(greedy[i].Tokens.Count + (greedy[i].Finished ? 1 : 0), rows.Length);
            Assert.All(rows, r =>
            {
                Assert.Equal(sources[i].Count, r.Length);
                Assert.InRange(r.Sum(), 1 - 1e-5, 1 + 1e-5);
            });
            // A single source translates as it does among others.
            Assert.Equal(greedy[i].Tokens, reversal.Model.Translate(sources[i]).Tokens);
        }
        // Reversal attends to the mirrored position: output step t looks mostly at source S − 1 − t.
        var aligned = greedy.Zip(sources)
            .SelectMany(x => x.First.Attention.Take(x.Second.Count).Select((row, t) => Array.IndexOf(row, row.Max()) == x.Second.Count - 1 - t))
            .Average(b => b ? 1.0 : 0.0);
        output.WriteLine($"{aligned:P1} of output steps attend most to the mirrored source position");
        Assert.True(aligned > 0.5, $"{aligned:P1} of steps attend most to the mirrored source position");
    }

    [Fact]
    public void Beam_search_returns_distinct_ranked_hypotheses_with_their_scores()
    {
        var source = reversal.HeldOut[0].Source;
        var found = reversal.Model.Beam(source, width: 4, nBest: 3, alpha: 0.7, normalization: LengthNormalization.Gnmt);
        Assert.Equal(3, found.Count);
        Assert.Equal(found.Count, found.Select(h => string.Join(" ", h.Tokens)).Distinct().Count());
        for (var i = 1; i < found.Count; i++) Assert.True(found[i - 1].Score >= found[i].Score, "best first");
        foreach (var h in found)
        {
            Assert.True(h.LogProbability <= 0);
            var length = h.Tokens.Count + (h.Finished ? 1 : 0);
            Assert.Equal(h.LogProbability / Math.Pow((5.0 + length) / 6.0, 0.7), h.Score, 1e-9);
        }
        Assert.Equal(reversal.HeldOut[0].Target, found[0].Tokens);
    }

    [Fact]
    public void A_saved_and_loaded_model_translates_the_same_and_finds_the_same_hypotheses()
    {
        using var folder = new TempFolder();
        var path = folder.File("reverse.ckpt");
        reversal.Model.Save(path);
        using var loaded = Seq2SeqModel.Load(path);
        Assert.Equal(reversal.Model.Options with { Seed = 0 }, loaded.Options);
        Assert.Equal(reversal.Model.SourceTokens, loaded.SourceTokens);
        Assert.Equal(reversal.Model.TargetTokens, loaded.TargetTokens);
        Assert.Equal(reversal.Model.Describe(), loaded.Describe());
        Assert.Equal(reversal.Model.StepCount, loaded.StepCount);
        Assert.Equal(reversal.Model.LastTrainingOptions, loaded.LastTrainingOptions);
        var sources = reversal.HeldOut.Take(30).Select(p => p.Source).ToList();
        var before = reversal.Model.Translate(sources);
        var after = loaded.Translate(sources);
        for (var i = 0; i < sources.Count; i++)
        {
            Assert.Equal(before[i].Tokens, after[i].Tokens);
            Assert.Equal(before[i].Attention, after[i].Attention);
        }
        foreach (var s in sources.Take(5))
        {
            var a = reversal.Model.Beam(s, width: 3, nBest: 3);
            var b = loaded.Beam(s, width: 3, nBest: 3);
            Assert.Equal(a.Select(h => (string.Join(" ", h.Tokens), h.LogProbability, h.Score, h.Finished)),
                b.Select(h => (string.Join(" ", h.Tokens), h.LogProbability, h.Score, h.Finished)));
        }
    }

    [Fact]
    public void A_run_resumed_from_a_checkpoint_takes_the_same_steps_as_the_uninterrupted_run()
    {
        using var folder = new TempFolder();
        var path = folder.File("run.ckpt");
        var pairs = reversal.TrainingPairs.Take(300).ToList();
        var options = ReversalFixture.Options with { HiddenSize = 7, EmbeddingSize = 5, TeacherForcing = 0.5, Attention = AttentionStyle.Bahdanau, Score = AttentionScore.Additive };
        var training = TrainingOptions.Default.WithFullBptt().WithBatch(6).WithLearningRate(0.01);
        using var model = Seq2SeqModel.Create(ReversalFixture.Letters, ReversalFixture.Letters, options);
        model.Train(pairs, 4, training);
        model.Save(path);
        var straight = new Recorder();
        model.Train(pairs, 3, training, straight);
        using var resumed = Seq2SeqModel.Load(path);
        Assert.Equal(4, resumed.StepCount);
        var again = new Recorder();
        resumed.Train(pairs, 3, training, again);
        Assert.Equal(straight.Reports.Select(r => r.Loss), again.Reports.Select(r => r.Loss));
        Assert.Equal(7, resumed.StepCount);
    }

    [Fact]
    public async Task Training_reports_progress_runs_asynchronously_and_stops_on_cancellation()
    {
        using var model = Seq2SeqModel.Create(ReversalFixture.Letters, ReversalFixture.Letters,
            ReversalFixture.Options with { HiddenSize = 6, EmbeddingSize = 5 });
        var pairs = reversal.TrainingPairs.Take(100).ToList();
        using var cts = new CancellationTokenSource();
        var progress = new Recorder(p => { if (p.Step == 3) cts.Cancel(); });
        var summary = model.Train(pairs, 50, TrainingOptions.Default.WithFullBptt().WithBatch(5), progress, cts.Token);
        Assert.True(summary.Cancelled);
        Assert.Equal(3, summary.Steps);
        Assert.Equal([1, 2, 3], progress.Reports.Select(r => r.Step));
        Assert.All(progress.Reports, r => Assert.True(double.IsFinite(r.Loss) && r.TotalSteps == 50));

        // The callback form, asynchronously: batch k is what the function makes for k.
        var asked = new List<int>();
        var next = await model.TrainAsync(k => { asked.Add(k); return pairs.Skip(k * 4 % 90).Take(4); }, 4,
            TrainingOptions.Default.WithFullBptt().WithBatch(4));
        Assert.False(next.Cancelled);
        Assert.Equal(4, next.Steps);
        Assert.Equal([0, 1, 2, 3], asked);
        Assert.Equal(7, model.StepCount);
    }

    [Theory]
    [InlineData(AttentionStyle.None, AttentionScore.General, false)]
    [InlineData(AttentionStyle.Bahdanau, AttentionScore.Additive, true)]
    [InlineData(AttentionStyle.Luong, AttentionScore.Dot, false)]
    [InlineData(AttentionStyle.Luong, AttentionScore.General, true)]
    public void Every_attention_style_and_score_trains_translates_and_loads_back(AttentionStyle style, AttentionScore score, bool bidirectional)
    {
        using var folder = new TempFolder();
        var options = ReversalFixture.Options with
        {
            HiddenSize = 6, EmbeddingSize = 5, Attention = style, Score = score, BidirectionalEncoder = bidirectional,
            InputFeeding = false, ReverseSource = true, TeacherForcing = 0.75, Cell = CellKind.Gru, Layers = 2,
        };
        using var model = Seq2SeqModel.Create(ReversalFixture.Letters, ReversalFixture.Letters, options);
        var s = model.Train(reversal.TrainingPairs.Take(50), 3, TrainingOptions.Default.WithFullBptt().WithBatch(7));
        Assert.Equal(3, s.Steps);
        var t = model.Translate(reversal.HeldOut[1].Source);
        if (style == AttentionStyle.None) Assert.Empty(t.Attention);
        else Assert.All(t.Attention, r => Assert.Equal(reversal.HeldOut[1].Source.Count, r.Length));
        var path = folder.File("m.ckpt");
        model.Save(path);
        using var back = Seq2SeqModel.Load(path);
        // A loaded model reports input feeding as its default where the style does not use it.
        Assert.Equal(options with { Seed = 0, InputFeeding = style != AttentionStyle.Luong }, back.Options);
        Assert.Equal(t.Tokens, back.Translate(reversal.HeldOut[1].Source).Tokens);
    }

    [Fact]
    public void Bad_input_names_the_argument_what_was_expected_and_what_arrived()
    {
        var m = reversal.Model;
        Names("source", () => m.Translate(["a", "z"]), "'z' at position 1");
        Names("source", () => m.Translate(Array.Empty<string>()), "non-empty source");
        Names("sources", () => m.Translate([new[] { "a" }, new[] { "b", "q" }]), "source 1 has the token 'q'");
        Names("sources", () => m.Translate([new[] { "a" }, Array.Empty<string>()]), "source 1 has no tokens");
        Names("width", () => m.Beam(["a", "b"], width: 0), "at least 1, but got 0");
        Names("nBest", () => m.Beam(["a", "b"], width: 2, nBest: 3), "but got 3");
        Names("alpha", () => m.Beam(["a"], alpha: double.NaN));
        Names("maxLength", () => m.Beam(["a"], maxLength: 0));
        Names("source", () => m.Beam(["x"], width: 2), "'x' at position 0");
        Names("pairs", () => m.Train([TranslationPair.Characters("abc", "abcdefabc")], 1), "at most MaxLength − 1 = 8 tokens");
        Names("pairs", () => m.Train([TranslationPair.Characters("", "a")], 1), "pair 0 has no tokens");
        Names("pairs", () => m.Train([ReversalFixture.Reversal("ab"), TranslationPair.Characters("ab", "zz")], 1), "pair 1 has the target token 'z'");
        Names("pairs", () => m.Train(Array.Empty<TranslationPair>(), 1), "at least one pair");
        Names("steps", () => m.Train([ReversalFixture.Reversal("ab")], 0));
        Names("Bptt", () => m.Train([ReversalFixture.Reversal("ab")], 1, TrainingOptions.Default), "expected Full");
        Names("batches", () => m.Train(_ => [TranslationPair.Characters("ab", "zz")], 1), "the target token 'z'");
        Names("batches", () => m.Train(_ => [], 1), "at least one pair");
        Names("sourceTokens", () => Seq2SeqModel.Create([], ["a"]), "at least one token");
        Names("MaxLength", () => Seq2SeqModel.Create(["a"], ["a"], Seq2SeqModelOptions.Default with { MaxLength = 1 }));
        Names("TeacherForcing", () => Seq2SeqModel.Create(["a"], ["a"], Seq2SeqModelOptions.Default with { TeacherForcing = 1.5 }));
        Names("Score", () => Seq2SeqModel.Create(["a"], ["a"], Seq2SeqModelOptions.Default with { Score = AttentionScore.Dot }), "Dot");
        Assert.Throws<ArgumentNullException>(() => m.Translate((IReadOnlyList<string>)null!));
        // The model is untouched by all of it.
        Assert.Equal(ReversalFixture.Steps, m.StepCount);
    }

    [Fact]
    public void A_file_that_is_not_a_seq2seq_model_is_a_checkpoint_exception_naming_the_problem()
    {
        using var folder = new TempFolder();
        var missing = folder.File("none.ckpt");
        var e = Assert.Throws<SeqNetsCheckpointException>(() => Seq2SeqModel.Load(missing));
        Assert.Equal(missing, e.Path);
        Assert.Contains("no such file", e.Problem);

        var net = folder.File("net.ckpt");
        using (var network = SequenceNetwork.Create(SequenceNetworkOptions.NextToken(5, [RecurrentLayer.Forward(RecurrentCell.Gru(5, 3))])))
            network.Save(net);
        var other = Assert.Throws<SeqNetsCheckpointException>(() => Seq2SeqModel.Load(net));
        Assert.Contains("holds no token vocabularies", other.Problem);

        var cut = folder.File("cut.ckpt");
        reversal.Model.Save(cut);
        var bytes = File.ReadAllBytes(cut);
        File.WriteAllBytes(cut, bytes[..(bytes.Length / 2)]);
        Assert.Contains("truncated", Assert.Throws<SeqNetsCheckpointException>(() => Seq2SeqModel.Load(cut)).Problem);
    }

    [Fact]
    public void A_disposed_model_refuses_every_call()
    {
        var model = Seq2SeqModel.Create(["a"], ["b"], Seq2SeqModelOptions.Default with { HiddenSize = 3, EmbeddingSize = 2 });
        model.Dispose();
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => model.Translate(["a"]));
        Assert.Throws<ObjectDisposedException>(() => model.Beam(["a"]));
        Assert.Throws<ObjectDisposedException>(() => model.Save("x.ckpt"));
        Assert.Throws<ObjectDisposedException>(() => model.Train([TranslationPair.Characters("a", "b")], 1));
    }
}
