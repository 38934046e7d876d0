/// The fuzz targets: each takes the bytes a fuzzer made, gives them to one of SeqNets' readers
/// through its public entry point, and raises Finding when the reader breaks its promise (an
/// exception other than its documented one, or a wrong result). The test project compiles this file
/// too and replays tests/fixtures/fuzz through it, so every input a fuzzer found stays a test.
module SeqNets.Fuzz.Targets

open System
open System.IO
open System.IO.Compression
open System.Security.Cryptography
open System.Text
open SeqNets

/// What must never happen: the reader raised something it does not document, or returned a
/// result that breaks its promise.
exception Finding of string

/// A directory for this process's scratch files, in memory where the system has /dev/shm. A
/// fuzzer's child that is killed (a time-out) cannot remove its own: the next one removes those
/// whose process is gone. The cleanup is best effort: whatever it cannot tell or remove, it leaves.
let private scratch =
    let prefix = "seqnets-fuzz-"
    let remove (dir: string) =
        try Directory.Delete(dir, true) with :? IOException | :? UnauthorizedAccessException -> ()
    let gone (pid: int) =
        try
            use p = Diagnostics.Process.GetProcessById pid
            p.HasExited
        with
        | :? ArgumentException -> true // no such process
        | _ -> false
    lazy (
        let shm = "/dev/shm"
        let root = if Directory.Exists shm then shm else Path.GetTempPath()
        try
            for d in Directory.GetDirectories(root, prefix + "*") do
                match Int32.TryParse(Path.GetFileName(d).Substring prefix.Length) with
                | true, pid when pid <> Environment.ProcessId && gone pid -> remove d
                | _ -> ()
        with :? IOException | :? UnauthorizedAccessException -> ()
        let d = Path.Combine(root, $"{prefix}{Environment.ProcessId}")
        AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> remove d)
        d)

/// The path of a scratch file. The directory is made each time: a child that starts with a dead
/// child's pid may find it removed by a third.
let private scratchPath (name: string) = Path.Combine(Directory.CreateDirectory(scratch.Value).FullName, name)

/// A scratch file holding bytes (the readers take paths).
let private file (name: string) (bytes: byte[]) =
    let p = scratchPath name
    File.WriteAllBytes(p, bytes)
    p

let private unexpected (reader: string) (e: exn) =
    raise (Finding $"{reader} raised {e.GetType().FullName}: {e.Message}\n{e.StackTrace}")

/// Checkpoint.load on the bytes as a file: it returns contents or raises CheckpointException.
let checkpoint (bytes: byte[]) =
    let path = file "input.ckpt" bytes
    try
        let c = Checkpoint.load path
        for s in c.State do s.Dispose()
        (c.Network :> IDisposable).Dispose()
    with
    | :? CheckpointException -> ()
    | e -> unexpected "Checkpoint.load" e

/// The bytes framed as a checkpoint of format 1 (magic, version, length, payload, SHA-256 of the
/// payload), so that the fuzzer's changes reach the reader past the checksum.
let frame (payload: byte[]) =
    use ms = new MemoryStream()
    use w = new BinaryWriter(ms)
    w.Write "SEQNETS\n"B
    w.Write 1
    w.Write(int64 payload.Length)
    w.Write payload
    w.Write(SHA256.HashData payload)
    w.Flush()
    ms.ToArray()

/// The payload of a format-1 checkpoint file (what `frame` wraps).
let payloadOf (checkpointBytes: byte[]) = checkpointBytes[20 .. checkpointBytes.Length - 33]

/// Checkpoint.load on a checkpoint whose payload is the bytes, with a valid checksum.
let checkpointPayload (payload: byte[]) = checkpoint (frame payload)

/// Interop.readStateDict on the bytes as a .pt file: it returns tensors or raises StateDictException.
let stateDict (bytes: byte[]) =
    let path = file "input.pt" bytes
    try
        let d = Interop.readStateDict path
        for t in d.Values do t.Dispose()
    with
    | :? StateDictException -> ()
    | e -> unexpected "Interop.readStateDict" e

