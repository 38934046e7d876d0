/// Tasks generated in code (no downloads, seeded), one per input/output shape, each trained and
/// measured on held-out data:
///   brackets   many-to-one   is a string over ()[]{} balanced? — beside the stack check that solves it
///                            exactly, on held-out strings and on strings longer than any trained on
///   depth      synced        the nesting depth after every character of a string over ()
///   spell      one-to-many   a number 0–99 (a vector) → its English words, held-out numbers
///   later      synced        does the symbol at each position appear again later? — one direction
///                            against both (the future matters)
/// Legend: T time, B batch, V vocabulary.
namespace SeqNets

open System
open System.Diagnostics
open TorchSharp

/// One measured line of a task's table.
type TaskRow =
    { /// The model measured: a network's description, or the exact algorithm.
      Model: string
      /// The data it was measured on, e.g. "held-out, lengths 2–20".
      Data: string
      /// What is measured, e.g. "accuracy".
      Measure: string
      Value: float }

/// What a task run measured.
type TaskReport =
    { Task: string
      /// The lecture's shape the task exercises.
      Shape: string
      Rows: TaskRow list
      /// The claim the run checks, in words.
      Claim: string
      /// Whether the claim held in this run.
      Holds: bool
      /// Training steps per network.
      Steps: int
      Seed: uint64
      Elapsed: TimeSpan }

/// How a task trains.
type TaskOptions =
    { /// Training steps per network.
      Steps: int
      /// Hidden units per layer.
      Hidden: int
      Seed: uint64
      /// Rows per batch.
      Batch: int
      /// Called after every training step with (network description, step, loss); may be null.
      Progress: Action<string, int, float> }
    /// 1,500 steps, H = 64, B = 32, seed 1.
    static member Default = { Steps = 1500; Hidden = 64; Seed = 1UL; Batch = 32; Progress = null }

