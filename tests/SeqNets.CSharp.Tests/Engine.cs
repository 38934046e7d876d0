using System.Runtime.CompilerServices;
using SeqNets.CSharp;
using TorchSharp;

namespace SeqNets.CSharp.Tests;

/// <summary>Loads libtorch before any test touches TorchSharp: TorchSharp caches a failed initialisation.</summary>
internal static class Engine
{
#pragma warning disable CA2255 // a module initializer is the point here: it runs before any test code.
    [ModuleInitializer]
    internal static void Load() => SeqNetsEngine.EnsureLoaded();
#pragma warning restore CA2255
}

/// <summary>Shared sizes and helpers. Sizes are distinct (T ≠ B ≠ I ≠ H) so a swapped axis cannot pass.</summary>
internal static class Common
{
    public const int T = 5, B = 2, I = 3, H = 4;

    /// <summary>The tolerance of float64 comparisons between routes, relative to the reference's largest entry.</summary>
    public const double Tolerance = 1e-9;

    public static readonly NetworkOptions Float64 = NetworkOptions.Default.WithSeed(7).WithPrecision(Precision.Float64);

    public static RecurrentCell CellOf(string kind) => kind switch
    {
        "elman-tanh" => RecurrentCell.Elman(I, H),
        "elman-relu" => RecurrentCell.Elman(I, H, Activation.Relu),
        "gru-pytorch" => RecurrentCell.Gru(I, H),
        "gru-lecture" => RecurrentCell.Gru(I, H, GruForm.Lecture),
        "lstm" => RecurrentCell.Lstm(I, H),
        "mrnn" => RecurrentCell.MultiplicativeRnn(I, H, factors: 6),
        _ => throw new ArgumentException($"unknown cell kind {kind}", nameof(kind)),
    };

    public static torch.Tensor Randn(ulong seed, params long[] shape)
    {
        using var g = new torch.Generator(seed);
        return torch.randn(shape, dtype: torch.float64, generator: g);
    }

    /// <summary>max |x − y| / max |y|.</summary>
    public static double RelativeError(torch.Tensor x, torch.Tensor reference)
    {
        using var diff = (x - reference).abs().max();
        using var scale = reference.abs().max();
        var d = diff.item<double>();
        var r = scale.item<double>();
        return d == 0 ? 0 : d / r;
    }

    public static long[] Shape(torch.Tensor t) => t.shape;
}
