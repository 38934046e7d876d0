module SeqNets.Tests.Main

open Expecto

[<EntryPoint>]
let main argv =
    match argv with
    | [| "--probe-engine" |] ->
        // Used by the engine-loading tests: load libtorch in a fresh process and report.
        try
            SeqNets.Native.ensure ()
            printfn "engine loaded"
            0
        with :? SeqNets.EngineLoadException as e ->
            eprintfn "%s" e.Message
            3
    | _ ->
        SeqNets.Native.ensure ()
        Tests.runTestsInAssemblyWithCLIArgs [] argv
