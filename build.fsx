// SeqNets build dispatcher: `dotnet fsi build.fsx <target>`. Each target is a plain dotnet
// command, so `dotnet build` and `dotnet run --project …` keep working without this file.
open System
open System.Diagnostics

let run (cmd: string) (args: string list) =
    printfn "> %s %s" cmd (String.Join(" ", args))
    use p = Process.Start(ProcessStartInfo(cmd, args))
    p.WaitForExit()
    if p.ExitCode <> 0 then exit p.ExitCode

let targets: (string * string * (string list -> unit)) list =
    [ "build", "build every project (Release)", fun _ -> run "dotnet" [ "build"; "SeqNets.slnx"; "-c"; "Release" ]
      "test", "run the test suite (Expecto + FsCheck)", fun rest -> run "dotnet" ([ "run"; "--project"; "tests/SeqNets.Tests"; "-c"; "Release"; "--" ] @ rest)
      "demo", "the closed form vs autodiff table for every cell", fun rest -> run "dotnet" ([ "run"; "--project"; "SeqNets.Cli"; "-c"; "Release"; "--"; "verify" ] @ rest)
      "cli", "run the seqnets command line with the given arguments", fun rest -> run "dotnet" ([ "run"; "--project"; "SeqNets.Cli"; "-c"; "Release"; "--" ] @ rest)
      "pack", "pack the NuGet packages into artifacts/packages", fun _ -> run "dotnet" [ "pack"; "SeqNets.slnx"; "-c"; "Release"; "-o"; "artifacts/packages" ]
      "clean", "remove build outputs", fun _ -> run "dotnet" [ "clean"; "SeqNets.slnx" ] ]

let usage () =
    printfn "usage: dotnet fsi build.fsx <target> [arguments]\n\ntargets:"
    for name, help, _ in targets do printfn "  %-8s %s" name help

match fsi.CommandLineArgs |> Array.toList |> List.tail with
| [] -> usage ()
| target :: rest ->
    match targets |> List.tryFind (fun (n, _, _) -> n = target) with
    | Some(_, _, f) -> f rest
    | None ->
        eprintfn "unknown target '%s'\n" target
        usage ()
        exit 2
