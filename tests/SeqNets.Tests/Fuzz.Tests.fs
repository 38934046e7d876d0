/// Inputs the fuzzers found (tests/fixtures/fuzz/<target>/), replayed through the fuzz targets
/// (tools/fuzz/SeqNets.Fuzz/Targets.fs, compiled into these tests): each must get the reader's
/// documented answer. They run in a child process whose managed heap is capped at 1 GiB, so an
/// input that makes a reader allocate without bound fails there instead of taking the machine.
module SeqNets.Tests.FuzzTests

open System
open System.IO
open Expecto
open SeqNets

let private fixtures =
    lazy (
        let rec up (dir: DirectoryInfo) =
            if isNull dir then None
            else
                let candidate = Path.Combine(dir.FullName, "tests", "fixtures", "fuzz")
                if Directory.Exists candidate then Some candidate else up dir.Parent
        match up (DirectoryInfo AppContext.BaseDirectory) with
        | Some d -> d
        | None -> failtest "tests/fixtures/fuzz not found above the test binaries")

/// Replays every file of a target's folder in a child process (see Main.fs, --replay-fuzz).
let private replay (target: string) =
    let dir = Path.Combine(fixtures.Value, target)
    if not (Directory.Exists dir) || Directory.GetFiles dir |> Array.isEmpty then skiptest $"no inputs for {target}"
    let psi = Diagnostics.ProcessStartInfo("dotnet", ResizeArray [ Path.Combine(AppContext.BaseDirectory, "SeqNets.Tests.dll"); "--replay-fuzz"; target; dir ])
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    psi.Environment["DOTNET_GCHeapHardLimit"] <- "0x40000000"
    use p = Diagnostics.Process.Start psi
    let err = p.StandardError.ReadToEndAsync()
    let out = p.StandardOutput.ReadToEnd()
    p.WaitForExit()
    Expect.equal p.ExitCode 0 $"every input gets the reader's documented answer:\n{out}{err.Result}"

// Sequenced for the same reason as the command-line tests: their child processes' SIGCHLD.
[<Tests>]
let tests =
    testSequenced <| testList "Fuzzed inputs" [
        for target, _ in SeqNets.Fuzz.Targets.all do
            yield testCase $"{target}: the inputs the fuzzer found are answered as documented" (fun () -> replay target)

        // A (checksummed) payload that claims 1.4·10⁹ doubles (11 GB): the reader checks every size
        // against the bytes that remain before it allocates anything.
        yield testCase "a checkpoint whose tensor claims more values than its payload holds is refused without allocating them" (fun () ->
            let payload = File.ReadAllBytes(Path.Combine(fixtures.Value, "checkpoint-payload", "huge-tensor-count.payload"))
            let path = Path.Combine(Path.GetTempPath(), $"seqnets-huge-{Guid.NewGuid():N}.ckpt")
            try
                File.WriteAllBytes(path, SeqNets.Fuzz.Targets.frame payload)
                let before = GC.GetTotalAllocatedBytes true
                let e = Expect.throwsC (fun () -> Checkpoint.load path |> ignore) id
                Expect.isLessThan (GC.GetTotalAllocatedBytes true - before) (256L <<< 20) "allocates less than 256 MiB"
                Expect.isFalse (e.Message.Contains "OutOfMemory") $"a clear message: {e.Message}"
            finally File.Delete path)
    ]
