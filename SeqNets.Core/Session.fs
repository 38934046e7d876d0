/// A training session: a network, the data it learns from, and its training run — the bookkeeping
/// that the command line and the C# face share. Training again with the same configuration continues
/// the same run (optimizer state, position in the data, carried state, schedule); with another it
/// starts a new run on the same parameters. A session loaded from a checkpoint resumes the saved run
/// exactly when trained with the saved configuration, and saves it back even when it never trains.
namespace SeqNets

open System
open System.Diagnostics
open System.Threading
open TorchSharp

/// What a network learns from: batches for a training configuration, and a validation loss.
type ITrainingData =
    /// The batches a run with this configuration reads.
    abstract Source: config: TrainingConfig -> IBatchSource
    /// The loss on held-out data (NaN when there is none).
    abstract Validate: network: Network * path: ExecutionPath * config: TrainingConfig -> float

/// A text for a next-token network: B streams of its training part, validation on the held-out part
/// (up to 20 batches, the state carried).
[<Sealed>]
type TextData(corpus: Corpus) =
    do Check.notNull "corpus" (box corpus)
    /// The corpus.
    member _.Corpus = corpus
    interface ITrainingData with
        member _.Source config =
            let perStream = (corpus.Train.Length - 1L) / int64 (max 1 config.Batch)
            if config.Batch >= 1 && perStream < int64 config.SequenceLength then
                Check.fail "Batch"
                    $"Batch: expected a training text of at least B·T + 1 = {int64 config.Batch * int64 config.SequenceLength + 1L} characters for Batch = {config.Batch} and SequenceLength = {config.SequenceLength}, but the text has {corpus.Train.Length}; lower Batch or SequenceLength."
            TextStreams(corpus.Train, config.Batch, config.SequenceLength)
        member _.Validate(network, path, config) =
            let ids = corpus.Validation
            if ids.Length < 2L then nan
            else Training.evaluate network path ids config.Batch (int (min (int64 config.SequenceLength) (ids.Length - 1L))) 20

/// One step of a session's run, as reported to progress.
type RunProgress =
    { /// Steps done in this call, 1-based.
      Done: int
      /// Steps this call was asked for.
      Steps: int
      /// What the step did.
      Report: StepReport
      /// The validation loss, when this step evaluated.
      Validation: float option
      /// Items (characters, steps or rows) per second over this call so far.
      ItemsPerSecond: float
      Elapsed: TimeSpan
      /// The estimated time left in this call.
      Remaining: TimeSpan }

/// What one call to TrainingSession.Train did.
type RunSummary =
    { /// Steps taken in this call.
      Steps: int
      /// Steps the network has taken in all, earlier runs and a loaded checkpoint's included.
      TotalSteps: int
      /// The loss of the last step (NaN when no step ran).
      LastLoss: float
      /// The validation loss at the end (NaN when there is no held-out data).
      Validation: float
      ItemsPerSecond: float
      /// Updates skipped in this call because the gradient was not finite.
      SkippedUpdates: int
      /// Whether the call stopped early on cancellation.
      Cancelled: bool
      Elapsed: TimeSpan }

