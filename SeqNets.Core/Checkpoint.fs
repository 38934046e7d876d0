/// Checkpoints: model, vocabulary, training configuration, optimizer state and the training
/// position, in one file written atomically (temporary file, then rename), so that an
/// interrupted save leaves the previous checkpoint intact.
///
/// Layout: "SEQNETS\n" (8 bytes) · format version (int32) · payload length (int64) · payload ·
/// SHA-256 of the payload (32 bytes). The payload is a JSON header (length-prefixed UTF-8)
/// followed by the parameters, the carried states and the optimizer's own state.
namespace SeqNets

open System
open System.IO
open System.Security.Cryptography
open System.Text.Json.Nodes
open TorchSharp

/// A checkpoint file that cannot be used, with the file and the problem.
type CheckpointException(path: string, problem: string, inner: exn) =
    inherit IOException($"checkpoint '{path}': {problem}", inner)
    new(path, problem) = CheckpointException(path, problem, null)
    /// The file.
    member _.Path = path
    /// What is wrong with it.
    member _.Problem = problem

/// What a checkpoint holds, loaded.
[<NoComparison; NoEquality>]
type CheckpointContents =
    { Model: CharModel
      Vocabulary: Vocabulary
      Training: TrainingConfig
      Step: int
      Position: int
      RandomState: uint64
      /// The carried state of every layer.
      State: torch.Tensor[]
      /// The optimizer's state as TorchSharp writes it.
      OptimizerState: byte[] }

