module SeqNets.Cli.Program

open System
open Argu

type VerifyArgs =
    | Cases of int
    | Max_Steps of int
    | Seed of uint64
    | Tolerance of float
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Cases _ -> "random cases per cell (default 50)."
            | Max_Steps _ -> "largest sequence length T (default 40)."
            | Seed _ -> "random seed (default 1)."
            | Tolerance _ -> "largest relative disagreement accepted (default 1e-9)."

[<HelpFlags("--help", "-h")>]
type Command =
    | [<CliPrefix(CliPrefix.None)>] Verify of ParseResults<VerifyArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Verify _ -> "check the closed-form BPTT identity against autodiff for every built-in cell."

[<EntryPoint>]
let main argv =
    let parser = ArgumentParser.Create<Command>(programName = "seqnets")
    try
        SeqNets.Native.ensure ()
        let results = parser.ParseCommandLine(argv, raiseOnUsage = true)
        match results.TryGetSubCommand() with
        | Some(Verify v) ->
            VerifyCommand.run (v.GetResult(Cases, 50)) (v.GetResult(Max_Steps, 40)) (v.GetResult(Seed, 1UL)) (v.GetResult(Tolerance, 1e-9))
        | None ->
            printfn "%s" (parser.PrintUsage())
            2
    with
    | :? ArguParseException as e ->
        eprintfn "%s" e.Message
        if e.ErrorCode = ErrorCode.HelpText then 0 else 2
    | :? SeqNets.EngineLoadException as e ->
        eprintfn "seqnets: %s" e.Message
        3
