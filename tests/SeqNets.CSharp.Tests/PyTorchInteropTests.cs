using SeqNets.CSharp;
using TorchSharp;
using Xunit;

namespace SeqNets.CSharp.Tests;

/// <summary>
/// The files of tests/fixtures/torch, written by PyTorch 1.13 with fixed seeds (tools/make_torch_fixture.py):
/// each <c>name.pt</c> is a module's state dict, each <c>name.io.pt</c> its input, initial state and outputs.
/// Legend: T time, B batch, I input, H hidden, V vocabulary, L layers.
/// </summary>
internal static class TorchFixtures
{
    /// <summary>The one-layer fixtures' sizes: T = 7, B = 2, I = 3, H = 5.</summary>
    public const int I = 3, H = 5;

    /// <summary>The character model fixture's sizes: V = 7, H = 6, L = 2.</summary>
    public const int V = 7, ModelHidden = 6, Layers = 2;

    /// <summary>The folder holding SeqNets.slnx, found by walking up from the test binaries.</summary>
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (System.IO.File.Exists(Path.Combine(dir.FullName, "SeqNets.slnx")))
                return dir.FullName;
        throw new InvalidOperationException($"no SeqNets.slnx above {AppContext.BaseDirectory}");
    });

    public static string File(string name) => Path.Combine(Root.Value, "tests", "fixtures", "torch", name);

    /// <summary>Every tensor of a <c>.pt</c> state dict, read by the core (test plumbing, not the facade's surface).</summary>
    public static StateDict Read(string path) => new(SeqNets.Interop.ReadStateDict(path));

    /// <summary>The cell each one-layer fixture was made from.</summary>
    public static RecurrentCell CellOf(string fixture) => fixture switch
    {
        "rnn_tanh" => RecurrentCell.Elman(I, H),
        "rnn_relu" => RecurrentCell.Elman(I, H, Activation.Relu),
        "gru" => RecurrentCell.Gru(I, H),
        "lstm" => RecurrentCell.Lstm(I, H),
        _ => throw new ArgumentException($"fixture: no one-layer fixture '{fixture}'.", nameof(fixture)),
    };

    /// <summary>A corpus of exactly V = 7 characters, a … g, so that id i is the i-th letter.</summary>
    public static readonly CharCorpus SevenLetters = CharCorpus.FromText(string.Concat(Enumerable.Repeat("abcdefggfedcba", 10)));
}

/// <summary>The tensors of a state dict file by key; disposes them all.</summary>
internal sealed class StateDict(IReadOnlyDictionary<string, torch.Tensor> tensors) : IDisposable
{
    public torch.Tensor this[string key] => tensors[key];

    public IEnumerable<string> Keys => tensors.Keys;

    public void Dispose()
    {
        foreach (var t in tensors.Values) t.Dispose();
    }
}

/// <summary>
/// PyTorch state dicts from C#: PyTorch's fixtures reproduce PyTorch's outputs through the facade,
/// export then import is exact, and files, cells and kinds that do not fit are refused with messages
/// that name the argument or the file, the key and the problem.
/// </summary>
public class PyTorchInteropTests
{
    /// <summary>PyTorch's float32 results against ours: max |difference| ≤ 1e-6.</summary>
    private const double Float32Tolerance = 1e-6;

