/// The `seqnets` command line, run in child processes: a table of bad arguments (exit codes and
/// one-line messages, never an abort), work never destroyed, Unicode and binary text, and SIGTERM,
/// SIGHUP and SIGINT saving the checkpoint.
module SeqNets.Tests.CliTests

open System
open System.Diagnostics
open System.IO
open System.Text
open Expecto
open SeqNets

/// The CLI built beside these tests: SeqNets.Cli/bin/<configuration>/<framework>/seqnets.dll,
/// found above the test binaries.
let private cli =
    lazy (
        let framework = DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar))
        let configuration = framework.Parent
        let rec up (dir: DirectoryInfo) =
            if isNull dir then None
            else
                let candidate = Path.Combine(dir.FullName, "SeqNets.Cli", "bin", configuration.Name, framework.Name, "seqnets.dll")
                if File.Exists candidate then Some candidate else up dir.Parent
        match up framework with
        | Some p -> p
        | None -> failtest "SeqNets.Cli's build output (seqnets.dll) not found above the test binaries")

let private start (args: string list) =
    let psi = ProcessStartInfo("dotnet", ResizeArray(cli.Value :: args))
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    psi.RedirectStandardInput <- true
    psi.Environment["NO_COLOR"] <- "1"
    Process.Start psi

/// Runs `seqnets args` to the end: exit code, standard output, standard error.
let private run (args: string list) =
    use p = start args
    p.StandardInput.Close()
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit 300_000) then
        p.Kill true
        failtest $"seqnets {String.Join(' ', args)} did not end within 5 minutes"
    p.WaitForExit()
    p.ExitCode, out.Result, err.Result

let private withDir (f: string -> unit) =
    let d = Directory.CreateTempSubdirectory "seqnets-cli-"
    try f d.FullName finally d.Delete true

/// A small text, long enough for B = 4 streams of T = 16 steps.
let private small = String.replicate 40 "the state summarises the past. "

/// Fast training options for the tests.
let private quick = [ "--hidden"; "16"; "--batch"; "4"; "--seq-length"; "16"; "--validate-every"; "0" ]

/// One line on standard error, naming what it must.
let private expectOneLine (what: string) (err: string) (fragments: string list) =
    let lines = err.Trim().Split('\n') |> Array.filter (fun l -> l.Trim() <> "")
    Expect.equal lines.Length 1 $"{what}: one line on standard error, got:\n{err}"
    for f in fragments do Expect.stringContains lines[0] f $"{what}: the message names {f}"

/// A directory this process cannot write: /sys/kernel for root (whom file modes do not stop),
/// otherwise a temporary folder made read-only.
let private readOnlyDir (f: string -> unit) =
    if Environment.UserName = "root" || (try File.ReadAllText("/proc/self/status").Contains("Uid:\t0\t") with _ -> false) then
        if Directory.Exists "/sys/kernel" then f "/sys/kernel" else skiptest "no read-only folder to try as root"
    else
        withDir (fun d ->
            File.SetUnixFileMode(d, UnixFileMode.UserRead ||| UnixFileMode.UserExecute)
            try f d finally File.SetUnixFileMode(d, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute))

let private linuxOnly name (body: unit -> unit) =
    testCase name (fun () -> if OperatingSystem.IsLinux() then body () else skiptest "POSIX signals")

/// Starts a long training run in dir, waits for its first step, sends the signal and returns the
/// exit code and output.
let private signalled (dir: string) (signal: int) =
    let text = Path.Combine(dir, "text.txt")
    File.WriteAllText(text, small)
    let out = Path.Combine(dir, "run")
    use p = start ([ "train"; text; "--steps"; "1000000"; "--out"; out; "--sample-length"; "0" ] @ quick)
    use child = new Common.ChildSignal(p)
    p.StandardInput.Close()
    let err = p.StandardError.ReadToEndAsync()
    let seen = StringBuilder()
    let mutable line = p.StandardOutput.ReadLine()
    while not (isNull line) && not (line.StartsWith "step ") do
        seen.AppendLine line |> ignore
        line <- p.StandardOutput.ReadLine()
    if isNull line then failtest $"the run ended before its first step:\n{seen}{err.Result}"
    Expect.isTrue (child.Send signal) "the signal reached the running child"
    let rest = p.StandardOutput.ReadToEndAsync()
    Common.waitOrFail p 120_000 $"seqnets train after signal {signal}" (fun () -> seen.ToString() + line + "\n" + rest.Result + err.Result)
    p.ExitCode, seen.ToString() + line + "\n" + rest.Result + err.Result, Path.Combine(out, "model.ckpt")