/// The entries of a small valid state dict (two float32 tensors), written by Interop.writeStateDict.
let private template =
    lazy (
        use a = TorchSharp.torch.arange(6.0f).reshape(2L, 3L)
        use b = TorchSharp.torch.ones(4L)
        let path = scratchPath "template.pt"
        Interop.writeStateDict path [ "weight", a; "bias", b ]
        use zip = ZipFile.OpenRead path
        [ for e in zip.Entries ->
              use s = e.Open()
              use ms = new MemoryStream()
              s.CopyTo ms
              e.FullName, ms.ToArray() ])

/// The pickle (data.pkl) of the template state dict: the seed of statedict-pickle.
let templatePickle () = template.Value |> List.pick (fun (n, b) -> if n.EndsWith "/data.pkl" then Some b else None)

/// Interop.readStateDict on a valid zip (the template's tensor data, version and CRCs) whose
/// data.pkl is the bytes: the fuzzer's changes reach the unpickler past the zip's checks.
let stateDictPickle (pickle: byte[]) =
    use ms = new MemoryStream()
    (use zip = new ZipArchive(ms, ZipArchiveMode.Create, true)
     for name, data in template.Value do
         let e = zip.CreateEntry(name, CompressionLevel.NoCompression)
         use s = e.Open()
         s.Write(if name.EndsWith "/data.pkl" then pickle else data))
    stateDict (ms.ToArray())

let private strict = UTF8Encoding(false, true)
let private lenient = UTF8Encoding(false, false)

/// Corpus.ofUtf8 under both policies against .NET's own UTF-8 decoders: Reject accepts exactly the
/// valid UTF-8 and names an offset before which the bytes are valid; Replace decodes as
/// UTF8Encoding with replacement does; the vocabulary's text reads back as the same vocabulary.
let text (bytes: byte[]) =
    let body = if bytes.Length >= 3 && bytes[0] = 0xEFuy && bytes[1] = 0xBBuy && bytes[2] = 0xBFuy then bytes[3..] else bytes
    let scalars (s: string) = s.EnumerateRunes() |> Seq.length
    let check (policy: InvalidText) (expected: string option) =
        match (try Ok(Corpus.ofUtf8 policy 1.0 bytes) with e -> Error e) with
        | Ok c ->
            match expected with
            | None -> raise (Finding $"{policy}: accepted bytes that are not UTF-8")
            | Some s ->
                let decoded = Vocabulary.decode c.Vocabulary c.Train
                if decoded <> s then raise (Finding $"{policy}: decoded {decoded.Length} UTF-16 units, expected {s.Length}: the texts differ")
                if Vocabulary.ofCharacters c.Vocabulary.Text <> c.Vocabulary then
                    raise (Finding $"{policy}: the vocabulary's text does not read back as the same vocabulary")
        | Error(:? InvalidTextException as e) when policy = Reject && expected.IsNone ->
            let offset = int e.Offset
            if offset < 0 || offset > bytes.Length then raise (Finding $"offset {offset} outside the {bytes.Length} bytes")
            let start = bytes.Length - body.Length
            if offset < start then raise (Finding $"offset {offset} inside the byte-order mark")
            (try strict.GetString(bytes, start, offset - start) |> ignore
             with :? DecoderFallbackException -> raise (Finding $"the bytes before the named offset {offset} are not valid UTF-8 either"))
        | Error(:? ArgumentException as e) when (match expected with Some s -> scalars s < 2 | None -> false) && not (e :? InvalidTextException) -> ()
        | Error e -> unexpected $"Corpus.ofUtf8 {policy}" e
    check Reject (try Some(strict.GetString body) with :? DecoderFallbackException -> None)
    check Replace (Some(lenient.GetString body))

/// The targets by name.
let all : (string * (byte[] -> unit)) list =
    [ "checkpoint", checkpoint
      "checkpoint-payload", checkpointPayload
      "statedict", stateDict
      "statedict-pickle", stateDictPickle
      "text", text ]
