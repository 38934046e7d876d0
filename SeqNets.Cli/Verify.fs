/// `seqnets verify`: for every built-in cell, the largest disagreement between the closed-form
/// BPTT routes and autodiff over random cases, and the time each route took.
module SeqNets.Cli.VerifyCommand

open System
open TorchSharp
open Spectre.Console
open SeqNets

type Row =
    { Cell: string
      Cases: int
      StateJacobian: float
      ParameterJacobian: float
      RecurrenceVsClosed: float
      ClosedVsAutodiff: float
      MinMagnitude: float
      MaxMagnitude: float
      Closed: TimeSpan
      Recurrence: TimeSpan
      Autodiff: TimeSpan }

/// Runs `cases` random float64 cases per cell (T from 1 to maxSteps, every regime) and returns
/// one row per cell.
let measure (cases: int) (maxSteps: int) (seed: uint64) (progress: string -> unit) : Row list =
    let generator = new torch.Generator(seed)
    let rng = Random(int seed)
    let I, H, B = 3, 5, 2
    [ for cell in Verify.builtInCells I H do
          progress cell.Name
          let results =
              [ for k in 0 .. cases - 1 do
                    let regime = [| Vanishing; Moderate; Exploding |][k % 3]
                    let T = rng.Next(1, maxSteps + 1)
                    use _ = torch.NewDisposeScope()
                    let case = Verify.randomCase cell torch.float64 regime T B generator
                    yield Verify.identity cell case ]
          let worst f = results |> List.map f |> List.max
          let total f = results |> List.fold (fun (acc: TimeSpan) r -> acc + f r) TimeSpan.Zero
          yield
              { Cell = cell.Name
                Cases = cases
                StateJacobian = worst _.StateJacobianError
                ParameterJacobian = worst _.ParameterJacobianError
                RecurrenceVsClosed = worst _.RecurrenceVsClosedForm
                ClosedVsAutodiff = worst _.ClosedFormVsAutodiff
                MinMagnitude = results |> List.map _.Magnitude |> List.min
                MaxMagnitude = worst _.Magnitude
                Closed = total _.ClosedFormTime
                Recurrence = total _.RecurrenceTime
                Autodiff = total _.AutodiffTime } ]

let private e (x: float) = x.ToString("0.0e+00", Globalization.CultureInfo.InvariantCulture)
let private ms (t: TimeSpan) = t.TotalMilliseconds.ToString("0", Globalization.CultureInfo.InvariantCulture) + " ms"

/// Prints the table and returns 0 when every disagreement is within tolerance, 1 otherwise.
let run (cases: int) (maxSteps: int) (seed: uint64) (tolerance: float) : int =
    // Redirected output has no terminal width; give the table room instead of wrapping every cell.
    if Console.IsOutputRedirected then AnsiConsole.Profile.Width <- max AnsiConsole.Profile.Width 150
    AnsiConsole.MarkupLine(
        $"[bold]SeqNets verify[/]: ∂h_t/∂θ by (a) the recurrence a_t = b_t + c_t a_(t-1), (b) the closed form "
        + $"b_t + Σ_i (Π_j c_j) b_i from hand-derived c_t, b_t, and (c) reverse-mode autodiff; float64, {cases} random cases per cell, "
        + $"T in 1..{maxSteps}, weights scaled 0.1 / 1 / 3 (vanishing / moderate / exploding). Errors are max |x - y| / max |y|.")
    let rows =
        AnsiConsole.Status().Start("verifying", fun ctx ->
            measure cases maxSteps seed (fun name -> ctx.Status <- $"verifying {name}"))
    let table = Table().Border(TableBorder.Rounded)
    for h in [ "cell"; "c_t vs AD"; "b_t vs AD"; "(a) vs (b)"; "(b) vs (c)"; "|∂h/∂θ| range"; "(b) time"; "(a) time"; "(c) time" ] do
        table.AddColumn(TableColumn(h)) |> ignore
    for r in rows do
        table.AddRow(
            r.Cell, e r.StateJacobian, e r.ParameterJacobian, e r.RecurrenceVsClosed, e r.ClosedVsAutodiff,
            $"{e r.MinMagnitude} .. {e r.MaxMagnitude}", ms r.Closed, ms r.Recurrence, ms r.Autodiff) |> ignore
    AnsiConsole.Write table
    let worst =
        rows |> List.map (fun r -> List.max [ r.StateJacobian; r.ParameterJacobian; r.RecurrenceVsClosed; r.ClosedVsAutodiff ]) |> List.max
    if worst <= tolerance then
        AnsiConsole.MarkupLine($"[green]agreement[/]: worst relative disagreement {e worst} <= {e tolerance}")
        0
    else
        AnsiConsole.MarkupLine($"[red]disagreement[/]: worst relative disagreement {e worst} > {e tolerance}")
        1
