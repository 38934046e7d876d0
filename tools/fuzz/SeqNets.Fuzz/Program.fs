/// seqnets-fuzz TARGET              run TARGET under AFL++ (SharpFuzz's out-of-process fork server)
/// seqnets-fuzz seeds DIR           write a seed corpus of valid files: DIR/<target>/…
/// seqnets-fuzz replay TARGET FILE… run files through TARGET and say which break its promise
/// seqnets-fuzz havoc TARGET SEEDS SECONDS [RANDOM-SEED]
///                                  mutate the seed files at random in this process, without AFL:
///                                  each input is written to SEEDS/../havoc-current.bin before it
///                                  runs, so an input that ends the process is left behind
module SeqNets.Fuzz.Program

open System
open System.IO
open System.Text
open SeqNets
open SeqNets.Fuzz

let private targetNamed (name: string) =
    match Targets.all |> List.tryFind (fun (n, _) -> n = name) with
    | Some(_, f) -> f
    | None -> failwith $"""unknown target '{name}': expected one of {String.Join(", ", Targets.all |> List.map fst)}"""

/// A small trained checkpoint's bytes.
let private checkpointBytes (kind: CellKind) (layers: int) (text: string) =
    let corpus = Corpus.split 1.0 text
    use model = CharModel.create { Kind = kind; VocabularySize = corpus.Vocabulary.Size; HiddenSize = 3; Layers = layers } TorchSharp.torch.float32 1UL
    use trainer = new Trainer(model, corpus.Train, { TrainingConfig.Default with Batch = 2; SequenceLength = 3; Strategy = Truncated 3 })
    trainer.Step() |> ignore
    let path = Path.Combine(Path.GetTempPath(), $"seqnets-seed-{Guid.NewGuid():N}.ckpt")
    try
        Checkpoint.save path trainer (Some corpus.Vocabulary)
        File.ReadAllBytes path
    finally File.Delete path

let private seeds (dir: string) =
    let write (target: string) (name: string) (bytes: byte[]) =
        let d = Path.Combine(dir, target)
        Directory.CreateDirectory d |> ignore
        File.WriteAllBytes(Path.Combine(d, name), bytes)
    let lstm = checkpointBytes Lstm 1 "abcab😀cab\n"
    let gru = checkpointBytes GruPyTorch 2 "héllo héllo"
    write "checkpoint" "lstm.ckpt" lstm
    write "checkpoint" "gru2.ckpt" gru
    write "checkpoint-payload" "lstm.payload" (Targets.payloadOf lstm)
    write "checkpoint-payload" "gru2.payload" (Targets.payloadOf gru)
    let pt = Path.Combine(Path.GetTempPath(), $"seqnets-seed-{Guid.NewGuid():N}.pt")
    try
        use a = TorchSharp.torch.arange(6.0f).reshape(2L, 3L)
        use b = TorchSharp.torch.ones(4L)
        Interop.writeStateDict pt [ "weight", a; "bias", b ]
        write "statedict" "two.pt" (File.ReadAllBytes pt)
        let cell = Cells.Gru.create Cells.PyTorch 2 3
        use theta = Cell.initParameters cell TorchSharp.torch.float32 (new TorchSharp.torch.Generator(1UL))
        Interop.exportCell cell theta pt
        write "statedict" "gru.pt" (File.ReadAllBytes pt)
    finally File.Delete pt
    write "statedict-pickle" "data.pkl" (Targets.templatePickle ())
    write "text" "unicode.txt" (Encoding.UTF8.GetBytes "state 😀 summarises\nthe past: ünïcödé, עברית, 中文\u0301\n")
    write "text" "bom.txt" (Array.append [| 0xEFuy; 0xBBuy; 0xBFuy |] (Encoding.UTF8.GetBytes "hello\n"))
    write "text" "invalid.txt" [| 0x61uy; 0x62uy; 0xC3uy; 0x28uy; 0x63uy |]
    0

let private replay (target: string) (files: string[]) =
    let f = targetNamed target
    let mutable findings = 0
    for path in files do
        let sw = Diagnostics.Stopwatch.StartNew()
        match (try f (File.ReadAllBytes path); None with e -> Some e) with
        | None -> printfn "ok       %s (%d ms)" path sw.ElapsedMilliseconds
        | Some(Targets.Finding what) ->
            findings <- findings + 1
            printfn "FINDING  %s: %s" path what
        | Some e ->
            findings <- findings + 1
            printfn "FINDING  %s: %s: %s" path (e.GetType().Name) e.Message
    if findings = 0 then 0 else 1