    private static void Within(string what, torch.Tensor actual, torch.Tensor expected)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(expected.dtype, actual.dtype);
        using var d = (actual - expected).abs().max();
        var difference = d.item<float>();
        Assert.True(difference <= Float32Tolerance, $"{what}: max |difference| {difference:E3} > {Float32Tolerance:E1}");
    }

    private static void Exactly(string what, torch.Tensor actual, torch.Tensor expected)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.Equal(expected.dtype, actual.dtype);
        using var same = actual.eq(expected).all();
        Assert.True(same.item<bool>(), $"{what}: values differ");
    }

    public static TheoryData<string> Cells => new() { "rnn_tanh", "rnn_relu", "gru", "lstm" };

    // ---- PyTorch's files reproduce PyTorch's outputs ------------------------------------------------

    [Theory]
    [MemberData(nameof(Cells))]
    public void A_PyTorch_layer_imported_unrolls_to_PyTorchs_outputs(string fixture)
    {
        using var net = RecurrentNetwork.ImportPyTorch(TorchFixtures.CellOf(fixture), TorchFixtures.File(fixture + ".pt"));
        Assert.Equal(Precision.Float32, net.Options.Precision); // the file's
        Assert.Equal(new long[] { net.Cell.ParameterCount }, net.Parameters.shape);
        using var io = TorchFixtures.Read(TorchFixtures.File(fixture + ".io.pt"));
        using var scope = torch.NewDisposeScope();
        var h0 = io["h0"].squeeze(0); // [B; H]
        var s0 = fixture == "lstm" ? torch.cat(new[] { h0, io["c0"].squeeze(0) }, 1) : h0; // [B; S]
        using var run = net.Unroll(io["x"], s0); // x: [T; B; I]
        Within("outputs h_1 … h_T", run.Outputs, io["y"]);
        var last = run.States[run.States.shape[0] - 1]; // [B; S]
        Within("final h_T", last.narrow(1, 0, TorchFixtures.H), io["hn"].squeeze(0));
        if (fixture == "lstm")
            Within("final c_T", last.narrow(1, TorchFixtures.H, TorchFixtures.H), io["cn"].squeeze(0));
    }

    [Fact]
    public void A_PyTorch_character_model_imported_gives_PyTorchs_logits_on_both_paths()
    {
        using var model = CharLanguageModel.ImportPyTorch(TorchFixtures.File("charmodel_lstm.pt"), TorchFixtures.SevenLetters, CellKind.Lstm);
        Assert.Equal(CellKind.Lstm, model.Options.Cell);
        Assert.Equal(TorchFixtures.ModelHidden, model.Options.HiddenSize);
        Assert.Equal(TorchFixtures.Layers, model.Options.Layers);
        Assert.Equal(Precision.Float32, model.Options.Precision);
        Assert.Equal("abcdefg", string.Concat(model.Vocabulary));
        using var io = TorchFixtures.Read(TorchFixtures.File("charmodel_lstm.io.pt"));
        foreach (var path in new[] { SeqNets.ExecutionPath.Step, SeqNets.ExecutionPath.Fused })
        {
            model.WithCore(core =>
            {
                using var scope = torch.NewDisposeScope();
                using var noGrad = torch.no_grad();
                var states = Enumerable.Range(0, TorchFixtures.Layers)
                    .Select(l => torch.cat(new[] { io["h0"][l], io["c0"][l] }, 1)) // [B; 2H]
                    .ToArray();
                var (logits, finals) = core.Forward(path, io["ids"], states, null, null, null); // [T; B; V], L × [B; 2H]
                Within($"{path} logits", logits, io["logits"]);
                for (var l = 0; l < TorchFixtures.Layers; l++)
                {
                    Within($"{path} layer {l} final h", finals[l].narrow(1, 0, TorchFixtures.ModelHidden), io["hn"][l]);
                    Within($"{path} layer {l} final c", finals[l].narrow(1, TorchFixtures.ModelHidden, TorchFixtures.ModelHidden), io["cn"][l]);
                }
                return 0;
            });
        }
        // And it is a model like any other: it samples and trains on the corpus.
        Assert.Equal(12, model.Sample("abc", 12, seed: 3).Length);
        var summary = model.Train(2, TrainingOptions.Default.WithBatch(2).WithSequenceLength(5));
        Assert.Equal(2, summary.Steps);
    }

    // ---- export then import is exact ----------------------------------------------------------------

    public static TheoryData<string, Precision> CellsAndPrecisions()
    {
        var data = new TheoryData<string, Precision>();
        foreach (var fixture in new[] { "rnn_tanh", "rnn_relu", "gru", "lstm" })
            foreach (var precision in new[] { Precision.Float32, Precision.Float64 })
                data.Add(fixture, precision);
        return data;
    }

    [Theory]
    [MemberData(nameof(CellsAndPrecisions))]
    public void A_network_exported_and_imported_has_the_same_parameters_exactly(string fixture, Precision precision)
    {
        using var folder = new TempFolder();
        var cell = TorchFixtures.CellOf(fixture);
        using var net = new RecurrentNetwork(cell, NetworkOptions.Default.WithSeed(11).WithPrecision(precision));
        var path = folder.File("layer.pt");
        net.ExportPyTorch(path);
        using var back = RecurrentNetwork.ImportPyTorch(cell, path);
        Assert.Equal(precision, back.Options.Precision);
        Exactly("θ", back.Parameters, net.Parameters);
        using var file = TorchFixtures.Read(path);
        Assert.Equal(new[] { "bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0" }, file.Keys.Order());
    }

    [Fact]
    public void Options_choose_the_imported_networks_precision_and_output_layer()
    {
        var cell = TorchFixtures.CellOf("gru");
        using var asFile = RecurrentNetwork.ImportPyTorch(cell, TorchFixtures.File("gru.pt"));
        var options = NetworkOptions.Default.WithPrecision(Precision.Float64).WithOutputSize(4).WithSeed(5);
        using var widened = RecurrentNetwork.ImportPyTorch(cell, TorchFixtures.File("gru.pt"), options);
        Assert.Same(options, widened.Options);
        using var expected = asFile.Parameters.to_type(torch.float64);
        Exactly("θ widened to float64", widened.Parameters, expected);
        Assert.Equal(new long[] { 4 * TorchFixtures.H + 4 }, widened.OutputParameters!.shape);
        Assert.Equal(torch.float64, widened.OutputParameters.dtype);
    }

    [Fact]
    public void An_imported_network_outlives_the_callers_dispose_scope()
    {
        RecurrentNetwork net;
        using (torch.NewDisposeScope())
            net = RecurrentNetwork.ImportPyTorch(TorchFixtures.CellOf("lstm"), TorchFixtures.File("lstm.pt"));
        using (net)
        {
            Assert.False(net.Parameters.IsInvalid);
            using var xs = torch.ones(new long[] { 4, 1, TorchFixtures.I });
            using var run = net.Unroll(xs);
            Assert.Equal(new long[] { 4, 1, TorchFixtures.H }, run.Outputs.shape);
        }
    }

    public static TheoryData<CellKind> Kinds => new() { CellKind.ElmanTanh, CellKind.ElmanRelu, CellKind.Gru, CellKind.Lstm };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_character_model_exported_and_imported_is_the_same_model(CellKind kind)
    {
        using var folder = new TempFolder();
        var corpus = TorchFixtures.SevenLetters;
        using var model = CharLanguageModel.Create(corpus, CharModelOptions.Default
            .WithCell(kind).WithHiddenSize(6).WithLayers(3).WithPrecision(Precision.Float64).WithSeed(21));
        var first = folder.File("model.pt");
        model.ExportPyTorch(first);
        using var back = CharLanguageModel.ImportPyTorch(first, corpus, kind);
        Assert.Equal(model.Options with { Seed = 0 }, back.Options);
        Assert.Equal(model.ParameterCount, back.ParameterCount);
        var again = folder.File("again.pt");
        back.ExportPyTorch(again);
        using var ours = TorchFixtures.Read(first);
        using var theirs = TorchFixtures.Read(again);
        var keys = Enumerable.Range(0, 3).SelectMany(l => new[] { "weight_ih", "weight_hh", "bias_ih", "bias_hh" }.Select(b => $"rnn.{b}_l{l}"))
            .Append("out.weight").Append("out.bias").Order();
        Assert.Equal(keys, ours.Keys.Order());
        Assert.Equal(keys, theirs.Keys.Order());
        foreach (var key in ours.Keys) Exactly(key, theirs[key], ours[key]);
        Assert.Equal(model.Sample("ab", 30, seed: 4), back.Sample("ab", 30, seed: 4));
    }

    [Fact]
    public void PyTorchs_character_model_re_exported_holds_PyTorchs_tensors()
    {
        using var folder = new TempFolder();
        var original = TorchFixtures.File("charmodel_lstm.pt");
        using var model = CharLanguageModel.ImportPyTorch(original, TorchFixtures.SevenLetters, CellKind.Lstm);
        var path = folder.File("again.pt");
        model.ExportPyTorch(path);
        using var theirs = TorchFixtures.Read(original);
        using var ours = TorchFixtures.Read(path);
        Assert.Equal(theirs.Keys.Order(), ours.Keys.Order());
        foreach (var key in theirs.Keys) Exactly(key, ours[key], theirs[key]);
    }

    // ---- cells and kinds without a PyTorch module ---------------------------------------------------

    private static void Names<TException>(string argument, Action action, params string[] mentions)
        where TException : ArgumentException
    {
        var e = Assert.Throws<TException>(action);
        Assert.Equal(argument, e.ParamName);
        Assert.StartsWith(argument + ":", e.Message);
        foreach (var m in mentions) Assert.Contains(m, e.Message);
    }

    [Fact]
    public void The_lecture_GRU_and_the_multiplicative_RNN_are_refused_naming_the_cell()
    {
        Names<ArgumentException>("cell",
            () => RecurrentNetwork.ImportPyTorch(RecurrentCell.Gru(TorchFixtures.I, TorchFixtures.H, GruForm.Lecture), TorchFixtures.File("gru.pt")),
            "gru-lecture", "reset gate", "GruForm.PyTorch");
        Names<ArgumentException>("cell",
            () => RecurrentNetwork.ImportPyTorch(RecurrentCell.MultiplicativeRnn(TorchFixtures.I, TorchFixtures.H, 4), TorchFixtures.File("rnn_tanh.pt")),
            "mrnn", "no PyTorch module");
        using var lecture = new RecurrentNetwork(RecurrentCell.Gru(TorchFixtures.I, TorchFixtures.H, GruForm.Lecture));
        var e = Assert.Throws<InvalidOperationException>(() => lecture.ExportPyTorch("unused.pt"));
        Assert.Contains("gru-lecture", e.Message);
        Assert.False(File.Exists("unused.pt"));
    }

    [Fact]
    public void Model_kinds_without_a_PyTorch_module_are_refused_naming_the_kind()
    {
        var model = TorchFixtures.File("charmodel_lstm.pt");
        Names<ArgumentException>("kind", () => CharLanguageModel.ImportPyTorch(model, TorchFixtures.SevenLetters, CellKind.GruLecture),
            "GruLecture", "reset gate");
        Names<ArgumentException>("kind", () => CharLanguageModel.ImportPyTorch(model, TorchFixtures.SevenLetters, CellKind.MultiplicativeRnn),
            "MultiplicativeRnn", "no PyTorch module");
        Names<ArgumentOutOfRangeException>("kind", () => CharLanguageModel.ImportPyTorch(model, TorchFixtures.SevenLetters, (CellKind)42), "42");
        using var multiplicative = CharLanguageModel.Create(TorchFixtures.SevenLetters,
            CharModelOptions.Default.WithMultiplicativeRnn(3).WithHiddenSize(4));
        var e = Assert.Throws<InvalidOperationException>(() => multiplicative.ExportPyTorch("unused.pt"));
        Assert.Contains("MultiplicativeRnn", e.Message);
    }

    [Fact]
    public void Null_and_empty_arguments_are_named()
    {
        var cell = TorchFixtures.CellOf("lstm");
        var file = TorchFixtures.File("lstm.pt");
        Names<ArgumentNullException>("cell", () => RecurrentNetwork.ImportPyTorch(null!, file));
        Names<ArgumentNullException>("path", () => RecurrentNetwork.ImportPyTorch(cell, null!));
        Names<ArgumentException>("path", () => RecurrentNetwork.ImportPyTorch(cell, " "), "empty");
        using var net = new RecurrentNetwork(cell);
        Names<ArgumentNullException>("path", () => net.ExportPyTorch(null!));
        Names<ArgumentException>("path", () => net.ExportPyTorch(""), "empty");
        Names<ArgumentNullException>("path", () => CharLanguageModel.ImportPyTorch(null!, TorchFixtures.SevenLetters, CellKind.Lstm));
        Names<ArgumentNullException>("corpus", () => CharLanguageModel.ImportPyTorch(TorchFixtures.File("charmodel_lstm.pt"), null!, CellKind.Lstm));
    }

    [Fact]
    public void A_corpus_of_another_vocabulary_size_is_refused_naming_the_corpus()
    {
        var five = CharCorpus.FromText(string.Concat(Enumerable.Repeat("abcde", 10)));
        Names<ArgumentException>("corpus",
            () => CharLanguageModel.ImportPyTorch(TorchFixtures.File("charmodel_lstm.pt"), five, CellKind.Lstm), "V = 7", "has 5");
    }

    // ---- files that do not fit ----------------------------------------------------------------------

    private static void Refused(string path, string? key, Action action, params string[] problems)
    {
        var e = Assert.Throws<SeqNetsStateDictException>(action);
        Assert.Equal(path, e.Path);
        Assert.Equal(key, e.Key);
        Assert.Equal("path", e.ParamName);
        Assert.Contains(path, e.Message);
        if (key is not null) Assert.Contains($"'{key}'", e.Message);
        foreach (var p in problems) Assert.Contains(p, e.Problem);
        Assert.IsType<SeqNets.StateDictException>(e.InnerException);
    }

    [Fact]
    public void A_file_of_another_kind_names_the_key_and_both_shapes()
    {
        var gru = TorchFixtures.File("gru.pt");
        Refused(gru, "weight_ih_l0", () => RecurrentNetwork.ImportPyTorch(TorchFixtures.CellOf("lstm"), gru), "[20; 3]", "[15; 3]");
        var lstm = TorchFixtures.File("lstm.pt");
        Refused(lstm, "weight_ih_l0", () => RecurrentNetwork.ImportPyTorch(RecurrentCell.Lstm(TorchFixtures.I, 4), lstm), "[16; 3]", "[20; 3]");
        var model = TorchFixtures.File("charmodel_lstm.pt");
        // 24 rows read as 3 GRU gates give H = 8, so U must be [24; 8]; the file's is [24; 6].
        Refused(model, "rnn.weight_hh_l0", () => CharLanguageModel.ImportPyTorch(model, TorchFixtures.SevenLetters, CellKind.Gru), "[24; 8]", "[24; 6]");
    }

    [Fact]
    public void A_model_file_read_as_a_layer_and_back_points_to_the_other_CSharp_method()
    {
        var model = TorchFixtures.File("charmodel_lstm.pt");
        Refused(model, "weight_ih_l0", () => RecurrentNetwork.ImportPyTorch(RecurrentCell.Lstm(7, 6), model),
            "missing", "'rnn.weight_ih_l0'", "CharLanguageModel.ImportPyTorch");
        var layer = TorchFixtures.File("lstm.pt");
        Refused(layer, "rnn.weight_ih_l0", () => CharLanguageModel.ImportPyTorch(layer, TorchFixtures.SevenLetters, CellKind.Lstm),
            "missing", "weight_ih_l0", "RecurrentNetwork.ImportPyTorch");
    }

    [Fact]
    public void Files_that_are_not_zip_format_state_dicts_are_named_as_a_whole()
    {
        using var folder = new TempFolder();
        var cell = TorchFixtures.CellOf("rnn_tanh");
        var legacy = TorchFixtures.File("legacy_format.pt");
        Refused(legacy, null, () => RecurrentNetwork.ImportPyTorch(cell, legacy), "legacy", "_use_new_zipfile_serialization=True");
        var text = folder.File("notes.pt");
        File.WriteAllText(text, "not a tensor file");
        Refused(text, null, () => RecurrentNetwork.ImportPyTorch(cell, text), "not a PyTorch .pt file");
        var missing = folder.File("absent.pt");
        Refused(missing, null, () => CharLanguageModel.ImportPyTorch(missing, TorchFixtures.SevenLetters, CellKind.Lstm), "no such file");
    }
}