[<RequireQualifiedAccess>]
module Checkpoint =
    let private magic = "SEQNETS\n"B
    /// The format this version writes and reads.
    [<Literal>]
    let FormatVersion = 1

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
        let t = t.detach().contiguous().to_type torch.float64
        let data = t.data<float>().ToArray()
        w.Write(t.shape.Length)
        for d in t.shape do w.Write d
        w.Write data.Length
        for x in data do w.Write x

    let private readTensor (r: BinaryReader) (dtype: torch.ScalarType) =
        let rank = r.ReadInt32()
        if rank < 0 || rank > 8 then failwith $"a tensor of rank {rank}"
        let shape = Array.init rank (fun _ -> r.ReadInt64())
        let n = r.ReadInt32()
        if int64 n <> Array.fold (*) 1L shape then failwith $"a tensor of {n} values for shape {shape}"
        let data = Array.init n (fun _ -> r.ReadDouble())
        torch.tensor(data).reshape(shape).to_type dtype

    let private payload (trainer: Trainer) (vocabulary: Vocabulary) =
        let model = trainer.Model
        let c, t = model.Config, trainer.Config
        let header = JsonObject()
        header["kind"] <- JsonValue.Create(string c.Kind)
        header["vocabularySize"] <- JsonValue.Create c.VocabularySize
        header["hiddenSize"] <- JsonValue.Create c.HiddenSize
        header["layers"] <- JsonValue.Create c.Layers
        header["dtype"] <- JsonValue.Create(if model.DType = torch.float32 then "float32" else "float64")
        header["vocabulary"] <- JsonValue.Create(String(Array.ofSeq vocabulary.Characters))
        header["strategy"] <- JsonValue.Create(string t.Strategy)
        header["optimizer"] <- JsonValue.Create(optimizerText t.Optimizer)
        header["learningRate"] <- JsonValue.Create t.LearningRate
        header["schedule"] <- JsonValue.Create(scheduleText t.Schedule)
        header["clipping"] <- JsonValue.Create(clippingText t.Clipping)
        header["batch"] <- JsonValue.Create t.Batch
        header["sequenceLength"] <- JsonValue.Create t.SequenceLength
        header["path"] <- JsonValue.Create(string trainer.Path)
        header["seed"] <- JsonValue.Create t.Seed
        header["step"] <- JsonValue.Create trainer.StepCount
        header["position"] <- JsonValue.Create trainer.Position
        header["randomState"] <- JsonValue.Create trainer.RandomState
        use ms = new MemoryStream()
        use w = new BinaryWriter(ms)
        let json = Text.Encoding.UTF8.GetBytes(header.ToJsonString())
        w.Write json.Length
        w.Write json
        writeTensor w model.Parameters
        w.Write trainer.State.Length
        for s in trainer.State do writeTensor w s
        use os = new MemoryStream()
        (use ow = new BinaryWriter(os, Text.Encoding.UTF8, true) in trainer.Optimizer.save_state_dict ow)
        let opt = os.ToArray()
        w.Write opt.Length
        w.Write opt
        w.Flush()
        ms.ToArray()

    /// Writes the checkpoint through `write` into a temporary file next to `path`, then renames
    /// it over `path`. `write` is the last chance to fail before the rename (tests interrupt here).
    let internal saveVia (write: Stream -> byte[] -> unit) (path: string) (trainer: Trainer) (vocabulary: Vocabulary) =
        Check.notNull "path" path
        Check.notNull "trainer" trainer
        Check.notNull "vocabulary" vocabulary
        let full = Path.GetFullPath path
        let dir = Path.GetDirectoryName full
        Directory.CreateDirectory dir |> ignore
        let body = payload trainer vocabulary
        let temp = Path.Combine(dir, $".{Path.GetFileName full}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp")
        try
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
        finally
            if File.Exists temp then File.Delete temp

    /// Saves the trainer's model, optimizer and position with the vocabulary to path, atomically.
    [<CompiledName("Save")>]
    let save (path: string) (trainer: Trainer) (vocabulary: Vocabulary) =
        saveVia (fun s body -> s.Write(body, 0, body.Length)) path trainer vocabulary

    /// Loads a checkpoint. A missing, truncated, corrupt, foreign, newer-format or inconsistent
    /// file raises CheckpointException naming the file and the problem.
    [<CompiledName("Load")>]
    let load (path: string) : CheckpointContents =
        Check.notNull "path" path
        Native.ensure ()
        let fail problem = raise (CheckpointException(path, problem))
        if not (File.Exists path) then fail "no such file"
        let bytes = File.ReadAllBytes path
        if bytes.Length < 20 || not (ReadOnlySpan(bytes, 0, 8).SequenceEqual(ReadOnlySpan<byte>(magic))) then
            fail "not a SeqNets checkpoint (the file does not start with the SEQNETS header)"
        let version = BitConverter.ToInt32(bytes, 8)
        if version <> FormatVersion then
            fail $"written in checkpoint format {version}; this SeqNets reads format {FormatVersion}"
        let length = BitConverter.ToInt64(bytes, 12)
        let expected = 20L + length + 32L
        if int64 bytes.Length < expected then
            fail $"truncated: {bytes.Length} bytes, but the header announces {expected}"
        if int64 bytes.Length > expected then
            fail $"corrupt: {bytes.Length} bytes, but the header announces {expected}"
        let body = ReadOnlySpan(bytes, 20, int length).ToArray()
        let hash: byte[] = SHA256.HashData body
        if not (ReadOnlySpan<byte>(hash).SequenceEqual(ReadOnlySpan(bytes, int (20L + length), 32))) then
            fail "corrupt: the SHA-256 checksum of the contents does not match"
        try
            use r = new BinaryReader(new MemoryStream(body))
            let header = JsonNode.Parse(Text.Encoding.UTF8.GetString(r.ReadBytes(r.ReadInt32())))
            let str (k: string) = header[k].GetValue<string>()
            let int (k: string) = header[k].GetValue<int>()
            let config =
                { Kind = CellKind.parse (str "kind")
                  VocabularySize = int "vocabularySize"
                  HiddenSize = int "hiddenSize"
                  Layers = int "layers" }
            let vocabulary = Vocabulary(str "vocabulary" |> Array.ofSeq)
            if vocabulary.Size <> config.VocabularySize then
                fail $"mismatched: {vocabulary.Size} vocabulary characters for a model of {config.VocabularySize}"
            let dtype = if str "dtype" = "float32" then torch.float32 else torch.float64
            let training =
                { Strategy = BpttStrategy.parse (str "strategy")
                  Optimizer = OptimizerKind.parse (str "optimizer")
                  LearningRate = header["learningRate"].GetValue<float>()
                  Schedule = parseSchedule (str "schedule")
                  Clipping = parseClipping (str "clipping")
                  Batch = int "batch"
                  SequenceLength = int "sequenceLength"
                  Path = Some(if str "path" = "Fused" then Fused else Step)
                  Seed = header["seed"].GetValue<uint64>() }
            let model = new CharModel(config, dtype, 0UL)
            let parameters = readTensor r dtype
            if parameters.numel () <> model.ParameterCount then
                (model :> IDisposable).Dispose()
                fail $"mismatched: {parameters.numel ()} parameters stored for a {config.Kind} model of {model.ParameterCount}"
            (use _ = torch.no_grad () in model.Parameters.copy_ parameters |> ignore)
            let states = Array.init (r.ReadInt32()) (fun _ -> readTensor r dtype)
            if states.Length <> config.Layers then fail $"mismatched: {states.Length} layer states for {config.Layers} layers"
            let opt = r.ReadBytes(r.ReadInt32())
            { Model = model
              Vocabulary = vocabulary
              Training = training
              Step = int "step"
              Position = int "position"
              RandomState = header["randomState"].GetValue<uint64>()
              State = states
              OptimizerState = opt }
        with
        | :? CheckpointException -> reraise ()
        | e -> raise (CheckpointException(path, $"corrupt: the contents cannot be read ({e.Message})", e))

    /// A trainer that continues exactly where the checkpoint's left off, on trainIds.
    [<CompiledName("Resume")>]
    let resume (contents: CheckpointContents) (trainIds: int64[]) : Trainer =
        let trainer = new Trainer(contents.Model, trainIds, contents.Training)
        use r = new BinaryReader(new MemoryStream(contents.OptimizerState))
        trainer.Optimizer.load_state_dict r
        trainer.SetStepCount contents.Step
        trainer.Position <- contents.Position
        trainer.RandomState <- contents.RandomState
        if BpttStrategy.carriesState contents.Training.Strategy then
            trainer.State <- contents.State |> Array.map (fun s -> s.clone ())
        trainer