/// AFL-style havoc without AFL: bit flips, interesting values, byte runs, deletions and copies of
/// blocks, stacked 1 to 8 at a time on a seed, for a set time.
let private havoc (target: string) (seedDir: string) (seconds: float) (seed: int) =
    let f = targetNamed target
    let seeds = Directory.GetFiles seedDir |> Array.map File.ReadAllBytes
    if seeds.Length = 0 then failwith $"no seed files in '{seedDir}'"
    let current = Path.Combine(Path.GetDirectoryName(Path.GetFullPath seedDir), "havoc-current.bin")
    let rng = Random seed
    let interesting = [| 0uy; 1uy; 0x7Fuy; 0x80uy; 0xFFuy |]
    let mutate (input: byte[]) =
        let b = ResizeArray input
        for _ in 1 .. 1 + rng.Next 8 do
            if b.Count = 0 then b.Add(byte (rng.Next 256))
            let at = rng.Next b.Count
            match rng.Next 6 with
            | 0 -> b[at] <- b[at] ^^^ (1uy <<< rng.Next 8)
            | 1 -> b[at] <- interesting[rng.Next interesting.Length]
            | 2 -> b[at] <- byte (rng.Next 256)
            | 3 -> // a 32-bit little-endian value somewhere: sizes and counts live in such fields
                let v = [| 0; -1; 1; 0x7FFFFFFF; Int32.MinValue; 1 <<< rng.Next 31; -(rng.Next 1000) |][rng.Next 7]
                let bytes = BitConverter.GetBytes v
                for i in 0 .. min 3 (b.Count - at - 1) do b[at + i] <- bytes[i]
            | 4 -> b.RemoveRange(at, min (1 + rng.Next 16) (b.Count - at))
            | _ ->
                let from = rng.Next b.Count
                let n = min (1 + rng.Next 32) (b.Count - from)
                b.InsertRange(at, b.GetRange(from, n))
        b.ToArray()
    let sw = Diagnostics.Stopwatch.StartNew()
    let mutable runs = 0L
    let mutable findings = 0
    while sw.Elapsed.TotalSeconds < seconds do
        let input = mutate seeds[rng.Next seeds.Length]
        File.WriteAllBytes(current, input)
        runs <- runs + 1L
        try f input
        with e ->
            findings <- findings + 1
            let keep = Path.Combine(Path.GetDirectoryName current, $"havoc-finding-{findings}.bin")
            File.Copy(current, keep, true)
            printfn "FINDING %s: %s" keep (e.Message.Split('\n')[0])
    File.Delete current
    printfn "%s: %d inputs in %.0f s, %d findings" target runs sw.Elapsed.TotalSeconds findings
    if findings = 0 then 0 else 1

[<EntryPoint>]
let main argv =
    match List.ofArray argv with
    | [ "seeds"; dir ] ->
        Native.ensure ()
        seeds dir
    | "replay" :: target :: files ->
        Native.ensure ()
        replay target (Array.ofList files)
    | "havoc" :: target :: dir :: seconds :: rest ->
        Native.ensure ()
        havoc target dir (float seconds) (match rest with [ s ] -> int s | _ -> 1)
    | [ target ] ->
        let f = targetNamed target
        // Instrumented code may run only inside Run, which sets up AFL's shared memory first.
        // AFL keeps the input of a crash but not the exception: SEQNETS_FUZZ_LOG names a file that
        // gets every exception that escapes, with its stack, for triage.
        let log = Environment.GetEnvironmentVariable "SEQNETS_FUZZ_LOG"
        SharpFuzz.Fuzzer.OutOfProcess.Run(Action<Stream>(fun stream ->
            Native.ensure ()
            use ms = new MemoryStream()
            stream.CopyTo ms
            let input = ms.ToArray()
            try f input
            with e ->
                if not (String.IsNullOrEmpty log) then
                    File.AppendAllText(log, $"--- {DateTime.UtcNow:O} {input.Length} bytes, SHA-256 {Convert.ToHexString(Security.Cryptography.SHA256.HashData input)}\n{e}\n")
                reraise ()))
        0
    | _ ->
        eprintfn "usage: SeqNets.Fuzz TARGET | seeds DIR | replay TARGET FILE… | havoc TARGET SEEDS SECONDS [RANDOM-SEED]   (targets: %s)" (String.Join(", ", Targets.all |> List.map fst))
        2
