/// Checkpoints: a network (its description and parameters), optionally the vocabulary of its text or
/// the source and target token vocabularies of a sequence-to-sequence model, and optionally the state of its training run (configuration, optimizer, position, random state,
/// carried states), in one file written atomically (temporary file, then rename), so that an
/// interrupted save leaves the previous checkpoint intact.
///
/// Layout: "SEQNETS\n" (8 bytes) · format version (int32) · payload length (int64) · payload ·
/// SHA-256 of the payload (32 bytes). The payload is a JSON header (length-prefixed UTF-8) followed
/// by the parameters, the carried states and the optimizer's own state. Format 2 describes any
/// network (Description.fs); format 1 files (character models) still load.
/// Every size the file announces is checked against the bytes that remain before anything is allocated.
/// Before a file is written, its header is read back as load reads it (the network's description
/// rebuilt and compared, the token vocabularies re-read), so a file that load could not rebuild is
/// never written.
namespace SeqNets

open System
open System.IO
open System.Security.Cryptography
open System.Text.Json.Nodes
open TorchSharp

/// A checkpoint file that cannot be used (or written), with the file and the problem.
type CheckpointException(path: string, problem: string, inner: exn) =
    inherit IOException($"checkpoint '{path}': {problem}", inner)
    new(path, problem) = CheckpointException(path, problem, null)
    /// The file.
    member _.Path = path
    /// What is wrong with it.
    member _.Problem = problem

/// A checkpoint that cannot be written (permissions, a full disk, a path that is a folder or lies
/// under a file): the file and the reason. The previous file at that path, if any, is intact.
type CheckpointWriteException(path: string, problem: string, inner: exn) =
    inherit CheckpointException(path, problem, inner)
    new(path, problem) = CheckpointWriteException(path, problem, null)

/// What a checkpoint holds, loaded.
[<NoComparison; NoEquality>]
type CheckpointContents =
    { Network: Network
      /// The vocabulary of a text model; None for a network that reads vectors or a task's tokens.
      Vocabulary: Vocabulary option
      /// The (source, target) token vocabularies of a sequence-to-sequence model; None for other networks.
      Tokens: (TokenVocabulary * TokenVocabulary) option
      /// The configuration of the training run saved with it; None for a network saved on its own.
      Training: TrainingConfig option
      Step: int
      Position: int
      RandomState: uint64
      /// The carried state of every layer and direction.
      State: torch.Tensor[]
      /// The optimizer's state as TorchSharp writes it (empty without a training run).
      OptimizerState: byte[] }

