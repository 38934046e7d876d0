module SeqNets.Cli.Program

open System
open Argu
open SeqNets

type VerifyArgs =
    | Cases of int
    | Max_Steps of int
    | Seed of uint64
    | Tolerance of float
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Cases _ -> "random cases per cell (default 50)."
            | Max_Steps _ -> "largest sequence length T (default 40)."
            | Seed _ -> "random seed (default 1)."
            | Tolerance _ -> "largest relative disagreement accepted (default 1e-9)."

type TrainArgs =
    | [<MainCommand>] Text of file: string
    | Cell of string
    | Hidden of int
    | Layers of int
    | Steps of int
    | Minutes of float
    | Batch of int
    | Seq_Length of int
    | Bptt of string
    | Optimizer of string
    | Lr of float
    | Cosine
    | Clip of float
    | Clip_Value of float
    | Path of string
    | Seed of uint64
    | Float64
    | Out of dir: string
    | Resume of checkpoint: string
    | Validate_Every of int
    | Sample_Length of int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Text _ -> "text file to train on (default: the embedded corpus, SeqNets' own sources)."
            | Cell _ -> "elman-tanh, elman-relu, gru, gru-lecture, lstm or mrnn-F (default lstm)."
            | Hidden _ -> "hidden units per layer (default 128)."
            | Layers _ -> "stacked layers (default 1)."
            | Steps _ -> "training steps (default: train for --minutes)."
            | Minutes _ -> "training time when --steps is not given (default 1)."
            | Batch _ -> "parallel streams B (default 32)."
            | Seq_Length _ -> "steps per batch T (default 64)."
            | Bptt _ -> "full, truncated:τ or randomized:m (default truncated:T)."
            | Optimizer _ -> "adam, rmsprop[:alpha], adagrad or sgd[:momentum] (default adam)."
            | Lr _ -> "learning rate (default 2e-3)."
            | Cosine -> "decay the learning rate along a cosine to 10% at the last step (needs --steps)."
            | Clip _ -> "clip the gradient's global norm (default 5)."
            | Clip_Value _ -> "clip every gradient entry to [-v, v] instead."
            | Path _ -> "fused (libtorch's kernels) or step (the cells' equations); default: the fastest available."
            | Seed _ -> "random seed (default 1)."
            | Float64 -> "train in float64 (default float32)."
            | Out _ -> "folder for the checkpoint and the loss plot (default seqnets-run)."
            | Resume _ -> "continue from a checkpoint."
            | Validate_Every _ -> "steps between validation losses (default 100)."
            | Sample_Length _ -> "characters to sample at the end (default 400)."

type SampleArgs =
    | [<MainCommand>] Checkpoint of file: string
    | Length of int
    | Prime of string
    | Temperature of float
    | Top_K of int
    | Seed of uint64
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Checkpoint _ -> "checkpoint to sample from (default seqnets-run/model.ckpt)."
            | Length _ -> "characters to generate (default 500)."
            | Prime _ -> "text to start from."
            | Temperature _ -> "softmax temperature (default 0.8)."
            | Top_K _ -> "draw only from the k most likely characters (default: all)."
            | Seed _ -> "random seed (default 1)."

[<HelpFlags("--help", "-h")>]
type Command =
    | [<CliPrefix(CliPrefix.None)>] Train of ParseResults<TrainArgs>
    | [<CliPrefix(CliPrefix.None)>] Sample of ParseResults<SampleArgs>
    | [<CliPrefix(CliPrefix.None)>] Verify of ParseResults<VerifyArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Train _ -> "train a character-level language model (default: on SeqNets' own sources)."
            | Sample _ -> "generate text from a checkpoint."
            | Verify _ -> "check the closed-form BPTT identity against autodiff for every built-in cell."

let private trainOptions (a: ParseResults<TrainArgs>) : TrainCommand.Options =
    let T = a.GetResult(Seq_Length, 64)
    let clipping =
        match a.TryGetResult Clip_Value with
        | Some v -> ByValue v
        | None -> ByNorm(a.GetResult(Clip, 5.0))
    let steps = a.TryGetResult Steps
    { TextFile = a.TryGetResult Text
      Kind = CellKind.parse (a.GetResult(Cell, "lstm"))
      Hidden = a.GetResult(Hidden, 128)
      Layers = a.GetResult(Layers, 1)
      Steps = steps
      Minutes = a.GetResult(Minutes, 1.0)
      Training =
        { Strategy = (match a.TryGetResult Bptt with Some s -> BpttStrategy.parse s | None -> Truncated T)
          Optimizer = OptimizerKind.parse (a.GetResult(Optimizer, "adam"))
          LearningRate = a.GetResult(Lr, 2e-3)
          Schedule =
            (match a.Contains Cosine, steps with
             | true, Some n -> Schedule.Cosine(n, 0.1)
             | true, None -> raise (ArgumentException("cosine: a cosine schedule needs --steps to know where it ends.", "cosine"))
             | false, _ -> Constant)
          Clipping = clipping
          Batch = a.GetResult(Batch, 32)
          SequenceLength = T
          Path =
            (match a.TryGetResult Path with
             | Some "fused" -> Some Fused
             | Some "step" -> Some Step
             | Some other -> raise (ArgumentException($"path: expected fused or step, but got '{other}'.", "path"))
             | None -> None)
          Seed = a.GetResult(TrainArgs.Seed, 1UL) }
      Double = a.Contains Float64
      OutDir = a.GetResult(Out, "seqnets-run")
      Resume = a.TryGetResult Resume
      ValidateEvery = a.GetResult(Validate_Every, 100)
      SampleLength = a.GetResult(Sample_Length, 400) }

[<EntryPoint>]
let main argv =
    let parser = ArgumentParser.Create<Command>(programName = "seqnets")
    try
        Native.ensure ()
        let results = parser.ParseCommandLine(argv, raiseOnUsage = true)
        match results.TryGetSubCommand() with
        | Some(Verify v) ->
            VerifyCommand.run (v.GetResult(Cases, 50)) (v.GetResult(Max_Steps, 40)) (v.GetResult(VerifyArgs.Seed, 1UL)) (v.GetResult(Tolerance, 1e-9))
        | Some(Train a) -> TrainCommand.run (trainOptions a)
        | Some(Sample a) ->
            TrainCommand.sample
                (a.GetResult(Checkpoint, IO.Path.Combine("seqnets-run", "model.ckpt")))
                (a.GetResult(Prime, ""))
                (a.GetResult(Length, 500))
                { Temperature = a.GetResult(Temperature, 0.8); TopK = a.GetResult(Top_K, 0); Seed = a.GetResult(SampleArgs.Seed, 1UL) }
        | None ->
            printfn "%s" (parser.PrintUsage())
            2
    with
    | :? ArguParseException as e ->
        eprintfn "%s" e.Message
        if e.ErrorCode = ErrorCode.HelpText then 0 else 2
    | :? EngineLoadException as e ->
        eprintfn "seqnets: %s" e.Message
        3
    | :? CheckpointException as e ->
        eprintfn "seqnets: %s" e.Message
        4
    | :? ArgumentException as e ->
        eprintfn "seqnets: %s" e.Message
        2
