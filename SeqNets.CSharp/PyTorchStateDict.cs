using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("SeqNets.CSharp.Tests")]

namespace SeqNets.CSharp;

/// <summary>
/// A PyTorch state dict file (<c>.pt</c>) that does not fit what was asked of it: missing, in
/// PyTorch's legacy format, not a state dict at all, or holding a key, shape or dtype other than the
/// cell's or model's. It is an <see cref="ArgumentException"/> for the <c>path</c> argument that
/// names the file, the key at fault and the problem, with what was expected and what arrived.
/// </summary>
public sealed class SeqNetsStateDictException : ArgumentException
{
    /// <summary>A state dict exception for the file at <paramref name="path"/>, the key at fault and the problem.</summary>
    /// <param name="path">The state dict file, as it was given.</param>
    /// <param name="key">The key at fault, such as <c>weight_ih_l0</c>, or null when the problem concerns the file as a whole.</param>
    /// <param name="problem">What is wrong, with what was expected and what arrived.</param>
    /// <param name="innerException">The exception that revealed the problem, or null.</param>
    public SeqNetsStateDictException(string path, string? key, string problem, Exception? innerException = null)
        : base(key is null ? $"state dict '{path}': {problem}" : $"state dict '{path}', key '{key}': {problem}",
            "path", innerException)
    {
        Path = path;
        Key = key;
        Problem = problem;
    }

    /// <summary>The path of the state dict file, as it was given.</summary>
    public string Path { get; }

    /// <summary>The key at fault, such as <c>rnn.weight_hh_l1</c>, or null when the file as a whole is wrong.</summary>
    public string? Key { get; }

    /// <summary>What is wrong with the file, saying what was expected and what arrived.</summary>
    public string Problem { get; }
}

/// <summary>
/// The facade's side of PyTorch interop: which cells PyTorch has a module for, in C# terms, and the
/// translation of the core's file errors into <see cref="SeqNetsStateDictException"/>.
/// </summary>
internal static class PyTorchForm
{
    /// <summary>The cell names of the core's cells with a PyTorch module (nn.RNN, nn.GRU, nn.LSTM).</summary>
    private static readonly string[] Supported = ["elman-tanh", "elman-relu", "gru-pytorch", "lstm"];

    private const string LectureGru =
        "the lecture's GRU applies the reset gate before U_n (U_n (r ⊙ h)), PyTorch's nn.GRU after it (r ⊙ (U_n h + b_hn)), "
        + "so no PyTorch module computes it";

    private const string Multiplicative = "the multiplicative RNN has no PyTorch module";

    /// <summary>Why a cell of this name has no PyTorch module, or null when it has one.</summary>
    public static string? WhyNot(RecurrentCell cell) =>
        Supported.Contains(cell.Name) ? null
        : cell.Name == "gru-lecture" ? LectureGru + "; use RecurrentCell.Gru(I, H, GruForm.PyTorch)"
        : cell.Name.StartsWith("mrnn", StringComparison.Ordinal) ? Multiplicative
        : $"'{cell.Name}' is not one of PyTorch's recurrent layers";

    /// <summary>Why a model of this kind has no PyTorch module, or null when it has one.</summary>
    public static string? WhyNot(CellKind kind) => kind switch
    {
        CellKind.ElmanTanh or CellKind.ElmanRelu or CellKind.Gru or CellKind.Lstm => null,
        CellKind.GruLecture => LectureGru + "; use CellKind.Gru",
        _ => Multiplicative,
    };

    /// <summary>The cells an import or export accepts, for messages.</summary>
    public const string Cells = "Elman (tanh or ReLU), GRU in PyTorch's form, or LSTM";

    /// <summary>The model kinds an import or export accepts, for messages.</summary>
    public const string Kinds = "ElmanTanh, ElmanRelu, Gru or Lstm";

    /// <summary>A path argument: not null and not blank.</summary>
    public static void PathArgument(string? path, string name)
    {
        Guard.NotNull(path, name);
        if (string.IsNullOrWhiteSpace(path))
            throw new ArgumentException($"{name}: expected a file path, but got an empty one.", name);
    }

    /// <summary>Runs a core import or export, turning the core's file error into the facade's.</summary>
    public static T Translate<T>(Func<T> work)
    {
        try
        {
            return work();
        }
        catch (StateDictException e)
        {
            throw new SeqNetsStateDictException(e.Path, e.Key, CSharpNames(e.Problem), e);
        }
    }

    /// <summary>The core's hints name its F# functions; a C# caller reads the facade's methods instead.</summary>
    private static string CSharpNames(string problem) =>
        problem
            .Replace("Interop.importModel", "CharLanguageModel.ImportPyTorch", StringComparison.Ordinal)
            .Replace("Interop.importCell", "RecurrentNetwork.ImportPyTorch", StringComparison.Ordinal);
}
