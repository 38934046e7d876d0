/// How `seqnets` ends: one line on standard error naming what went wrong, and an exit code that
/// says which kind of thing it was. Nothing escapes as an unhandled exception (which the runtime
/// turns into an abort, exit 134).
module SeqNets.Cli.Errors

open System
open System.IO
open Argu
open SeqNets

/// The exit codes (`seqnets --help` lists them).
[<RequireQualifiedAccess>]
module ExitCode =
    [<Literal>]
    let Done = 0
    [<Literal>]
    let Internal = 1
    [<Literal>]
    let Usage = 2
    [<Literal>]
    let Engine = 3
    [<Literal>]
    let BadInput = 4
    [<Literal>]
    let IO = 5
    [<Literal>]
    let Memory = 6
    /// SIGTERM or SIGHUP: the step finished and the checkpoint was saved (EX_TEMPFAIL: run again
    /// with --resume).
    [<Literal>]
    let Stopped = 75

/// A bad command line, as one line: the option, what it expects, what it got.
exception UsageError of string

/// A failure already described in one line, with its exit code.
exception Failed of code: int * message: string

/// Raises the usage error "option: expected …, but got …".
let usage (option: string) (expected: string) (actual: string) : 'a =
    raise (UsageError $"{option}: expected {expected}, but got {actual}.")

/// Raises the usage error for a word that looks like an option but is none of the command's.
let unknownOption (command: string) (word: string) : 'a =
    raise (UsageError $"{word}: not an option of `seqnets {command}`; `seqnets {command} --help` lists them.")

/// Argu's message without its usage text: the first line, without "ERROR: ".
let private firstLine (message: string) =
    let line = (message.Split('\n')[0]).Trim()
    if line.StartsWith "ERROR: " then line.Substring 7 else line

/// An exception's message; for an ArgumentException without the " (Parameter 'x')" that .NET adds
/// (SeqNets' messages start with the argument's name already).
let messageOf (e: exn) =
    match e with
    | :? ArgumentException as a when not (isNull a.ParamName) -> a.Message.Replace($" (Parameter '{a.ParamName}')", "")
    | e -> e.Message

/// Runs the command and turns every exception into a message and an exit code.
let handle (command: unit -> int) : int =
    let fail (code: int) (message: string) =
        eprintfn "seqnets: %s" message
        code
    try
        command ()
    with
    | :? ArguParseException as e when e.ErrorCode = ErrorCode.HelpText ->
        printfn "%s" e.Message
        ExitCode.Done
    | :? ArguParseException as e ->
        fail ExitCode.Usage $"{firstLine e.Message} (`seqnets --help` lists the commands, `seqnets train --help` the options of one)"
    | UsageError message -> fail ExitCode.Usage message
    | Failed(code, message) -> fail code message
    | :? EngineLoadException as e -> fail ExitCode.Engine e.Message
    | :? CheckpointWriteException as e -> fail ExitCode.IO e.Message
    | :? CheckpointException as e -> fail ExitCode.BadInput e.Message
    | :? StateDictException as e -> fail ExitCode.BadInput (messageOf e)
    | :? InvalidTextException as e -> fail ExitCode.BadInput ((messageOf e).Replace("InvalidText.Replace reads", "--invalid-utf8 replace reads"))
    | :? InsufficientMemoryException as e -> fail ExitCode.Memory e.Message
    | :? OutOfMemoryException as e -> fail ExitCode.Memory $"out of memory ({e.Message}); use smaller sizes"
    | :? ArgumentException as e -> fail ExitCode.Usage (messageOf e)
    | :? UnauthorizedAccessException as e -> fail ExitCode.IO e.Message
    | :? IOException as e -> fail ExitCode.IO e.Message
    | e -> fail ExitCode.Internal $"internal error, please report it: {e.GetType().FullName}: {e.Message}"
