/// The signal shield: asynchronous signals are kept off threads while they run libtorch kernels
/// (oneDNN's JIT GEMM moves the stack pointer into the heap; a signal frame written there corrupts
/// it), and the process still receives them.
module SeqNets.Tests.SignalsTests

open System
open System.Diagnostics
open System.IO
open System.Threading
open Expecto
open TorchSharp
open SeqNets

let private SIGINT, SIGHUP, SIGTERM, SIGSEGV, SIGRTMIN = 2, 1, 15, 11, 34

/// Runs `f` on a fresh thread (its signal mask is the creator's, and the test runner's other
/// tests cannot disturb it) and returns its result.
let private onThread (f: unit -> 'a) : 'a =
    let mutable result = Unchecked.defaultof<'a>
    let mutable error: exn = null
    let t = Thread((fun () -> try result <- f () with e -> error <- e), 4 * 1024 * 1024)
    t.Start()
    t.Join()
    if not (isNull error) then raise (AggregateException error)
    result

/// A cell whose step records whether SIGINT is blocked while it runs.
let private observingCell (seen: ResizeArray<bool>) =
    let L = ParameterLayout [ "W", [ 3L; 2L ]; "U", [ 3L; 3L ] ]
    Cell.custom "observer" 2 3 3 L (fun theta x h ->
        seen.Add(SignalShield.isBlocked SIGINT)
        (Tensors.linear (L.View(theta, "W")) x + Tensors.linear (L.View(theta, "U")) h).tanh ())

let private linuxOnly name (body: unit -> unit) =
    testCase name (fun () -> if OperatingSystem.IsLinux() then body () else skiptest "signal masks are a POSIX feature; the shield does nothing elsewhere")

/// The test program run in a child process that trains under a hail of SIGINTs (see Main.fs).
let private runUnderSignals (steps: int) (intervalMs: int) =
    use p = Common.startSelf [ "--train-under-signals"; string steps ]
    use signal = new Common.ChildSignal(p)
    let err = p.StandardError.ReadToEndAsync()
    let ready = (p.StandardOutput.ReadLine() |> Option.ofObj |> Option.defaultValue "").Trim()
    let out = p.StandardOutput.ReadToEndAsync()
    let mutable sent = 0
    let deadline = Diagnostics.Stopwatch.StartNew()
    if ready = "ready" then
        while not (p.WaitForExit intervalMs) && deadline.Elapsed.TotalMinutes < 5.0 do
            if signal.Send SIGINT then sent <- sent + 1
    Common.waitOrFail p 60_000 "training under signals" (fun () -> ready + "\n" + out.Result + err.Result)
    p.ExitCode, sent, ready + "\n" + out.Result + err.Result

[<Tests>]
let tests =
    testList "Signal shield" [
        linuxOnly "enter blocks every listed asynchronous signal on the calling thread; leaving restores the mask" <| fun () ->
            let before, inside, after =
                onThread (fun () ->
                    let probe () = SignalShield.signals |> List.map SignalShield.isBlocked
                    let before = probe ()
                    let inside = using (SignalShield.enter ()) (fun _ -> probe ())
                    before, inside, probe ())
            Expect.isTrue (List.forall not before) "a fresh thread blocks none of them"
            Expect.isTrue (List.forall id inside) $"inside the shield every listed signal is blocked: {inside}"
            Expect.equal after before "leaving the shield restores the thread's mask"

        linuxOnly "synchronous signals and the runtime's real-time signals are never blocked" <| fun () ->
            let blocked = onThread (fun () -> using (SignalShield.enter ()) (fun _ -> SignalShield.isBlocked SIGSEGV, SignalShield.isBlocked SIGRTMIN))
            Expect.equal blocked (false, false) "SIGSEGV and SIGRTMIN stay deliverable"

        linuxOnly "nested shields: only the outermost one restores" <| fun () ->
            let states =
                onThread (fun () ->
                    let outer = SignalShield.enter ()
                    let inner = SignalShield.enter ()
                    let a = SignalShield.isBlocked SIGINT
                    inner.Dispose()
                    let b = SignalShield.isBlocked SIGINT
                    outer.Dispose()
                    [ a; b; SignalShield.isBlocked SIGINT ])
            Expect.equal states [ true; true; false ] "blocked, still blocked after the inner exit, restored after the outer"

        linuxOnly "a scope left twice counts once; left on another thread, it is an error" <| fun () ->
            let afterTwice, crossThread =
                onThread (fun () ->
                    let outer = SignalShield.enter ()
                    let inner = SignalShield.enter ()
                    inner.Dispose()
                    inner.Dispose()
                    let stillBlocked = SignalShield.isBlocked SIGINT
                    let error = onThread (fun () -> try outer.Dispose(); None with :? InvalidOperationException as e -> Some e.Message)
                    outer.Dispose()
                    (stillBlocked, SignalShield.isBlocked SIGINT), error)
            Expect.equal afterTwice (true, false) "the outer scope still holds after the inner one is left twice; leaving it restores"
            Expect.isSome crossThread "leaving a scope on another thread raises InvalidOperationException"

        testCase "isBlocked names a signal number out of range" <| fun () ->
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> SignalShield.isBlocked 0 |> ignore) "signal 0"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> SignalShield.isBlocked 65 |> ignore) "signal 65"

        linuxOnly "a shield keeps what the caller had blocked itself" <| fun () ->
            let hup, int =
                onThread (fun () ->
                    let set = Array.zeroCreate<uint64> 16
                    set[0] <- 1UL <<< (SIGHUP - 1)
                    Common.Libc.pthread_sigmask(0, set, null) |> ignore // SIG_BLOCK
                    using (SignalShield.enter ()) ignore
                    SignalShield.isBlocked SIGHUP, SignalShield.isBlocked SIGINT)
            Expect.isTrue hup "the caller's own block of SIGHUP survives the shield"
            Expect.isFalse int "SIGINT, which the caller had not blocked, is released"

        linuxOnly "library calls run shielded: a custom cell's step sees SIGINT blocked, the caller's thread is restored after" <| fun () ->
            let seen = ResizeArray<bool>()
            let after =
                onThread (fun () ->
                    let cell = observingCell seen
                    use theta = torch.randn(int64 cell.ParameterCount, dtype = torch.float64)
                    use xs = torch.randn([| 4L; 2L; 2L |], dtype = torch.float64)
                    use s0 = torch.zeros([| 2L; 3L |], dtype = torch.float64)
                    use states = Recurrence.unroll cell theta xs s0
                    SignalShield.isBlocked SIGINT)
            Expect.equal seen.Count 4 "the step ran T = 4 times"
            Expect.isTrue (Seq.forall id seen) "every step ran with SIGINT blocked"
            Expect.isFalse after "the caller's thread takes signals again after the call"

        linuxOnly "a training step leaves the caller's signal mask as it found it" <| fun () ->
            let after =
                onThread (fun () ->
                    let text = String.replicate 40 "the state summarises the past. "
                    let corpus = Corpus.split 0.9 text
                    use model = SeqNets.CharModel.create { Kind = Lstm; VocabularySize = corpus.Vocabulary.Size; HiddenSize = 16; Layers = 1 } torch.float32 1UL
                    use trainer = new Trainer(model, corpus.Train, { TrainingConfig.Default with Batch = 4; SequenceLength = 8 })
                    trainer.Step() |> ignore
                    SignalShield.isBlocked SIGINT)
            Expect.isFalse after "SIGINT is not left blocked"

        testSequenced <| testList "fresh processes" [
            linuxOnly "libtorch's worker threads, started by Native.ensure, block SIGINT" <| fun () ->
                use p = Common.startSelf [ "--worker-masks" ]
                let _ = p.StandardError.ReadToEndAsync()
                let lines = p.StandardOutput.ReadToEnd().Split('\n') |> Array.map _.Trim()
                p.WaitForExit()
                Expect.equal p.ExitCode 0 $"the probe ran: {String.Join('\n', lines)}"
                let threads = lines |> Array.pick (fun l -> if l.StartsWith "threads " then Some(int (l.Substring 8)) else None)
                let workers = lines |> Array.filter (fun l -> l.StartsWith "worker ")
                if threads < 2 then skiptest "libtorch runs one thread here: no worker threads to check"
                Expect.isGreaterThanOrEqual workers.Length (threads - 1) $"one worker per extra thread ({threads} threads): {String.Join('\n', lines)}"
                Expect.all workers (fun l -> l.EndsWith "sigint-blocked true") $"every worker blocks SIGINT: {String.Join('\n', lines)}"

            linuxOnly "training survives a SIGINT every 20 ms, and every one reaches the process's handler" <| fun () ->
                let code, sent, output = runUnderSignals 400 20
                Expect.equal code 0 $"the child exits normally (134 = abort on a corrupted heap, 139 = segmentation fault):\n{output}"
                Expect.isGreaterThan sent 50 $"the test sent enough signals to matter ({sent})"
                let handled =
                    output.Split('\n')
                    |> Array.tryPick (fun l -> if l.StartsWith "signals handled: " then Some(int (l.Substring 17)) else None)
                Expect.isSome handled $"the child reports the signals it handled:\n{output}"
                // Signals sent close together coalesce while one is pending, so fewer may arrive.
                Expect.isGreaterThan handled.Value (sent / 4) $"the handler saw the signals ({handled.Value} of {sent})"
        ]
    ]
