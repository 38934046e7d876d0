using Microsoft.FSharp.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace SeqNets.CSharp;

/// <summary>
/// How a recurrent cell's gradient flows back in time along a batch of trajectories, read off the closed
/// form ∂s_t/∂θ = Σ_i (Π_{j=i+1..t} c_j) b_i: per-lag norms, the loss gradient by lag, the truncation
/// curve and the spectrum of c_t, as plain arrays. Indexes into the per-lag arrays are the lag k = t − i.
/// </summary>
public sealed class GradientFlowResult
{
    internal GradientFlowResult(SensitivityReport report)
    {
        Report = report;
        Model = report.Model;
        Steps = report.Steps;
        Rows = report.Rows;
        StateSize = report.StateSize;
        SpectralGeometricMean = report.Lags.Select(l => l.Spectral.GeometricMean).ToArray();
        SpectralMean = report.Lags.Select(l => l.Spectral.Mean).ToArray();
        FrobeniusMean = report.Lags.Select(l => l.Frobenius.Mean).ToArray();
        TermMean = report.Lags.Select(l => l.Term.Mean).ToArray();
        LossGradientByLag = report.LossGradientByLag.ToArray();
        TruncationKept = report.Truncation.Select(p => p.KeptNorm).ToArray();
        TruncationDiscarded = report.Truncation.Select(p => p.Discarded).ToArray();
        TruncationCosine = report.Truncation.Select(p => p.Cosine).ToArray();
        ProductNorms = (double[,])report.ProductNorms.Clone();
        Spectrum = report.Spectrum.Select(s => s.ToArray()).ToArray();
        Loss = report.Loss;
        GradientNorm = report.GradientNorm;
    }

    internal SensitivityReport Report { get; }

    /// <summary>What was measured: the cell's name, or the name given.</summary>
    public string Model { get; }

    /// <summary>T, the steps of the trajectories.</summary>
    public int Steps { get; }

    /// <summary>B, the rows of the batch.</summary>
    public int Rows { get; }

    /// <summary>S, the width of the state.</summary>
    public int StateSize { get; }

    /// <summary>[k]: the geometric mean over rows and positions of ‖Π_{j=i+1..t} c_j‖₂ at lag k.</summary>
    public double[] SpectralGeometricMean { get; }

    /// <summary>[k]: the arithmetic mean of ‖Π_{j=i+1..t} c_j‖₂ at lag k.</summary>
    public double[] SpectralMean { get; }

    /// <summary>[k]: the mean of ‖Π_{j=i+1..t} c_j‖_F at lag k.</summary>
    public double[] FrobeniusMean { get; }

    /// <summary>[k]: the mean of ‖(Π_{j=i+1..t} c_j) b_i‖_F, the closed form's term at lag k.</summary>
    public double[] TermMean { get; }

    /// <summary>[k]: ‖G_k‖, the part of ‖∂L/∂θ‖ carried back exactly k steps (k = 0..T−1).</summary>
    public double[] LossGradientByLag { get; }

    /// <summary>[τ − 1]: ‖g_τ‖ / ‖g‖, what truncated BPTT at τ keeps of the gradient's norm.</summary>
    public double[] TruncationKept { get; }

    /// <summary>[τ − 1]: ‖g − g_τ‖ / ‖g‖, the share of the gradient truncation at τ throws away.</summary>
    public double[] TruncationDiscarded { get; }

    /// <summary>[τ − 1]: cos(g_τ, g), whether the truncated gradient still points the same way.</summary>
    public double[] TruncationCosine { get; }

    /// <summary>[t − 1, i − 1]: the geometric mean over rows of ‖Π_{j=i+1..t} c_j‖₂ where measured, NaN elsewhere.</summary>
    public double[,] ProductNorms { get; }

    /// <summary>[t − 1][r]: the (r + 1)-th largest singular value of c_t, averaged over rows.</summary>
    public double[][] Spectrum { get; }

    /// <summary>L, the loss the gradient is of.</summary>
    public double Loss { get; }

    /// <summary>The norm ‖∂L/∂θ‖ of the whole loss gradient.</summary>
    public double GradientNorm { get; }

    /// <summary>Writes every picture of this result (PNG, with a CSV of the same name beside each) into a folder.</summary>
    /// <param name="directory">The folder; created when missing.</param>
    /// <returns>The paths of the PNG files written.</returns>
    public string[] SavePictures(string directory)
    {
        Guard.NotNull(directory, nameof(directory));
        return Plots.All(directory, Microsoft.FSharp.Collections.ListModule.OfSeq(new[] { Report })).ToArray();
    }

    /// <summary>Writes the picture of ‖G_k‖ against the lag (log scale) to a PNG, with its CSV beside it.</summary>
    /// <param name="path">The PNG's path.</param>
    public void SaveLossGradientPicture(string path)
    {
        Guard.NotNull(path, nameof(path));
        Plots.Lags(LagMeasure.LossGradient, path, Microsoft.FSharp.Collections.ListModule.OfSeq(new[] { Report }));
    }
}

/// <summary>The gradient-flow analysis of a cell: per-lag sensitivity from the closed form.</summary>
public static class GradientFlow
{
    /// <summary>
    /// Measures how the gradient of <paramref name="loss"/> flows back in time along <paramref name="inputs"/>
    /// [T; B; I] from <paramref name="initialState"/> ([B; S] or [S]) under θ = <paramref name="theta"/> [P].
    /// </summary>
    /// <param name="cell">The cell.</param>
    /// <param name="theta">θ, [P], float32 or float64 (the analysis runs in float64).</param>
    /// <param name="inputs">x_1..x_T, [T; B; I], the dtype of θ.</param>
    /// <param name="initialState">s_0, [B; S] or [S].</param>
    /// <param name="loss">The scalar loss of the states [T+1; B; S] (s_0 first).</param>
    /// <param name="lags">N: measure the products and terms at lags 0..N−1 only; null for every lag.</param>
    /// <param name="stride">Follow the products from every m-th position only (1: all).</param>
    /// <param name="singularValues">How many of c_t's largest singular values to report.</param>
    /// <returns>The measurements as arrays.</returns>
    /// <exception cref="ArgumentException">An argument is null, of the wrong shape, or out of range; the exception names it.</exception>
    public static GradientFlowResult Analyze(RecurrentCell cell, Tensor theta, Tensor inputs, Tensor initialState,
                                             Func<Tensor, Tensor> loss, int? lags = null, int stride = 1, int singularValues = 4)
    {
        Guard.NotNull(cell, nameof(cell));
        Guard.NotNull(loss, nameof(loss));
        var options = new SensitivityOptions(
            lags.HasValue ? FSharpOption<int>.Some(lags.Value) : FSharpOption<int>.None, stride, singularValues);
        var report = Sensitivity.Analyse(options, cell.Core.Name, cell.Core, theta, inputs, initialState,
                                         FuncConvert.FromFunc<Tensor, Tensor>(s => loss(s)));
        return new GradientFlowResult(report);
    }
}