/// Loads a checkpoint and returns its step.
let private stepOf (path: string) =
    let c = Checkpoint.load path
    for s in c.State do s.Dispose()
    (c.Network :> IDisposable).Dispose()
    c.Step

// Sequenced, after the parallel tests: dozens of child processes end here, and each end is a SIGCHLD
// for this process, which can land on a thread running libtorch kernels outside a SignalShield (the
// tests call TorchSharp directly) and corrupt its heap (see DEVELOPERS.md, "Signals and oneDNN").
[<Tests>]
let tests =
    testSequenced <| testList "Command line" [
        testList "bad arguments: exit 2 and one line naming the option, what it expects and what it got; never an abort" [
            let table =
                [ [ "train"; "--frobnicate" ], [ "--frobnicate"; "not an option" ]
                  [ "sample"; "--frobnicate" ], [ "--frobnicate"; "not an option" ]
                  [ "frobnicate" ], [ "frobnicate" ]
                  [ "train"; "--optimizer"; "sgd:abc" ], [ "--optimizer"; "sgd:abc" ]
                  [ "train"; "--optimizer"; "sgd:1.5" ], [ "--optimizer"; "[0, 1)" ]
                  [ "train"; "--optimizer"; "nesterov" ], [ "--optimizer"; "'nesterov'" ]
                  [ "train"; "--minutes"; "1e300" ], [ "--minutes"; "1E+300" ]
                  [ "train"; "--minutes"; "-1" ], [ "--minutes"; "-1" ]
                  [ "train"; "--minutes"; "0" ], [ "--minutes"; "0" ]
                  [ "train"; "--minutes"; "NaN" ], [ "--minutes"; "NaN" ]
                  [ "train"; "--steps"; "0" ], [ "--steps"; "positive"; "0" ]
                  [ "train"; "--steps"; "-1" ], [ "--steps"; "-1" ]
                  [ "train"; "--steps"; "1.5" ], [ "--steps"; "1.5" ]
                  [ "train"; "--steps"; "5"; "--minutes"; "2" ], [ "--steps and --minutes"; "both" ]
                  [ "train"; "--hidden"; "abc" ], [ "--hidden"; "abc" ]
                  [ "train"; "--hidden"; "0" ], [ "--hidden"; "0" ]
                  [ "train"; "--hidden" ], [ "--hidden" ]
                  [ "train"; "--layers"; "-2" ], [ "--layers"; "-2" ]
                  [ "train"; "--batch"; "0" ], [ "--batch"; "0" ]
                  [ "train"; "--seq-length"; "0" ], [ "--seq-length"; "0" ]
                  [ "train"; "--cell"; "transformer" ], [ "--cell"; "'transformer'" ]
                  [ "train"; "--cell"; "mrnn-0" ], [ "--cell"; "'mrnn-0'" ]
                  [ "train"; "--bptt"; "truncated:0" ], [ "--bptt"; "'truncated:0'" ]
                  [ "train"; "--bptt"; "randomized:1" ], [ "--bptt"; "'randomized:1'" ]
                  [ "train"; "--lr"; "0" ], [ "--lr"; "0" ]
                  [ "train"; "--lr"; "Infinity" ], [ "--lr"; "Infinity" ]
                  [ "train"; "--clip"; "-5" ], [ "--clip"; "-5" ]
                  [ "train"; "--clip"; "5"; "--clip-value"; "1" ], [ "--clip and --clip-value"; "both" ]
                  [ "train"; "--cosine" ], [ "--cosine"; "--steps" ]
                  [ "train"; "--path"; "gpu" ], [ "--path"; "'gpu'" ]
                  [ "train"; "--invalid-utf8"; "ignore" ], [ "--invalid-utf8"; "'ignore'" ]
                  [ "train"; "--validate-every"; "-1" ], [ "--validate-every"; "-1" ]
                  [ "train"; "--sample-length"; "-1" ], [ "--sample-length"; "-1" ]
                  [ "train"; "--seed"; "-1" ], [ "--seed"; "-1" ]
                  [ "train"; "--out"; "" ], [ "--out" ]
                  [ "train"; "no-such-file.txt" ], [ "no such file"; "no-such-file.txt" ]
                  [ "sample"; "--length"; "-3" ], [ "--length"; "-3" ]
                  [ "sample"; "--temperature"; "0" ], [ "--temperature"; "0" ]
                  [ "sample"; "--top-k"; "-1" ], [ "--top-k"; "-1" ]
                  [ "verify"; "--cases"; "0" ], [ "--cases"; "0" ]
                  [ "verify"; "--tolerance"; "-1" ], [ "--tolerance"; "-1" ]
                  [ "gradflow"; "no-such-cell" ], [ "gradflow"; "'no-such-cell'" ]
                  [ "gradflow"; "lstm"; "--lags"; "0" ], [ "--lags"; "0" ]
                  [ "gradflow"; "lstm"; "--rows"; "0" ], [ "--rows"; "0" ]
                  [ "gradflow"; "lstm"; "--stride"; "-2" ], [ "--stride"; "-2" ]
                  [ "longrange"; "--task"; "sorting" ], [ "--task"; "'sorting'" ]
                  [ "longrange"; "--task"; "adding"; "--lags"; "10,x" ], [ "--lags"; "'10,x'" ]
                  [ "longrange"; "--task"; "adding"; "--lags"; "1" ], [ "--lags"; "'1'" ]
                  [ "longrange"; "--task"; "copy"; "--steps"; "0" ], [ "--steps"; "0" ] ]
            for args, fragments in table do
                let name = String.Join(" ", args |> List.map (fun a -> if a = "" then "''" else a))
                yield testCase name (fun () ->
                    withDir (fun dir ->
                        let out = Path.Combine(dir, "out")
                        let code, _, err = run (args @ (if List.head args = "train" && not (List.contains "--out" args) then [ "--out"; out ] else []))
                        Expect.equal code 2 $"exit code 2 for seqnets {name}; standard error:\n{err}"
                        expectOneLine name err fragments
                        Expect.isFalse (Directory.Exists out) "nothing was written"))
        ]

        testCase "gradflow: fresh Elman and LSTM cells on a text give every picture with its CSV; a missing checkpoint is exit 4" <| fun () ->
            withDir (fun dir ->
                let text = Path.Combine(dir, "small.txt")
                File.WriteAllText(text, small)
                let out = Path.Combine(dir, "flow")
                let code, stdout, err = run [ "gradflow"; "elman-tanh,lstm"; "--text"; text; "--seq-length"; "12"; "--rows"; "3"; "--hidden"; "5"; "--out"; out ]
                Expect.equal code 0 $"exit 0; standard error:\n{err}"
                for name in [ "lags-spectral"; "lags-term"; "lags-loss-gradient"; "truncation"; "heatmap-lstm-h-5-at-initialisation"; "spectrum-elman-tanh-h-5-at-initialisation" ] do
                    Expect.isTrue (File.Exists(Path.Combine(out, name + ".png"))) $"{name}.png written ({stdout})"
                    Expect.isTrue (File.Exists(Path.Combine(out, name + ".csv"))) $"{name}.csv written"
                let csv = File.ReadAllLines(Path.Combine(out, "lags-loss-gradient.csv"))
                Expect.equal csv.Length (1 + 2 * 12) "a header and one line per lag and model"
                let code, _, err = run [ "gradflow"; Path.Combine(dir, "missing.ckpt"); "--out"; out ]
                Expect.equal code 4 $"exit 4 for a missing checkpoint: {err}"
                expectOneLine "missing checkpoint" err [ "missing.ckpt" ])

        testCase "--help lists the exit codes and exits 0" <| fun () ->
            let code, out, _ = run [ "--help" ]
            Expect.equal code 0 "exit 0"
            for c in [ "Exit codes"; "75"; "not enough memory" ] do Expect.stringContains out c "the help names the exit codes"

        testCase "a run that would train nothing never replaces an earlier checkpoint" <| fun () ->
            withDir (fun dir ->
                let out = Path.Combine(dir, "run")
                Directory.CreateDirectory out |> ignore
                let ckpt = Path.Combine(out, "model.ckpt")
                File.WriteAllText(ckpt, "an hour of training")
                for args in [ [ "--steps"; "0" ]; [ "--steps"; "-1" ]; [ "--minutes"; "-1" ]; [ "--steps"; "2" ] ] do
                    let code, _, err = run ([ "train"; "--out"; out ] @ args)
                    Expect.equal code 2 $"""exit 2 for {String.Join(" ", args)}: {err}"""
                    Expect.equal (File.ReadAllText ckpt) "an hour of training" "the earlier checkpoint is untouched"
                let _, _, err = run [ "train"; "--out"; out; "--steps"; "2" ]
                Expect.stringContains err "--overwrite" "says how to replace it deliberately")

        testCase "--out naming a file is refused before anything is read or trained" <| fun () ->
            withDir (fun dir ->
                let file = Path.Combine(dir, "notes.txt")
                File.WriteAllText(file, "keep me")
                let code, _, err = run [ "train"; "--out"; file; "--steps"; "1" ]
                Expect.equal code 2 $"exit 2: {err}"
                expectOneLine "--out file" err [ "--out"; file; "is a file" ]
                Expect.equal (File.ReadAllText file) "keep me" "the file is untouched")

        testCase "--out in a folder that cannot be written: exit 5, found before training" <| fun () ->
            readOnlyDir (fun dir ->
                let sw = Stopwatch.StartNew()
                let code, out, err = run ([ "train"; "--out"; dir; "--steps"; "1000" ] @ quick)
                Expect.equal code 5 $"exit 5 (I/O): {err}"
                expectOneLine "read-only --out" err [ "--out"; dir; "nothing was trained" ]
                Expect.isFalse (out.Contains "step ") "no step was trained"
                Expect.isLessThan sw.Elapsed.TotalSeconds 120.0 "refused at once")

        testCase "seqnets seq2seq saves its attention model and heatmaps in --out; the model loads and translates" <| fun () ->
            withDir (fun dir ->
                let out = Path.Combine(dir, "s2s")
                let code, _, err = run [ "seq2seq"; "--task"; "dates"; "--steps"; "3"; "--bar"; "0"; "--out"; out ]
                Expect.equal code 0 $"exit 0 with --bar 0: {err}"
                let path = Path.Combine(out, "dates.ckpt")
                Expect.stringContains err path "names where the model went"
                Expect.isTrue (File.Exists(Path.Combine(out, "attention-dates-1.png"))) "a heatmap was drawn"
                let net, sv, tv = Seq2Seq.load path
                use _ = net
                let outputs = Seq2Seq.translate net sv tv [ TokenVocabulary.characters "25.11.2026" ]
                Expect.equal outputs.Length 1 "one translation per source"
                Expect.isTrue (fst outputs.Head |> List.forall (fun t -> tv.Contains t)) "the output is made of target tokens")

        testCase "seqnets seq2seq: --out in a folder that cannot be written: exit 5, found before training" <| fun () ->
            readOnlyDir (fun dir ->
                let code, out, err = run [ "seq2seq"; "--task"; "addition"; "--steps"; "100000"; "--out"; dir ]
                Expect.equal code 5 $"exit 5 (I/O): {err}"
                expectOneLine "read-only --out" err [ "--out"; dir; "nothing was trained" ]
                Expect.equal out "" "no table")

        testCase "--resume refuses the options its checkpoint fixes when they differ, and accepts them when equal" <| fun () ->
            withDir (fun dir ->
                let text = Path.Combine(dir, "text.txt")
                File.WriteAllText(text, small)
                let out = Path.Combine(dir, "run")
                let code, _, err = run ([ "train"; text; "--steps"; "2"; "--out"; out; "--sample-length"; "0" ] @ quick)
                Expect.equal code 0 $"the first run trains: {err}"
                let ckpt = Path.Combine(out, "model.ckpt")
                let before = File.ReadAllBytes ckpt
                for flag, value in [ "--hidden", "32"; "--cell", "gru"; "--layers", "2"; "--batch", "2"; "--lr", "0.1"; "--optimizer", "sgd"; "--bptt", "full"; "--seq-length", "8" ] do
                    let code, _, err = run [ "train"; text; "--resume"; ckpt; "--out"; out; "--steps"; "1"; flag; value ]
                    Expect.equal code 2 $"{flag} {value} differs from the checkpoint: exit 2: {err}"
                    expectOneLine $"{flag} on resume" err [ flag; value; "the checkpoint has" ]
                    Expect.sequenceEqual (File.ReadAllBytes ckpt) before "the checkpoint is untouched"
                let code, _, err = run ([ "train"; text; "--resume"; ckpt; "--out"; out; "--steps"; "2"; "--sample-length"; "0" ] @ quick)
                Expect.equal code 0 $"the same options resume: {err}"
                Expect.equal (stepOf ckpt) 4 "two more steps")

        testCase "--path derived trains on the engine, says so first, and its checkpoint resumes on it" <| fun () ->
            withDir (fun dir ->
                let text = Path.Combine(dir, "text.txt")
                File.WriteAllText(text, small)
                let out = Path.Combine(dir, "run")
                let code, stdout, err = run ([ "train"; text; "--steps"; "2"; "--out"; out; "--sample-length"; "0"; "--cell"; "gru-lecture"; "--bptt"; "randomized:8"; "--path"; "derived" ] @ quick)
                Expect.equal code 0 $"trains: {err}"
                // The first line (wrapped at the console's width) names the path in parentheses.
                let first = Text.RegularExpressions.Regex.Replace(stdout.Substring(0, max 0 (stdout.IndexOf "\nstep ")), @"\s+", " ")
                Expect.stringContains first "(the engine on the derivation)" $"the first line names the path: {stdout}"
                let ckpt = Path.Combine(out, "model.ckpt")
                let c = Checkpoint.load ckpt
                for s in c.State do s.Dispose()
                (c.Network :> IDisposable).Dispose()
                Expect.equal (c.Training |> Option.bind _.Path) (Some Derived) "the checkpoint keeps the path"
                let code, _, err = run ([ "train"; text; "--resume"; ckpt; "--out"; out; "--steps"; "1"; "--sample-length"; "0"; "--cell"; "gru-lecture"; "--bptt"; "randomized:8"; "--path"; "derived" ] @ quick)
                Expect.equal code 0 $"resumes on the same path: {err}"
                Expect.equal (stepOf ckpt) 3 "one more step")

        testCase "a text with emoji trains, saves, resumes and samples; every character can prime" <| fun () ->
            withDir (fun dir ->
                let text = Path.Combine(dir, "emoji.txt")
                File.WriteAllText(text, String.replicate 60 "state 😀 summarises 👩‍👩‍👧 the past\u200F; 𝔘𝔫𝔦𝔠𝔬𝔡𝔢\n", UTF8Encoding false)
                let out = Path.Combine(dir, "run")
                let code, _, err = run ([ "train"; text; "--steps"; "3"; "--out"; out; "--sample-length"; "30" ] @ quick)
                Expect.equal code 0 $"trains: {err}"
                let ckpt = Path.Combine(out, "model.ckpt")
                let c = Checkpoint.load ckpt
                for s in c.State do s.Dispose()
                (c.Network :> IDisposable).Dispose()
                Expect.isTrue (c.Vocabulary.Value.Contains(Rune 0x1F600)) "😀 is one character of the vocabulary"
                Expect.isTrue (c.Vocabulary.Value.Contains(Rune 0x1D518)) "so is 𝔘"
                for prime in [ "😀"; "👩"; "𝔘"; "\u200F" ] do
                    let code, sample, err = run [ "sample"; ckpt; "--prime"; prime; "--length"; "20" ]
                    Expect.equal code 0 $"samples after {prime}: {err}"
                    Expect.isTrue (sample.StartsWith prime) "the sample follows the prime"
                let code, _, err = run ([ "train"; text; "--resume"; ckpt; "--out"; out; "--steps"; "1"; "--sample-length"; "0" ] @ quick)
                Expect.equal code 0 $"resumes: {err}")

        testCase "binary garbage: exit 4 naming the byte offset; with --invalid-utf8 replace it trains, saves and samples" <| fun () ->
            withDir (fun dir ->
                let rng = Random 5
                let bytes = Array.init 20000 (fun _ -> byte (rng.Next 256))
                bytes[0] <- byte 'a'
                bytes[1] <- 0xFFuy
                let file = Path.Combine(dir, "garbage.bin")
                File.WriteAllBytes(file, bytes)
                let out = Path.Combine(dir, "run")
                let code, _, err = run ([ "train"; file; "--steps"; "2"; "--out"; out ] @ quick)
                Expect.equal code 4 $"exit 4: {err}"
                expectOneLine "garbage" err [ "byte offset 1"; "FF"; "--invalid-utf8 replace" ]
                let code, _, err = run ([ "train"; file; "--steps"; "2"; "--out"; out; "--invalid-utf8"; "replace"; "--sample-length"; "20" ] @ quick)
                Expect.equal code 0 $"trains with replace: {err}"
                let code, _, err = run [ "sample"; Path.Combine(out, "model.ckpt"); "--length"; "30" ]
                Expect.equal code 0 $"samples: {err}")

        testCase "a 10⁶-unit hidden layer is refused before allocation: exit 6 naming the need and what there is" <| fun () ->
            withDir (fun dir ->
                let code, _, err = run [ "train"; "--hidden"; "1000000"; "--steps"; "1"; "--out"; Path.Combine(dir, "run") ]
                Expect.equal code 6 $"exit 6: {err}"
                expectOneLine "huge model" err [ "1×1000000"; "needs about"; "available" ])

        testCase "a checkpoint that cannot be written to --out is saved elsewhere, named, and exit 5" <| fun () ->
            withDir (fun dir ->
                let text = Path.Combine(dir, "text.txt")
                File.WriteAllText(text, small)
                let out = Path.Combine(dir, "run")
                use p = start ([ "train"; text; "--steps"; "1000000"; "--out"; out; "--sample-length"; "0" ] @ quick)
                use child = new Common.ChildSignal(p)
                p.StandardInput.Close()
                let err = p.StandardError.ReadToEndAsync()
                let mutable line = p.StandardOutput.ReadLine()
                while not (isNull line) && not (line.StartsWith "step ") do line <- p.StandardOutput.ReadLine()
                // The folder disappears under the run; a file takes its place.
                Directory.Delete(out, true)
                File.WriteAllText(out, "in the way")
                Expect.isTrue (child.Send 15) "SIGTERM reached the running child"
                let rest = p.StandardOutput.ReadToEndAsync()
                Common.waitOrFail p 120_000 "seqnets train after SIGTERM" (fun () -> rest.Result + err.Result)
                Expect.equal p.ExitCode 5 $"exit 5: {err.Result}"
                let message = err.Result
                Expect.stringContains message "seqnets-rescue-" "names where the checkpoint went"
                let rescue = message.Split(''') |> Array.find (fun s -> s.Contains "seqnets-rescue-")
                try Expect.isGreaterThan (stepOf rescue) 0 "the rescued checkpoint loads, with the steps trained"
                finally File.Delete rescue)

        testList "signals" [
            for signal, name, expected in [ 15, "SIGTERM", 75; 1, "SIGHUP", 75; 2, "SIGINT", 0 ] do
                linuxOnly $"{name} finishes the step, saves the checkpoint and exits {expected}" <| fun () ->
                    withDir (fun dir ->
                        let code, output, ckpt = signalled dir signal
                        Expect.equal code expected $"exit {expected} after {name}:\n{output}"
                        Expect.stringContains output "interrupted" $"says it was interrupted:\n{output}"
                        Expect.isGreaterThan (stepOf ckpt) 0 "the checkpoint loads, with the steps trained")
        ]
    ]
