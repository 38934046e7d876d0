module SeqNets.FSharp.Tests.Main

open Expecto

[<EntryPoint>]
let main argv =
    SeqNets.Native.ensure ()
    Tests.runTestsInAssemblyWithCLIArgs [] argv