[<RequireQualifiedAccess>]
module Checkpoint =
    let private magic = "SEQNETS\n"B
    /// The format this version writes.
    [<Literal>]
    let FormatVersion = 2

    let private inv = Globalization.CultureInfo.InvariantCulture

    let private clippingText c =
        match c with
        | NoClipping -> "none"
        | ByNorm n -> "norm:" + n.ToString("R", inv)
        | ByValue v -> "value:" + v.ToString("R", inv)

    let private parseClipping (s: string) =
        match s.Split ':' with
        | [| "none" |] -> NoClipping
        | [| "norm"; n |] -> ByNorm(Double.Parse(n, inv))
        | [| "value"; v |] -> ByValue(Double.Parse(v, inv))
        | _ -> failwith $"unknown clipping '{s}'"

    let private optimizerText o =
        match o with
        | Sgd m -> "sgd:" + m.ToString("R", inv)
        | Adagrad -> "adagrad"
        | RmsProp a -> "rmsprop:" + a.ToString("R", inv)
        | Adam -> "adam"

    let private scheduleText s =
        match s with
        | Constant -> "constant"
        | StepDecay(e, f) -> $"""step:{e}:{f.ToString("R", inv)}"""
        | Cosine(t, m) -> $"""cosine:{t}:{m.ToString("R", inv)}"""

    let private parseSchedule (s: string) =
        match s.Split ':' with
        | [| "constant" |] -> Constant
        | [| "step"; e; f |] -> StepDecay(int e, Double.Parse(f, inv))
        | [| "cosine"; t; m |] -> Cosine(int t, Double.Parse(m, inv))
        | _ -> failwith $"unknown schedule '{s}'"

    let private writeTensor (w: BinaryWriter) (t: torch.Tensor) =
        use t = t.detach().contiguous().to_type torch.float64
        let data = t.data<float>().ToArray()
        w.Write(t.shape.Length)
        for d in t.shape do w.Write d
        w.Write(int64 data.Length)
        w.Write(Runtime.InteropServices.MemoryMarshal.AsBytes(ReadOnlySpan data))

    /// A problem found while reading, before the file is trusted.
    exception private Corrupt of string

    let private corrupt message = raise (Corrupt message)

    /// Reads a tensor, checking rank, shape and count against the bytes left before allocating.
    let private readTensor (r: BinaryReader) (version: int) (dtype: torch.ScalarType) (what: string) =
        let left () = r.BaseStream.Length - r.BaseStream.Position
        if left () < 4L then corrupt $"{what}: the file ends before the tensor"
        let rank = r.ReadInt32()
        if rank < 0 || rank > 8 then corrupt $"{what}: a tensor of rank {rank}"
        if left () < 8L * int64 rank then corrupt $"{what}: the file ends inside the tensor's shape"
        let shape = Array.init rank (fun _ -> r.ReadInt64())
        if shape |> Array.exists (fun d -> d < 0L) then corrupt $"{what}: a negative size in shape {shape}"
        let n = if version = 1 then int64 (r.ReadInt32()) else r.ReadInt64()
        let product = shape |> Array.fold (fun acc d -> if d <> 0L && acc > Int64.MaxValue / d then Int64.MaxValue else acc * d) 1L
        if n <> product then corrupt $"{what}: {n} values for shape {shape}"
        if n > left () / 8L then corrupt $"{what}: {n} values announced, but only {left ()} bytes remain"
        let bytes = r.ReadBytes(int (n * 8L))
        let data = Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(ReadOnlySpan bytes).ToArray()
        torch.tensor(data).reshape(shape).to_type dtype

    /// A training run as a checkpoint stores it.
    type private RunState =
        { Config: TrainingConfig
          Path: ExecutionPath
          Step: int
          Position: int
          RandomState: uint64
          State: torch.Tensor[]
          OptimizerState: byte[] }

    let private runOf (trainer: Trainer) =
        use os = new MemoryStream()
        (use ow = new BinaryWriter(os, Text.Encoding.UTF8, true) in trainer.Optimizer.save_state_dict ow)
        { Config = trainer.Config; Path = trainer.Path; Step = trainer.StepCount; Position = trainer.Position
          RandomState = trainer.RandomState; State = trainer.State; OptimizerState = os.ToArray() }

    /// Why token vocabularies do not fit a network, if they do not: the source's size must be the
    /// encoder's input vocabulary, the target's the decoder's (and the readout's).
    let private tokenProblem (spec: NetworkSpec) (source: TokenVocabulary) (target: TokenVocabulary) =
        match spec.Head with
        | EncoderDecoder d ->
            match InputLayer.vocabulary spec.Input, InputLayer.vocabulary d.Input with
            | Some s, Some t when s = source.Size && t = target.Size && spec.Output = t -> None
            | s, t ->
                let text = Option.map string >> Option.defaultValue "no"
                Some $"the network reads {text s} source and {text t} target token ids, but the vocabularies have {source.Size} and {target.Size}"
        | h -> Some $"token vocabularies belong to an encoder–decoder, but the network's head is {h}"

    let private tokenArray (v: TokenVocabulary) =
        let a = JsonArray()
        for i in 3 .. v.Size - 1 do a.Add(JsonValue.Create v.Tokens[i] :> JsonNode)
        a

    /// The tokens (specials excluded) a header stores under key; Corrupt when they are not a list of strings.
    let private readTokens (header: JsonNode) (key: string) =
        match header[key] with
        | :? JsonArray as a ->
            let tokens =
                [| for x in a ->
                       match x with
                       | :? JsonValue as v when v.GetValueKind() = Text.Json.JsonValueKind.String -> v.GetValue<string>()
                       | _ -> corrupt $"'{key}' holds something that is not a token" |]
            try TokenVocabulary tokens with :? ArgumentException as e -> corrupt $"'{key}': {e.Message}"
        | _ -> corrupt $"'{key}' is not a list of tokens"

    let private header (network: Network) (vocabulary: Vocabulary option) (tokens: (TokenVocabulary * TokenVocabulary) option) (run: RunState option) =
        let h = JsonObject()
        h["network"] <- Description.toJson network.Spec
        h["description"] <- JsonValue.Create(network.Describe())
        h["dtype"] <- JsonValue.Create(if network.DType = torch.float32 then "float32" else "float64")
        match vocabulary with
        | Some v -> h["vocabulary"] <- JsonValue.Create(v.Text)
        | None -> ()
        match tokens with
        | Some(source, target) ->
            h["sourceTokens"] <- tokenArray source
            h["targetTokens"] <- tokenArray target
        | None -> ()
        match run with
        | Some run ->
            let t = run.Config
            h["strategy"] <- JsonValue.Create(string t.Strategy)
            h["optimizer"] <- JsonValue.Create(optimizerText t.Optimizer)
            h["learningRate"] <- JsonValue.Create t.LearningRate
            h["schedule"] <- JsonValue.Create(scheduleText t.Schedule)
            h["clipping"] <- JsonValue.Create(clippingText t.Clipping)
            h["batch"] <- JsonValue.Create t.Batch
            h["sequenceLength"] <- JsonValue.Create t.SequenceLength
            h["path"] <- JsonValue.Create(string run.Path)
            h["seed"] <- JsonValue.Create t.Seed
            h["step"] <- JsonValue.Create run.Step
            h["position"] <- JsonValue.Create run.Position
            h["randomState"] <- JsonValue.Create run.RandomState
        | None -> ()
        h

    /// Reads a header back as load will, before it is written: the network's description must
    /// rebuild to the same description and parameter count (a user-defined cell, which load rebuilds
    /// once it is registered, is taken as written), and the token vocabularies must re-read equal.
    let private checkReadable (path: string) (network: Network) (tokens: (TokenVocabulary * TokenVocabulary) option) (json: string) =
        let unreadable problem = raise (CheckpointWriteException(path, $"cannot be written: it would not read back ({problem})"))
        let back = try JsonNode.Parse json with e -> unreadable e.Message
        let expected = (Description.toJson network.Spec).ToJsonString()
        match (try Some(Description.ofJson back["network"] network.ParameterCount) with
               | Description.DescriptionError m when m.Contains "user-defined cell" -> None
               | Description.DescriptionError m -> unreadable m) with
        | Some spec ->
            if (Description.toJson spec).ToJsonString() <> expected then unreadable "its network's description rebuilds to another network"
            if Description.parameterCount spec <> network.ParameterCount then
                unreadable $"its description rebuilds a network of {Description.parameterCount spec} parameters, not {network.ParameterCount}"
        | None -> ()
        match tokens with
        | Some(source, target) ->
            let same (v: TokenVocabulary) key =
                let w = try readTokens back key with Corrupt m -> unreadable m
                Seq.forall2 (fun (a: string) b -> String.Equals(a, b, StringComparison.Ordinal)) v.Tokens w.Tokens && v.Size = w.Size
            if not (same source "sourceTokens" && same target "targetTokens") then unreadable "its token vocabularies re-read differently"
        | None -> ()

    let private payload (path: string) (network: Network) (vocabulary: Vocabulary option) (tokens: (TokenVocabulary * TokenVocabulary) option) (run: RunState option) =
        use ms = new MemoryStream()
        use w = new BinaryWriter(ms)
        let text = (header network vocabulary tokens run).ToJsonString()
        checkReadable path network tokens text
        let json = Text.Encoding.UTF8.GetBytes text
        w.Write json.Length
        w.Write json
        writeTensor w network.Parameters
        match run with
        | Some run ->
            w.Write run.State.Length
            for s in run.State do writeTensor w s
            w.Write run.OptimizerState.Length
            w.Write run.OptimizerState
        | None ->
            w.Write 0
            w.Write 0
        w.Flush()
        ms.ToArray()

    /// The temporary files of earlier saves to the same path whose process is gone: an interrupted
    /// save leaves one behind, and the next save removes it.
    let private removeLeftovers (dir: string) (file: string) =
        try
            for leftover in Directory.EnumerateFiles(dir, $".{file}.*.tmp") do
                let parts = Path.GetFileName(leftover).Substring(file.Length + 2).Split '.'
                let alive =
                    match Int32.TryParse parts[0] with
                    | true, pid when pid = Environment.ProcessId -> true
                    | true, pid -> (try (use p = Diagnostics.Process.GetProcessById pid in not p.HasExited) with _ -> false)
                    | _ -> true // not one of ours
                if not alive then (try File.Delete leftover with _ -> ())
        with _ -> ()

    /// Writes the checkpoint through `write` into a temporary file next to `path`, then renames
    /// it over `path`. `write` is the last chance to fail before the rename (tests interrupt here).
    /// Any failure to write is a CheckpointException (an IOException) naming the path.
    let private saveRun (write: Stream -> byte[] -> unit) (path: string) (network: Network) (vocabulary: Vocabulary option)
                        (tokens: (TokenVocabulary * TokenVocabulary) option) (run: RunState option) =
        Check.notNull "path" path
        Check.notNull "network" network
        match tokens with
        | Some(source, target) ->
            Check.notNull "source" source
            Check.notNull "target" target
            match tokenProblem network.Spec source target with
            | Some problem -> Check.fail "tokens" $"tokens: expected vocabularies that fit the network, but {problem}."
            | None -> ()
        | None -> ()
        if String.IsNullOrWhiteSpace path then Check.fail "path" "path: expected a file name, but got an empty one."
        let full = Path.GetFullPath path
        if Directory.Exists full then
            raise (CheckpointWriteException(path, "cannot be written: it is a directory; give a file name such as model.ckpt inside it"))
        let dir = Path.GetDirectoryName full
        let body = payload path network vocabulary tokens run
        let temp = Path.Combine(dir, $".{Path.GetFileName full}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp")
        try
            try
                Directory.CreateDirectory dir |> ignore
                removeLeftovers dir (Path.GetFileName full)
                (use fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write)
                 use w = new BinaryWriter(fs)
                 w.Write magic
                 w.Write FormatVersion
                 w.Write(int64 body.Length)
                 w.Flush()
                 write fs body
                 let hash: byte[] = SHA256.HashData body
                 fs.Write(hash, 0, hash.Length)
                 fs.Flush true)
                File.Move(temp, full, true)
            with
            | :? UnauthorizedAccessException as e -> raise (CheckpointWriteException(path, $"cannot be written: permission denied ({e.Message})", e))
            | :? CheckpointException -> reraise ()
            | :? IOException as e -> raise (CheckpointWriteException(path, $"cannot be written: {e.Message}", e))
        finally
            if File.Exists temp then (try File.Delete temp with _ -> ())

    let private writeAll (s: Stream) (body: byte[]) = s.Write(body, 0, body.Length)

    /// saveRun for a trainer's run, through `write` (tests interrupt there).
    let internal saveVia (write: Stream -> byte[] -> unit) (path: string) (trainer: Trainer) (vocabulary: Vocabulary option) =
        Check.notNull "trainer" trainer
        saveRun write path trainer.Network vocabulary None (Some(runOf trainer))

    /// Saves the trainer's network, optimizer and position, with the vocabulary of its text when
    /// it has one, to path, atomically.
    [<CompiledName("Save")>]
    let save (path: string) (trainer: Trainer) (vocabulary: Vocabulary option) = saveVia writeAll path trainer vocabulary

    /// Saves a network on its own (no training run), with the vocabulary of its text when it has
    /// one, to path, atomically.
    [<CompiledName("SaveNetwork")>]
    let saveNetwork (path: string) (network: Network) (vocabulary: Vocabulary option) =
        saveRun writeAll path network vocabulary None None

    /// Saves a sequence-to-sequence trainer's network, optimizer and position with the source and
    /// target token vocabularies, to path, atomically. ArgumentException when the vocabularies do not
    /// fit the network (an encoder–decoder reading source.Size and writing target.Size ids).
    [<CompiledName("SaveSeq2Seq")>]
    let saveSeq2Seq (path: string) (trainer: Trainer) (source: TokenVocabulary) (target: TokenVocabulary) =
        Check.notNull "trainer" trainer
        saveRun writeAll path trainer.Network None (Some(source, target)) (Some(runOf trainer))

    /// Saves a sequence-to-sequence network on its own with its source and target token
    /// vocabularies, to path, atomically; ArgumentException when they do not fit the network.
    [<CompiledName("SaveSeq2SeqNetwork")>]
    let saveSeq2SeqNetwork (path: string) (network: Network) (source: TokenVocabulary) (target: TokenVocabulary) =
        saveRun writeAll path network None (Some(source, target)) None

    /// saveRun for a session: the trainer's run when there is one, else the network alone.
    let internal saveWith (path: string) (network: Network) (trainer: Trainer option) (vocabulary: Vocabulary option) (tokens: (TokenVocabulary * TokenVocabulary) option) =
        saveRun writeAll path network vocabulary tokens (trainer |> Option.map runOf)

    /// Saves loaded contents again as they are (network, vocabulary and the training run they hold).
    [<CompiledName("SaveContents")>]
    let saveContents (path: string) (contents: CheckpointContents) =
        Check.notNull "contents" (box contents)
        let run =
            contents.Training
            |> Option.map (fun t ->
                { Config = t; Path = defaultArg t.Path (Training.choosePath contents.Network t); Step = contents.Step
                  Position = contents.Position; RandomState = contents.RandomState; State = contents.State
                  OptimizerState = contents.OptimizerState })
        saveRun writeAll path contents.Network contents.Vocabulary contents.Tokens run

    let private readFile (path: string) =
        let fail problem = raise (CheckpointException(path, problem))
        if Directory.Exists path then fail "is a directory, not a checkpoint file (a run's checkpoint is model.ckpt inside it)"
        if not (File.Exists path) then fail "no such file"
        let bytes =
            try File.ReadAllBytes path
            with
            | :? UnauthorizedAccessException as e -> raise (CheckpointException(path, $"cannot be read: permission denied ({e.Message})", e))
            | :? IOException as e -> raise (CheckpointException(path, $"cannot be read: {e.Message}", e))
        if bytes.Length < 20 || not (ReadOnlySpan(bytes, 0, 8).SequenceEqual(ReadOnlySpan<byte>(magic))) then
            fail "not a SeqNets checkpoint (the file does not start with the SEQNETS header)"
        let version = BitConverter.ToInt32(bytes, 8)
        if version < 1 || version > FormatVersion then
            fail $"written in checkpoint format {version}; this SeqNets reads formats 1 to {FormatVersion}"
        let length = BitConverter.ToInt64(bytes, 12)
        if length < 0L then fail $"corrupt: a payload of {length} bytes"
        let expected = 20L + length + 32L
        if int64 bytes.Length < expected then
            fail $"truncated: {bytes.Length} bytes, but the header announces {expected}"
        if int64 bytes.Length > expected then
            fail $"corrupt: {bytes.Length} bytes, but the header announces {expected}"
        let body = ReadOnlySpan(bytes, 20, int length).ToArray()
        let hash: byte[] = SHA256.HashData body
        if not (ReadOnlySpan<byte>(hash).SequenceEqual(ReadOnlySpan(bytes, int (20L + length), 32))) then
            fail "corrupt: the SHA-256 checksum of the contents does not match"
        version, body

    /// The spec a format-1 (character model) header describes.
    let private specV1 (header: JsonNode) (parameters: int64) =
        let str (k: string) = header[k].GetValue<string>()
        let int (k: string) = header[k].GetValue<int>()
        let config =
            { Kind = CellKind.parse (str "kind")
              VocabularySize = int "vocabularySize"
              HiddenSize = int "hiddenSize"
              Layers = int "layers" }
        if config.VocabularySize < 1 || config.HiddenSize < 1 || config.Layers < 1 then
            corrupt $"a character model of V = {config.VocabularySize}, H = {config.HiddenSize}, L = {config.Layers}"
        if int64 config.Layers > parameters then
            corrupt $"it claims {config.Layers} layers, more than its {parameters} parameters could hold"
        CharModel.spec config

    /// Loads a checkpoint. A missing, truncated, corrupt, foreign, newer-format or inconsistent
    /// file, or one holding a user-defined cell that is not registered (CellCatalog.register), raises
    /// CheckpointException naming the file and the problem.
    [<CompiledName("Load")>]
    let load (path: string) : CheckpointContents =
        Check.notNull "path" path
        Native.ensure ()
        let version, body = readFile path
        let fail problem = raise (CheckpointException(path, problem))
        try
            use r = new BinaryReader(new MemoryStream(body))
            let jsonLength = r.ReadInt32()
            if jsonLength < 0 || int64 jsonLength > r.BaseStream.Length - 4L then corrupt $"a header of {jsonLength} bytes"
            let header = JsonNode.Parse(Text.Encoding.UTF8.GetString(r.ReadBytes jsonLength))
            let has (k: string) = (header :?> JsonObject).ContainsKey k && not (isNull header[k])
            let str (k: string) = header[k].GetValue<string>()
            let int (k: string) = header[k].GetValue<int>()
            let dtype = if str "dtype" = "float32" then torch.float32 else torch.float64
            // The parameters come first: their count bounds everything the header claims.
            let parameters = readTensor r version dtype "the parameters"
            use _ = parameters
            let P = parameters.numel ()
            let spec =
                if version = 1 then specV1 header P
                else
                    try Description.ofJson header["network"] P
                    with Description.DescriptionError problem -> raise (CheckpointException(path, $"cannot rebuild its network: {problem}"))
            let expectedP = Description.parameterCount spec
            if P <> expectedP then
                fail $"mismatched: {P} parameters stored for a network of {expectedP}"
            let vocabulary =
                if has "vocabulary" then
                    let v = Vocabulary.ofCharacters (str "vocabulary")
                    match InputLayer.vocabulary spec.Input with
                    | Some n when n <> v.Size -> fail $"mismatched: {v.Size} vocabulary characters for a network of {n} tokens"
                    | _ -> ()
                    Some v
                else None
            let tokens =
                match has "sourceTokens", has "targetTokens" with
                | false, false -> None
                | true, true ->
                    let source, target = readTokens header "sourceTokens", readTokens header "targetTokens"
                    match tokenProblem spec source target with
                    | Some problem -> fail $"mismatched: {problem}"
                    | None -> Some(source, target)
                | _ -> corrupt "it holds one side's token vocabulary without the other"
            let training =
                if has "strategy" then
                    Some { Strategy = BpttStrategy.parse (str "strategy")
                           Optimizer = OptimizerKind.parse (str "optimizer")
                           LearningRate = header["learningRate"].GetValue<float>()
                           Schedule = parseSchedule (str "schedule")
                           Clipping = parseClipping (str "clipping")
                           Batch = int "batch"
                           SequenceLength = int "sequenceLength"
                           Path = Some(match str "path" with "Fused" -> Fused | "Derived" -> Derived | _ -> Step)
                           Seed = header["seed"].GetValue<uint64>() }
                else None
            let step, position = (if has "step" then int "step" else 0), (if has "position" then int "position" else 0)
            if step < 0 then corrupt $"a step count of {step}"
            if position < 0 then corrupt $"a training position of {position}"
            match training with
            | Some t when t.Batch < 1 || t.SequenceLength < 1 -> corrupt $"a batch shape of B = {t.Batch}, T = {t.SequenceLength}"
            | _ -> ()
            let stateCount = r.ReadInt32()
            let units = spec.Layers |> List.sumBy (fun l -> l.Directions)
            if stateCount <> 0 && stateCount <> units then
                corrupt $"{stateCount} carried states for {units} layers and directions"
            let states = Array.init stateCount (fun k -> readTensor r version dtype $"carried state {k}")
            let optLength = r.ReadInt32()
            if optLength < 0 || int64 optLength > r.BaseStream.Length - r.BaseStream.Position then
                corrupt $"an optimizer state of {optLength} bytes"
            let opt = r.ReadBytes optLength
            let network = new Network(spec, dtype, 0UL)
            (use _ = torch.no_grad () in network.Parameters.copy_ parameters |> ignore)
            { Network = network
              Vocabulary = vocabulary
              Tokens = tokens
              Training = training
              Step = step
              Position = position
              RandomState = (if has "randomState" then header["randomState"].GetValue<uint64>() else 0UL)
              State = states
              OptimizerState = opt }
        with
        | :? CheckpointException -> reraise ()
        | Corrupt problem -> raise (CheckpointException(path, $"corrupt: {problem}"))
        | e -> raise (CheckpointException(path, $"corrupt: the contents cannot be read ({e.Message})", e))

    /// A trainer that continues exactly where the checkpoint's run left off, on batches from source.
    [<CompiledName("Resume")>]
    let resume (contents: CheckpointContents) (source: IBatchSource) : Trainer =
        Check.notNull "source" source
        let training =
            match contents.Training with
            | Some t -> t
            | None -> Check.fail "contents" "contents: the checkpoint holds a network without a training run to resume; start a new Trainer on it."
        let trainer = new Trainer(contents.Network, source, training)
        if contents.OptimizerState.Length > 0 then
            use r = new BinaryReader(new MemoryStream(contents.OptimizerState))
            trainer.Optimizer.load_state_dict r
        trainer.SetStepCount contents.Step
        trainer.Position <- contents.Position
        trainer.RandomState <- contents.RandomState
        if BpttStrategy.carriesState training.Strategy && contents.State.Length > 0 then
            trainer.State <- contents.State |> Array.map (fun s -> s.clone ())
        trainer

    /// A trainer that continues the checkpoint's run on B streams of a text's ids.
    [<CompiledName("ResumeOnText")>]
    let resumeOnText (contents: CheckpointContents) (trainIds: TokenIds) : Trainer =
        match contents.Training with
        | Some t -> resume contents (TextStreams(trainIds, t.Batch, t.SequenceLength))
        | None -> Check.fail "contents" "contents: the checkpoint holds a network without a training run to resume; start a new Trainer on it."
