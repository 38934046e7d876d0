/// Pictures of gradient flow (PNG, drawn with ScottPlot) with their data beside them (CSV of the same
/// name): a measure against the lag k = t − i on a log scale, one line per report; the heatmap of
/// ‖Π_{j=i+1..t} c_j‖₂ over (t, i); the truncation curve; the singular values of c_t along the
/// trajectory; and the clipping study's lag profile. Log scales plot log₁₀ of the values, labelled
/// 1eN; values that are 0 or not finite are left out of a line (and kept, empty, in the CSV).
namespace SeqNets

open System
open System.IO
open System.Text

/// Which lag measure of a SensitivityReport a picture shows.
type LagMeasure =
    /// ‖Π_{j=i+1..t} c_j‖₂ (geometric mean over rows and positions, band from min to max).
    | ProductSpectral
    /// ‖Π_{j=i+1..t} c_j‖_F.
    | ProductFrobenius
    /// ‖(Π_{j=i+1..t} c_j) b_i‖_F, the closed form's term.
    | Term
    /// ‖G_k‖, the part of ‖∂L/∂θ‖ carried back k steps.
    | LossGradient

[<RequireQualifiedAccess>]
module Plots =
    let private inv = Globalization.CultureInfo.InvariantCulture
    let private num (x: float) = if Double.IsFinite x then x.ToString("R", inv) else ""
    let private text (s: string) = if s.Contains ',' || s.Contains '"' then "\"" + s.Replace("\"", "\"\"") + "\"" else s

    /// The CSV beside a PNG: the same path with the extension .csv.
    [<CompiledName("CsvPath")>]
    let csvPath (png: string) = Path.ChangeExtension(png, ".csv")

    /// A short file-name stem of a model's name: lower case letters and digits joined by '-'.
    [<CompiledName("Stem")>]
    let stem (model: string) =
        let s = StringBuilder()
        for ch in (if isNull model then "" else model.ToLowerInvariant()) do
            if Char.IsAsciiLetterOrDigit ch then s.Append ch |> ignore
            elif s.Length > 0 && s[s.Length - 1] <> '-' then s.Append '-' |> ignore
        let r = s.ToString().Trim('-')
        let r = if r.Length > 48 then r.Substring(0, 48).Trim('-') else r
        if r = "" then "model" else r

    let private checkPath (argument: string) (path: string) =
        Check.notNull argument path
        if String.IsNullOrWhiteSpace path then Check.fail argument $"{argument}: expected a file path, but got an empty one."
        let dir = Path.GetDirectoryName(Path.GetFullPath path)
        if not (String.IsNullOrEmpty dir) then Directory.CreateDirectory dir |> ignore

    let private writeCsv (path: string) (header: string) (rows: string seq) =
        let tmp = path + ".tmp"
        File.WriteAllLines(tmp, Seq.append [ header ] rows)
        File.Move(tmp, path, true)

    let private save (plt: ScottPlot.Plot) (path: string) (width: int) (height: int) =
        let tmp = path + ".tmp.png"
        plt.SavePng(tmp, width, height) |> ignore
        File.Move(tmp, path, true)

    let private logAxis (plt: ScottPlot.Plot) =
        let ticks = ScottPlot.TickGenerators.NumericAutomatic()
        ticks.MinorTickGenerator <- ScottPlot.TickGenerators.LogMinorTickGenerator()
        ticks.IntegerTicksOnly <- true
        ticks.LabelFormatter <- Func<float, string>(fun y -> "1e" + string (int (round y)))
        plt.Axes.Left.TickGenerator <- ticks

    /// Whole-number ticks on the x axis (lags, steps).
    let private wholeX (plt: ScottPlot.Plot) =
        let ticks = ScottPlot.TickGenerators.NumericAutomatic()
        ticks.IntegerTicksOnly <- true
        plt.Axes.Bottom.TickGenerator <- ticks

    let private positive (x: float) = x > 0.0 && Double.IsFinite x

    /// A line of log₁₀ values (the finite, positive ones), with a band between lo and hi when given.
    let private logLine (plt: ScottPlot.Plot) (label: string) (points: (float * float * float * float) seq) (band: bool) =
        let pts = points |> Seq.filter (fun (_, y, _, _) -> positive y) |> Array.ofSeq
        if pts.Length > 0 then
            let xs = pts |> Array.map (fun (x, _, _, _) -> x)
            let line = plt.Add.Scatter(xs, pts |> Array.map (fun (_, y, _, _) -> log10 y))
            line.LegendText <- label
            line.MarkerSize <- (if pts.Length <= 30 then 4.0f else 0.0f)
            line.LineWidth <- 2.0f
            if band then
                let b = pts |> Array.filter (fun (_, _, lo, hi) -> positive lo && positive hi)
                if b.Length > 1 then
                    let fill =
                        plt.Add.FillY(b |> Array.map (fun (x, _, _, _) -> x), b |> Array.map (fun (_, _, lo, _) -> log10 lo),
                                      b |> Array.map (fun (_, _, _, hi) -> log10 hi))
                    fill.FillColor <- line.Color.WithAlpha(0.18)
                    fill.LineWidth <- 0.0f
            Some line
        else None

    let private spreadColumns (name: string) =
        String.Join(",", [ for s in [ "mean"; "geometric_mean"; "sd"; "min"; "max" ] -> $"{name}_{s}" ])

    let private spreadValues (s: Spread) =
        String.Join(",", [ num s.Mean; num s.GeometricMean; num s.StandardDeviation; num s.Min; num s.Max ])

    /// One measure against the lag, log scale, one line per report (for the spreads: the geometric
    /// mean, with a band from min to max); the CSV beside it holds every lag measure of every report.
    [<CompiledName("Lags")>]
    let lags (measure: LagMeasure) (path: string) (reports: SensitivityReport list) =
        checkPath "path" path
        Check.notNull (nameof reports) reports
        if reports.IsEmpty then Check.fail "reports" "reports: expected at least one report to draw, but got none."
        use plt = new ScottPlot.Plot()
        for r in reports do
            let points =
                match measure with
                | LossGradient -> r.LossGradientByLag |> Array.mapi (fun k v -> float k, v, nan, nan)
                | _ ->
                    r.Lags |> Array.map (fun l ->
                        let s = match measure with ProductSpectral -> l.Spectral | ProductFrobenius -> l.Frobenius | _ -> l.Term
                        float l.Lag, s.GeometricMean, s.Min, s.Max)
            logLine plt r.Model points (measure <> LossGradient) |> ignore
        logAxis plt
        wholeX plt
        let what =
            match measure with
            | ProductSpectral -> "‖Π c_j‖₂ over j = i+1..t"
            | ProductFrobenius -> "‖Π c_j‖_F over j = i+1..t"
            | Term -> "‖(Π c_j) b_i‖_F: ∂s_t/∂θ through step i"
            | LossGradient -> "‖G_k‖: the part of ‖∂L/∂θ‖ carried k steps"
        plt.Title(what)
        plt.XLabel "lag k = t − i"
        plt.YLabel(if measure = LossGradient then "norm (log scale)" else "geometric mean, band min–max (log)")
        plt.ShowLegend() |> ignore
        save plt path 900 560
        writeCsv (csvPath path)
            ("model,lag,count," + spreadColumns "spectral" + "," + spreadColumns "frobenius" + "," + spreadColumns "term" + ",loss_gradient")
            [ for r in reports do
                  for k in 0 .. r.LossGradientByLag.Length - 1 do
                      let lag = if k < r.Lags.Length then Some r.Lags[k] else None
                      let spreads =
                          match lag with
                          | Some l -> $"{l.Spectral.Count},{spreadValues l.Spectral},{spreadValues l.Frobenius},{spreadValues l.Term}"
                          | None -> "0," + String.replicate 14 ","
                      yield $"{text r.Model},{k},{spreads},{num r.LossGradientByLag[k]}" ]

    /// The heatmap of log₁₀ ‖Π_{j=i+1..t} c_j‖₂ (geometric mean over rows) over the source step i
    /// (across) and the target step t (up); the CSV beside it lists t, i and the norm.
    [<CompiledName("Heatmap")>]
    let heatmap (path: string) (report: SensitivityReport) =
        checkPath "path" path
        Check.notNull "report" (box report)
        let T = report.Steps
        // Row 0 of a ScottPlot heatmap is drawn at the top: row r holds t = T − r.
        let data = Array2D.init T T (fun r i -> let v = report.ProductNorms[T - 1 - r, i] in if positive v then log10 v else nan)
        use plt = new ScottPlot.Plot()
        let hm = plt.Add.Heatmap(data)
        hm.Colormap <- ScottPlot.Colormaps.Viridis()
        hm.NaNCellColor <- ScottPlot.Colors.White
        // Cell (t, i) centred on the whole numbers t and i.
        hm.Position <- Nullable(ScottPlot.CoordinateRect(0.5, float T + 0.5, 0.5, float T + 0.5))
        let bar = plt.Add.ColorBar(hm)
        bar.Label <- "log₁₀ ‖Π c_j‖₂"
        plt.Title($"{report.Model}: ‖Π_(j=i+1..t) c_j‖₂")
        plt.XLabel "i (the step whose state is perturbed)"
        plt.YLabel "t (the step that feels it)"
        save plt path 760 680
        writeCsv (csvPath path) "t,i,spectral_norm"
            [ for t in 1 .. T do
                  for i in 1 .. t do
                      let v = report.ProductNorms[t - 1, i - 1]
                      if not (Double.IsNaN v) then yield $"{t},{i},{num v}" ]

    /// What truncation at τ throws away, ‖g − g_τ‖ / ‖g‖, against τ, one line per report; the CSV
    /// beside it adds ‖g_τ‖ / ‖g‖ and cos(g_τ, g).
    [<CompiledName("Truncation")>]
    let truncation (path: string) (reports: SensitivityReport list) =
        checkPath "path" path
        Check.notNull (nameof reports) reports
        if reports.IsEmpty then Check.fail "reports" "reports: expected at least one report to draw, but got none."
        use plt = new ScottPlot.Plot()
        for r in reports do
            let pts = r.Truncation |> Array.filter (fun p -> Double.IsFinite p.Discarded)
            if pts.Length > 0 then
                let line = plt.Add.Scatter(pts |> Array.map (fun p -> float p.Tau), pts |> Array.map _.Discarded)
                line.LegendText <- r.Model
                line.MarkerSize <- (if pts.Length <= 30 then 4.0f else 0.0f)
                line.LineWidth <- 2.0f
        wholeX plt
        plt.Title "What truncated BPTT at τ throws away: ‖g − g_τ‖ / ‖g‖"
        plt.XLabel "τ (steps the gradient may travel back)"
        plt.YLabel "share of ‖∂L/∂θ‖ discarded"
        plt.ShowLegend() |> ignore
        save plt path 900 560
        writeCsv (csvPath path) "model,tau,kept_norm,discarded,cosine"
            [ for r in reports do
                  for p in r.Truncation -> $"{text r.Model},{p.Tau},{num p.KeptNorm},{num p.Discarded},{num p.Cosine}" ]

    /// The largest singular values of c_t along the trajectory (averaged over rows), log scale, with
    /// the line σ = 1 that separates shrinking from growing directions.
    [<CompiledName("Spectrum")>]
    let spectrum (path: string) (report: SensitivityReport) =
        checkPath "path" path
        Check.notNull "report" (box report)
        let k = if report.Spectrum.Length = 0 then 0 else report.Spectrum |> Array.map Array.length |> Array.min
        use plt = new ScottPlot.Plot()
        for r in 0 .. k - 1 do
            logLine plt $"σ{r + 1}" (report.Spectrum |> Array.mapi (fun t s -> float (t + 1), s[r], nan, nan)) false |> ignore
        let one = plt.Add.HorizontalLine(0.0)
        one.LinePattern <- ScottPlot.LinePattern.Dashed
        one.Color <- ScottPlot.Colors.Gray
        logAxis plt
        wholeX plt
        plt.Title($"{report.Model}: the largest singular values of c_t")
        plt.XLabel "t"
        plt.YLabel "singular value (log scale)"
        plt.ShowLegend() |> ignore
        save plt path 900 520
        writeCsv (csvPath path) ("t," + String.Join(",", [ for r in 1 .. k -> $"sigma{r}" ]))
            [ for t in 0 .. report.Spectrum.Length - 1 -> $"{t + 1}," + String.Join(",", report.Spectrum[t] |> Array.truncate k |> Array.map num) ]

    /// The clipping study: ‖G_k‖ of the full gradient against the lag, the same profile after clipping
    /// by norm (every lag scaled alike), and a dashed line at each truncation length τ (truncation keeps
    /// the lags left of it). The CSV beside it holds the updates' numbers and the profile.
    [<CompiledName("Clipping")>]
    let clipping (path: string) (study: ClippingStudy) =
        checkPath "path" path
        Check.notNull "study" (box study)
        let profile = study.Flow.LossGradientByLag
        let scale = if study.GradientNorm > study.MaxNorm then study.MaxNorm / study.GradientNorm else 1.0
        use plt = new ScottPlot.Plot()
        logLine plt "full gradient: ‖G_k‖" (profile |> Array.mapi (fun k v -> float k, v, nan, nan)) false |> ignore
        let threshold = study.MaxNorm.ToString("G4", inv)
        logLine plt $"clipped by norm {threshold}" (profile |> Array.mapi (fun k v -> float k, v * scale, nan, nan)) false
        |> Option.iter (fun l -> l.LinePattern <- ScottPlot.LinePattern.Dotted)
        for tau in study.Taus do
            let v = plt.Add.VerticalLine(float tau - 0.5)
            v.LinePattern <- ScottPlot.LinePattern.Dashed
            v.Color <- ScottPlot.Colors.Gray
            v.Text <- $"τ = {tau}"
        logAxis plt
        wholeX plt
        let norm = study.GradientNorm.ToString("G3", inv)
        plt.Title($"{study.Model}: where ‖∂L/∂θ‖ = {norm} comes from")
        plt.XLabel "lag k (truncation at τ keeps k < τ)"
        plt.YLabel "‖G_k‖ (log scale)"
        plt.ShowLegend() |> ignore
        save plt path 900 560
        writeCsv (csvPath path) "update,norm,relative_norm,cosine,loss_after_step,lag,lag_gradient_norm"
            [ for u in study.Updates -> $"{text u.Update},{num u.Norm},{num u.RelativeNorm},{num u.Cosine},{num u.LossAfterStep},,"
              for k in 0 .. profile.Length - 1 -> $",,,,,{k},{num profile[k]}" ]

    /// Every picture of the reports into a folder: lags-spectral, lags-term and lags-loss-gradient
    /// (all reports on one picture each), truncation, and per report heatmap-<stem> and spectrum-<stem>.
    /// Returns the PNG paths written (each with its CSV).
    [<CompiledName("All")>]
    let all (directory: string) (reports: SensitivityReport list) : string list =
        Check.notNull (nameof directory) directory
        Check.notNull (nameof reports) reports
        if reports.IsEmpty then Check.fail "reports" "reports: expected at least one report to draw, but got none."
        Directory.CreateDirectory directory |> ignore
        let at name = Path.Combine(directory, name)
        let withProducts = reports |> List.exists (fun r -> r.Lags.Length > 0)
        [ if withProducts then
              yield (let p = at "lags-spectral.png" in lags ProductSpectral p reports; p)
              yield (let p = at "lags-term.png" in lags Term p reports; p)
          yield (let p = at "lags-loss-gradient.png" in lags LossGradient p reports; p)
          yield (let p = at "truncation.png" in truncation p reports; p)
          for r in reports do
              if r.Lags.Length > 0 then yield (let p = at $"heatmap-{stem r.Model}.png" in heatmap p r; p)
              if r.Spectrum.Length > 0 && r.Spectrum[0].Length > 0 then yield (let p = at $"spectrum-{stem r.Model}.png" in spectrum p r; p) ]
