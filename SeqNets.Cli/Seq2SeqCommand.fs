/// `seqnets seq2seq --task reverse|dates|addition`: trains an encoder–decoder with attention (and for
/// reverse the plain one beside it), prints the table, and draws the attention of a few held-out
/// examples as heatmaps (source tokens × output tokens); the attention model is saved as <out>/<task>.ckpt.
module SeqNets.Cli.Seq2SeqCommand

open System
open System.IO
open Spectre.Console
open SeqNets

let private inv = Globalization.CultureInfo.InvariantCulture
let private num (x: float) = x.ToString("0.000", inv)
let private joined (tokens: string list) = String.concat "" tokens

/// The attention weights [output; source] as a PNG heatmap with the tokens on the axes.
let heatmap (path: string) (title: string) (source: string list) (output: string list) (weights: float[][]) =
    use plt = new ScottPlot.Plot()
    let rows, cols = weights.Length, source.Length
    let data = Array2D.init rows cols (fun r c -> if c < weights[r].Length then weights[r][c] else 0.0)
    let hm = plt.Add.Heatmap(data)
    hm.Colormap <- ScottPlot.Colormaps.Viridis()
    plt.Add.ColorBar(hm) |> ignore
    let shown (t: string) = if t = " " then "␣" else t
    // The heatmap's cell (r, c) is centred at x = c, y = rows − 1 − r: row 0 on top.
    plt.Axes.Bottom.SetTicks([| for c in 0 .. cols - 1 -> float c |], [| for t in source -> shown t |])
    let outputs = Array.ofList (output @ [ "<eos>" ]) |> Array.truncate rows
    plt.Axes.Left.SetTicks([| for r in 0 .. rows - 1 -> float (rows - 1 - r) |], [| for t in outputs -> shown t |])
    plt.Axes.SetLimits(-0.5, float cols - 0.5, -0.5, float rows - 0.5)
    plt.XLabel "source token"
    plt.YLabel "output token"
    plt.Title title
    plt.SavePng(path, max 420 (40 * cols + 160), max 320 (32 * rows + 140)) |> ignore

/// The report as Markdown (what docs/seq2seq.md shows).
let markdown (r: Seq2SeqReport) =
    let lines =
        [ yield "| task | model | data | measure | value |"
          yield "| --- | --- | --- | --- | ---: |"
          for row in r.Rows -> $"| {r.Task} | {row.Model} | {row.Data} | {row.Measure} | {num row.Value} |" ]
    let seconds = r.Elapsed.TotalSeconds.ToString("0", inv)
    let verdict = if r.Holds then "holds." else "does NOT hold."
    String.Join("\n", lines) + $"\n\n{r.Steps} training steps, seed {r.Seed}, {seconds} s. Claim: {r.Claim} — {verdict}"

let run (task: string) (options: Seq2SeqOptions) (out: string) (asMarkdown: bool) : int =
    TrainCommand.checkWritable out
    let options = { options with SavePath = Path.Combine(out, $"{task}.ckpt") }
    let interactive = AnsiConsole.Profile.Capabilities.Interactive && not asMarkdown
    let mutable last = DateTime.MinValue
    let report =
        let quiet = Action<string, int, float>(fun model step loss ->
            if (DateTime.UtcNow - last).TotalSeconds >= 10.0 then
                last <- DateTime.UtcNow
                eprintfn "%s: step %d/%d, loss %s" model step options.Steps (num loss))
        if interactive then
            AnsiConsole.Status().Start($"training {task}…", fun ctx ->
                let show = Action<string, int, float>(fun model step loss -> ctx.Status <- $"{Markup.Escape model}: step {step}/{options.Steps}, loss {num loss}")
                Seq2SeqTasks.run task { options with Progress = show })
        else Seq2SeqTasks.run task { options with Progress = quiet }
    Directory.CreateDirectory out |> ignore
    let pictures =
        report.Examples
        |> List.mapi (fun k (source, output, weights) ->
            let path = Path.Combine(out, $"attention-{task}-{k + 1}.png")
            if weights.Length > 0 then
                heatmap path $"{task}: \"{joined source}\" → \"{joined output}\"" source output weights
                Some path
            else None)
        |> List.choose id
    if asMarkdown then printfn "%s" (markdown report)
    else
        let table = Table().AddColumns("model", "data", "measure", "value")
        for row in report.Rows do table.AddRow(Markup.Escape row.Model, Markup.Escape row.Data, row.Measure, num row.Value) |> ignore
        AnsiConsole.Write table
        let verdict = if report.Holds then "[green]holds[/]" else "[red]does not hold[/]"
        AnsiConsole.MarkupLine($"claim: {Markup.Escape report.Claim} — {verdict}")
        for s, o, _ in report.Examples do
            AnsiConsole.MarkupLine($"  {Markup.Escape (joined s)} → {Markup.Escape (joined o)}")
    for p in pictures do eprintfn "heatmap: %s" p
    eprintfn "model: %s (Seq2Seq.load reads it)" options.SavePath
    if report.Holds then 0 else 1