/// A network, its data and its training run (dispose it: it owns the network).
[<Sealed>]
type TrainingSession(network: Network, data: ITrainingData option, vocabulary: Vocabulary option, loaded: CheckpointContents option) =
    do Check.notNull "network" network
    let mutable trainer: Trainer option = None
    let mutable checkpoint = loaded
    let mutable earlier = 0
    let mutable lastConfig: TrainingConfig option = loaded |> Option.bind _.Training
    let mutable disposed = false
    let mutable tokens = loaded |> Option.bind _.Tokens

    /// The configuration that identifies a run: the path resolved as a trainer resolves it.
    let runKey (config: TrainingConfig) = { config with Path = Some(Training.choosePath network config) }

    let dropCheckpoint () =
        checkpoint |> Option.iter (fun c -> for s in c.State do s.Dispose())
        checkpoint <- None

    /// A session over a network and (optionally) its data and vocabulary.
    new(network: Network, data: ITrainingData option, vocabulary: Vocabulary option) = new TrainingSession(network, data, vocabulary, None)

    /// A session for a checkpoint's network that resumes its run when trained with its configuration.
    static member Load(path: string, data: ITrainingData option) =
        let contents = Checkpoint.load path
        new TrainingSession(contents.Network, data, contents.Vocabulary, Some contents)

    /// The network.
    member _.Network = network
    /// The vocabulary of a text model.
    member _.Vocabulary = vocabulary
    /// The (source, target) token vocabularies of a sequence-to-sequence network, saved with it
    /// (a loaded checkpoint's, or those set); None for other networks.
    member _.Tokens
        with get () = tokens
        and set (value: (TokenVocabulary * TokenVocabulary) option) = tokens <- value
    /// The data the session trains on.
    member _.Data = data
    /// The configuration of the latest run (or of the loaded checkpoint's run).
    member _.LastConfig = lastConfig
    /// The current trainer, once a run has started.
    member _.Trainer = trainer
    /// Steps taken in all: earlier runs, the loaded checkpoint's and the current run's.
    member _.StepCount = earlier + (match trainer, checkpoint with Some t, _ -> t.StepCount | None, Some c -> c.Step | None, None -> 0)
    /// The path the next run with this configuration takes.
    member _.PathFor(config: TrainingConfig) = Training.choosePath network config

    /// The trainer of the run this configuration describes: the current one, the loaded checkpoint's
    /// run resumed, or a new one.
    member s.TrainerFor(config: TrainingConfig) : Trainer =
        if disposed then raise (ObjectDisposedException "TrainingSession")
        let d =
            match data with
            | Some d -> d
            | None -> raise (InvalidOperationException "The session has no data to train on: create or load it with its data.")
        let key = runKey config
        match trainer with
        | Some t when runKey t.Config = key -> t
        | _ ->
            let next =
                match checkpoint with
                | Some c when c.Step > 0 && c.Training.IsSome && runKey c.Training.Value = key -> Checkpoint.resume c (d.Source c.Training.Value)
                | _ -> new Trainer(network, d.Source config, config)
            // The steps of the run being replaced become earlier steps, unless the new trainer resumes them.
            let resumed = trainer.IsNone && checkpoint.IsSome && next.StepCount = checkpoint.Value.Step && next.StepCount > 0
            let current = match trainer, checkpoint with Some t, _ -> t.StepCount | None, Some c -> c.Step | None, None -> 0
            if not resumed then earlier <- earlier + current
            trainer |> Option.iter (fun t -> (t :> IDisposable).Dispose())
            dropCheckpoint ()
            trainer <- Some next
            next

    /// The validation loss under a configuration (NaN without held-out data).
    member _.Validate(config: TrainingConfig) =
        match data with
        | Some d -> d.Validate(network, (match trainer with Some t -> t.Path | None -> Training.choosePath network config), config)
        | None -> nan

    /// Trains for steps steps (or until cancelled) under config, reporting every step to progress
    /// and evaluating every evaluateEvery steps (0: only at the end).
    member s.Train(steps: int, config: TrainingConfig, progress: Action<RunProgress>, evaluateEvery: int, cancellation: CancellationToken) : RunSummary =
        use _ = SignalShield.enter ()
        Check.positive (nameof steps) steps
        if evaluateEvery < 0 then Check.fail (nameof evaluateEvery) $"evaluateEvery: expected 0 (only at the end) or a positive interval, but got {evaluateEvery}."
        let t = s.TrainerFor config
        lastConfig <- Some config
        let skippedBefore = t.SkippedUpdates
        let clock = Stopwatch.StartNew()
        let mutable items = 0L
        let mutable finished = 0
        let mutable lastLoss = nan
        let mutable validation = nan
        while finished < steps && not cancellation.IsCancellationRequested do
            let r = t.Step()
            finished <- finished + 1
            items <- items + int64 r.Characters
            lastLoss <- r.Loss
            let evaluate = finished = steps || (evaluateEvery > 0 && finished % evaluateEvery = 0)
            let v = if evaluate then Some(s.Validate config) else None
            v |> Option.iter (fun x -> validation <- x)
            if not (isNull progress) then
                let elapsed = clock.Elapsed
                let rate = float items / max 1e-9 elapsed.TotalSeconds
                let remaining = TimeSpan.FromTicks(int64 (float elapsed.Ticks / float finished * float (steps - finished)))
                progress.Invoke
                    { Done = finished; Steps = steps; Report = r; Validation = v |> Option.filter (Double.IsNaN >> not)
                      ItemsPerSecond = rate; Elapsed = elapsed; Remaining = remaining }
        let cancelled = finished < steps
        if cancelled then validation <- s.Validate config
        clock.Stop()
        { Steps = finished; TotalSteps = s.StepCount; LastLoss = lastLoss; Validation = validation
          ItemsPerSecond = float items / max 1e-9 clock.Elapsed.TotalSeconds
          SkippedUpdates = t.SkippedUpdates - skippedBefore; Cancelled = cancelled; Elapsed = clock.Elapsed }

    /// Saves the network, its vocabulary or token vocabularies and its run (the current one, or the
    /// loaded checkpoint's) to path, atomically.
    member _.Save(path: string) =
        match trainer, checkpoint with
        | Some t, _ -> Checkpoint.saveWith path network (Some t) vocabulary tokens
        | None, Some c when c.Training.IsSome -> Checkpoint.saveContents path { c with Tokens = tokens }
        | _ -> Checkpoint.saveWith path network None vocabulary tokens

    interface IDisposable with
        member _.Dispose() =
            if not disposed then
                disposed <- true
                trainer |> Option.iter (fun t -> (t :> IDisposable).Dispose())
                dropCheckpoint ()
                (network :> IDisposable).Dispose()