[<RequireQualifiedAccess>]
module Tasks =
    /// The task names, in the order of the lecture's shapes.
    let names = [ "brackets"; "depth"; "spell"; "later" ]

    // ---- data -------------------------------------------------------------------------------

    /// Sequences of token ids, padded into [T; B] with their lengths.
    let internal pad (rows: int64[][]) : torch.Tensor * int64[] =
        let T = rows |> Array.map Array.length |> Array.max
        let B = rows.Length
        let data = Array.zeroCreate<int64> (T * B)
        rows |> Array.iteri (fun b r -> r |> Array.iteri (fun t v -> data[t * B + b] <- v))
        torch.tensor(data).reshape(int64 T, int64 B), rows |> Array.map (fun r -> int64 r.Length)

    let private between (rng: SplitMix) (lo: int) (hi: int) = lo + int (rng.NextUInt64() % uint64 (hi - lo + 1))

    /// The exact check: a stack of open brackets (what the lecture says needs no learning).
    let balanced (text: string) =
        let stack = Collections.Generic.Stack<char>()
        let closing = dict [ ')', '('; ']', '['; '}', '{' ]
        let mutable ok = true
        for c in text do
            if ok then
                match c with
                | '(' | '[' | '{' -> stack.Push c
                | _ -> if stack.Count = 0 || stack.Pop() <> closing[c] then ok <- false
        ok && stack.Count = 0

    let private brackets = "()[]{}"

    /// A random balanced string of even length n over ()[]{}.
    let private balancedString (rng: SplitMix) (n: int) =
        let out = Text.StringBuilder()
        let stack = Collections.Generic.Stack<int>()
        for i in 0 .. n - 1 do
            let left = n - i
            let mustClose = stack.Count = left
            let canClose = stack.Count > 0
            if mustClose || (canClose && rng.NextDouble() < 0.5) then out.Append(brackets[2 * stack.Pop() + 1]) |> ignore
            else
                let kind = between rng 0 2
                stack.Push kind
                out.Append(brackets[2 * kind]) |> ignore
        out.ToString()

    /// Half balanced strings, half near misses (one character changed, or two neighbours swapped),
    /// of even lengths in [lo, hi], so that neither parity nor counts give the answer away.
    let private bracketExample (rng: SplitMix) (lo: int) (hi: int) =
        let n = 2 * between rng (lo / 2) (hi / 2)
        let s = balancedString rng n
        if rng.NextDouble() < 0.5 then s, 1L
        else
            let rec miss () =
                let chars = s.ToCharArray()
                let i = between rng 0 (n - 1)
                if rng.NextDouble() < 0.5 || n < 2 then chars[i] <- brackets[(brackets.IndexOf chars[i] + between rng 1 5) % 6]
                else
                    let j = if i + 1 < n then i + 1 else i - 1
                    let c = chars[i]
                    chars[i] <- chars[j]
                    chars[j] <- c
                let m = String(chars)
                if balanced m then miss () else m
            miss (), 0L

    let private bracketBatch (seed: uint64) (rows: int) (lo: int) (hi: int) : Batch * string[] =
        let rng = SplitMix(seed)
        let examples = Array.init rows (fun _ -> bracketExample rng lo hi)
        let inputs, lengths = pad (examples |> Array.map (fun (s, _) -> s |> Seq.map (fun c -> int64 (brackets.IndexOf c)) |> Array.ofSeq))
        { Inputs = inputs; Lengths = Some lengths; Targets = torch.tensor(examples |> Array.map snd); TargetLengths = None },
        examples |> Array.map fst

    /// A random walk over ( and ) that never goes below zero nor above maxDepth, of length in [lo, hi],
    /// with the depth after every character.
    let private depthExample (rng: SplitMix) (lo: int) (hi: int) (maxDepth: int) =
        let n = between rng lo hi
        let mutable d = 0
        let chars = Array.zeroCreate n
        let depths = Array.zeroCreate n
        for i in 0 .. n - 1 do
            let opening = d = 0 || (d < maxDepth && rng.NextDouble() < 0.5)
            d <- if opening then d + 1 else d - 1
            chars[i] <- if opening then 0L else 1L
            depths[i] <- int64 d
        chars, depths

    let private depthBatch (seed: uint64) (rows: int) (lo: int) (hi: int) =
        let rng = SplitMix(seed)
        let examples = Array.init rows (fun _ -> depthExample rng lo hi 8)
        let inputs, lengths = pad (examples |> Array.map fst)
        let targets, _ = pad (examples |> Array.map snd)
        { Inputs = inputs; Lengths = Some lengths; Targets = targets; TargetLengths = None }, examples

    let private units = [| "zero"; "one"; "two"; "three"; "four"; "five"; "six"; "seven"; "eight"; "nine"; "ten"; "eleven"; "twelve"; "thirteen"; "fourteen"; "fifteen"; "sixteen"; "seventeen"; "eighteen"; "nineteen" |]
    let private tens = [| ""; ""; "twenty"; "thirty"; "forty"; "fifty"; "sixty"; "seventy"; "eighty"; "ninety" |]

    /// A number 0–99 in English words: "forty two", "seventeen".
    let spell (n: int) =
        if n < 20 then units[n]
        elif n % 10 = 0 then tens[n / 10]
        else tens[n / 10] + " " + units[n % 10]

    /// The letters of the spelled numbers, the space and the end mark '.'.
    let private spellAlphabet = " .abcdefghijklmnopqrstuvwxyz"

    /// The number as a vector: one-hot tens digit ++ one-hot units digit ([20]).
    let private digits (n: int) = Array.init 20 (fun i -> if i = n / 10 || i = 10 + n % 10 then 1.0 else 0.0)

    let private spellBatch (dtype: torch.ScalarType) (numbers: int[]) =
        let words = numbers |> Array.map (fun n -> spell n + ".")
        let targets, lengths = pad (words |> Array.map (fun w -> w |> Seq.map (fun c -> int64 (spellAlphabet.IndexOf c)) |> Array.ofSeq))
        { Inputs = torch.tensor(numbers |> Array.collect digits, dtype = dtype).reshape(int64 numbers.Length, 20L)
          Lengths = None; Targets = targets; TargetLengths = Some lengths }

    /// Symbols 0–7; the label at t is 1 when x_t appears again after t.
    let private laterBatch (seed: uint64) (rows: int) (lo: int) (hi: int) =
        let rng = SplitMix(seed)
        let examples =
            Array.init rows (fun _ ->
                let xs = Array.init (between rng lo hi) (fun _ -> int64 (between rng 0 7))
                xs, xs |> Array.mapi (fun t x -> if Array.contains x xs[t + 1 ..] then 1L else 0L))
        let inputs, lengths = pad (examples |> Array.map fst)
        let targets, _ = pad (examples |> Array.map snd)
        { Inputs = inputs; Lengths = Some lengths; Targets = targets; TargetLengths = None }

    // ---- training ---------------------------------------------------------------------------

    let private train (options: TaskOptions) (spec: NetworkSpec) (batch: int -> Batch) : Network =
        let net = new Network(spec, torch.float32, options.Seed)
        let config = { TrainingConfig.Default with Strategy = Full; LearningRate = 3e-3; Batch = options.Batch; Seed = options.Seed }
        use trainer = new Trainer(net, GeneratedBatches(1_000_000, options.Batch, batch), config)
        let name = net.Describe()
        for _ in 1 .. options.Steps do
            let r = trainer.Step()
            if not (isNull options.Progress) then options.Progress.Invoke(name, r.Step, r.Loss)
        net

    let private lstm (options: TaskOptions) (width: int) = Cells.Lstm.create width options.Hidden

    let private measure (net: Network) (data: string) (batch: Batch) (pick: Metrics -> float) (what: string) =
        let m = Heads.evaluate net net.DefaultPath batch
        { Model = net.Describe(); Data = data; Measure = what; Value = pick m }

    let private seedOf (options: TaskOptions) (k: uint64) = options.Seed * 1_000_003UL + k

    let private report name shape steps seed (sw: Stopwatch) rows claim holds =
        { Task = name; Shape = shape; Rows = rows; Claim = claim; Holds = holds; Steps = steps; Seed = seed; Elapsed = sw.Elapsed }

    /// Many-to-one: balanced brackets, trained on lengths 2–20, measured on held-out strings of those
    /// lengths and on longer ones (24–60), beside the stack check.
    let private bracketsTask (options: TaskOptions) =
        let sw = Stopwatch.StartNew()
        let spec =
            { Input = OneHot 6; Layers = [ Layer.recurrent (lstm options 6) ]; Dropout = 0.0
              Head = ManyToOne Last; Output = 2; Loss = CrossEntropy }
        use net = train options spec (fun k -> fst (bracketBatch (seedOf options (uint64 k)) options.Batch 2 20))
        let sets = [ "held-out, lengths 2–20", 2, 20; "longer than trained, lengths 24–60", 24, 60 ]
        let rows =
            [ for data, lo, hi in sets do
                  use _ = torch.NewDisposeScope()
                  let batch, strings = bracketBatch (UInt64.MaxValue - uint64 lo - options.Seed) 2000 lo hi
                  let exact = Array.zip strings (batch.Targets.data<int64>().ToArray()) |> Array.averageBy (fun (s, y) -> if (balanced s) = (y = 1L) then 1.0 else 0.0)
                  yield { Model = "the stack check (no learning)"; Data = data; Measure = "accuracy"; Value = exact }
                  yield measure net data batch _.Accuracy "accuracy" ]
        let network = rows |> List.filter (fun r -> r.Model <> "the stack check (no learning)")
        let claim = "the stack check is exact on every set; the network classifies at least 80% of held-out strings of the trained lengths"
        let holds =
            rows |> List.forall (fun r -> r.Model <> "the stack check (no learning)" || r.Value = 1.0)
            && network.Head.Value >= 0.8
        report "brackets" "many-to-one" options.Steps options.Seed sw rows claim holds

    /// Synced many-to-many: the nesting depth (0–8) after every character, trained on lengths 10–30.
    let private depthTask (options: TaskOptions) =
        let sw = Stopwatch.StartNew()
        let spec =
            { Input = OneHot 2; Layers = [ Layer.recurrent (lstm options 2) ]; Dropout = 0.0
              Head = PerStep; Output = 9; Loss = CrossEntropy }
        use net = train options spec (fun k -> fst (depthBatch (seedOf options (uint64 k)) options.Batch 10 30))
        let rows =
            [ for data, lo, hi in [ "held-out, lengths 10–30", 10, 30; "longer than trained, lengths 40–80", 40, 80 ] do
                  use _ = torch.NewDisposeScope()
                  let batch, examples = depthBatch (UInt64.MaxValue - uint64 lo - options.Seed) 1000 lo hi
                  // The counter: +1 for (, −1 for ), compared with the labels step by step.
                  let counted =
                      examples |> Array.collect (fun (chars, depths) ->
                          let mutable d = 0L
                          chars |> Array.mapi (fun t c -> d <- d + (if c = 0L then 1L else -1L); if d = depths[t] then 1.0 else 0.0))
                  yield { Model = "a counter (no learning)"; Data = data; Measure = "accuracy per step"; Value = Array.average counted }
                  yield measure net data batch _.Accuracy "accuracy per step"
                  yield measure net data batch _.ExactMatch "rows all right" ]
        let heldOut = rows |> List.find (fun r -> r.Model <> "a counter (no learning)" && r.Measure = "accuracy per step")
        let claim = "the network tags at least 95% of held-out steps with their depth"
        report "depth" "synced many-to-many" options.Steps options.Seed sw rows claim (heldOut.Value >= 0.95)

    /// One-to-many: a number (two one-hot digits) → its English words and '.', 15 numbers held out.
    let private spellTask (options: TaskOptions) =
        let sw = Stopwatch.StartNew()
        let rng = SplitMix(options.Seed)
        // Held out: 15 numbers in 21–99 that are not multiples of ten (their two words appear in others).
        let candidates = [| for n in 21 .. 99 do if n % 10 <> 0 then yield n |]
        let heldOut =
            let pool = Collections.Generic.List(candidates)
            Array.init 15 (fun _ -> let i = int (rng.NextUInt64() % uint64 pool.Count) in let n = pool[i] in pool.RemoveAt i; n) |> Array.sort
        let training = [| for n in 0 .. 99 do if not (Array.contains n heldOut) then yield n |]
        let spec =
            { Input = InputLayer.Dense(20, 16); Layers = [ Layer.recurrent (lstm options 16) ]; Dropout = 0.0
              Head = OneToMany InputAtEachStep; Output = spellAlphabet.Length; Loss = CrossEntropy }
        use net =
            train options spec (fun k ->
                let r = SplitMix(seedOf options (uint64 k))
                spellBatch torch.float32 (Array.init options.Batch (fun _ -> training[int (r.NextUInt64() % uint64 training.Length)])))
        let rows =
            let heldOutText = String.Join(", ", heldOut)
            [ for data, numbers in [ "the 85 training numbers", training; $"15 held-out numbers ({heldOutText})", heldOut ] do
                  use _ = torch.NewDisposeScope()
                  let batch = spellBatch torch.float32 numbers
                  yield measure net data batch _.ExactMatch "words exactly right"
                  yield measure net data batch _.Accuracy "characters right" ]
        let heldOutExact = rows |> List.find (fun r -> r.Data.StartsWith "15" && r.Measure = "words exactly right")
        let trainingExact = rows |> List.find (fun r -> r.Data.StartsWith "the 85" && r.Measure = "words exactly right")
        let claim = "every training number is spelled exactly, and at least half of the held-out ones"
        report "spell" "one-to-many" options.Steps options.Seed sw rows claim (trainingExact.Value = 1.0 && heldOutExact.Value >= 0.5)

    /// Synced, where the future matters: one direction against both, the same cell and budget.
    let private laterTask (options: TaskOptions) =
        let sw = Stopwatch.StartNew()
        let spec direction =
            { Input = OneHot 8; Layers = [ { Cell = lstm options 8; Direction = direction } ]; Dropout = 0.0
              Head = PerStep; Output = 2; Loss = CrossEntropy }
        let data k = laterBatch (seedOf options (uint64 k)) options.Batch 8 16
        let rows =
            [ for direction in [ Forward; Bidirectional Concat ] do
                  use net = train options (spec direction) data
                  use _ = torch.NewDisposeScope()
                  let batch = laterBatch (UInt64.MaxValue - options.Seed) 2000 8 16
                  yield measure net "held-out, lengths 8–16" batch _.Accuracy "accuracy per step" ]
        let claim = "reading both ways beats reading left to right by at least 10 points of accuracy"
        report "later" "synced many-to-many, bidirectional" options.Steps options.Seed sw rows claim (rows[1].Value - rows[0].Value >= 0.10)

    /// Trains and measures the task called name ("brackets", "depth", "spell", "later").
    [<CompiledName("Run")>]
    let run (name: string) (options: TaskOptions) : TaskReport =
        use _ = SignalShield.enter ()
        Native.ensure ()
        Check.positive "Steps" options.Steps
        Check.positive "Hidden" options.Hidden
        Check.positive "Batch" options.Batch
        match (if isNull name then "" else name.Trim().ToLowerInvariant()) with
        | "brackets" -> bracketsTask options
        | "depth" -> depthTask options
        | "spell" -> spellTask options
        | "later" -> laterTask options
        | other -> Check.fail "name" $"""name: expected one of {String.Join(", ", names)}, but got '{other}'."""
