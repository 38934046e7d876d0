/// `seqnets task <name>`: trains and measures one of the generated tasks (Tasks.fs) and prints its
/// table; the exit code says whether the task's claim held (0) or not (1).
module SeqNets.Cli.TaskCommand

open System
open Spectre.Console
open SeqNets

let private inv = Globalization.CultureInfo.InvariantCulture
let private num (x: float) = x.ToString("0.000", inv)
let private seconds (t: TimeSpan) = t.TotalSeconds.ToString("0", inv)

/// The report as a Markdown table (what docs/tasks.md shows).
let markdown (r: TaskReport) =
    let lines =
        [ yield "| task | model | data | measure | value |"
          yield "| --- | --- | --- | --- | ---: |"
          for row in r.Rows -> $"| {r.Task} ({r.Shape}) | {row.Model} | {row.Data} | {row.Measure} | {num row.Value} |" ]
    String.Join("\n", lines)
    + $"\n\n{r.Steps} training steps per network, seed {r.Seed}, {seconds r.Elapsed} s. Claim: {r.Claim} — "
    + (if r.Holds then "holds." else "does NOT hold.")

let run (name: string) (options: TaskOptions) (asMarkdown: bool) : int =
    if not (List.contains name Tasks.names) then
        raise (ArgumentException($"""task: expected one of {String.Join(", ", Tasks.names)}, but got '{name}'.""", "task"))
    let interactive = AnsiConsole.Profile.Capabilities.Interactive && not asMarkdown
    let mutable last = DateTime.MinValue
    let progress =
        Action<string, int, float>(fun model step loss ->
            if not interactive && (DateTime.UtcNow - last).TotalSeconds >= 10.0 then
                last <- DateTime.UtcNow
                eprintfn "%s: step %d/%d, loss %s" model step options.Steps (num loss))
    let report =
        if interactive then
            AnsiConsole.Status().Start($"training {name}…", fun ctx ->
                let show = Action<string, int, float>(fun model step loss -> ctx.Status <- $"{Markup.Escape model}: step {step}/{options.Steps}, loss {num loss}")
                Tasks.run name { options with Progress = show })
        else Tasks.run name { options with Progress = progress }
    if asMarkdown then printfn "%s" (markdown report)
    else
        let table = Table().AddColumns("model", "data", "measure", "value")
        for row in report.Rows do
            table.AddRow(Markup.Escape row.Model, Markup.Escape row.Data, row.Measure, num row.Value) |> ignore
        AnsiConsole.MarkupLine($"[bold]{report.Task}[/] ({report.Shape}): {report.Steps} steps per network, seed {report.Seed}, {seconds report.Elapsed} s")
        AnsiConsole.Write table
        let verdict = if report.Holds then "[green]holds[/]" else "[red]does not hold[/]"
        AnsiConsole.MarkupLine($"claim: {Markup.Escape report.Claim} — {verdict}")
    if report.Holds then 0 else 1
