/// The lecture's five input/output shapes as heads over a network's layers: each has its loss, its
/// predictions and its metrics, and each ignores padding.
///   PerStep         y_t = g(h_t)                         L = mean over real steps of ℓ(y_t, o_t)
///   ManyToOne       y = g(pool(h_1 … h_T))               L = mean over rows of ℓ(y, o)
///   OneToOne        y = g(h_1), h_1 = f(x, s_0)          L = mean over rows
///   OneToMany       y_t = g(h_t), v as s_0 or as x_t     L = mean over real target steps
///   EncoderDecoder  decoder from the bridged encoder state, teacher forcing in training,
///                   greedy decoding to Eos in prediction L = mean over real target steps
/// Legend: T time, B batch, O outputs, W top layer's width, S state, V target vocabulary.
namespace SeqNets

open System
open TorchSharp

/// How beam search ranks hypotheses of different lengths |y| (Eos included).
type LengthNormalization =
    /// log p(y) as it is (short hypotheses are favoured).
    | NoNormalization
    /// log p(y) / |y|^α.
    | Power
    /// log p(y) / ((5 + |y|) / 6)^α (Wu et al. 2016, GNMT).
    | Gnmt

/// Beam search's settings.
type BeamOptions =
    { /// k: hypotheses kept alive at every step (≥ 1; 1 is greedy decoding).
      Width: int
      /// How many of the best hypotheses to return per row (≤ Width).
      NBest: int
      /// α of the length normalisation.
      Alpha: float
      Normalization: LengthNormalization
      /// The longest hypothesis (Eos included); None: the decoder's MaxLength.
      MaxLength: int option }
    /// k = 5, the 5 best, GNMT normalisation with α = 0.6.
    static member Default = { Width = 5; NBest = 5; Alpha = 0.6; Normalization = Gnmt; MaxLength = None }

/// One hypothesis of beam search.
type Hypothesis =
    { /// The tokens produced, Eos included when it ended.
      Tokens: int64[]
      /// log p(tokens | source).
      LogProbability: float
      /// The ranking score: LogProbability under the length normalisation.
      Score: float
      /// Whether it ended with Eos (false: stopped at the maximum length).
      Finished: bool
      /// The attention weights over the source at every step (one row per token); empty without attention.
      Attention: float[][] }

[<RequireQualifiedAccess>]
module Heads =
    let private float64Of (t: torch.Tensor) = (use d = t.to_type torch.float64 in d.item<float> ())
    let private dimsText (dims: int64[]) = "[" + String.Join("; ", dims) + "]"

    /// The mask [T; B] (dtype) of real steps.
    let internal stepMask (dtype: torch.ScalarType) (T: int64) (B: int64) (lengths: int64[] option) =
        match lengths with
        | None -> torch.ones([| T; B |], dtype = dtype)
        | Some ls -> (torch.arange(T).unsqueeze(1L).lt (torch.tensor(ls).unsqueeze 0L)).to_type dtype

    let private checkTargets (net: Network) (argument: string) (rank: int) (legend: string) (lead: int64[]) (targets: torch.Tensor) =
        Check.notNull argument targets
        let O = int64 net.Spec.Output
        match net.Spec.Loss with
        | CrossEntropy ->
            if targets.dtype <> torch.int64 then
                Check.fail argument $"{argument}: expected int64 class indices {legend} for cross-entropy, but got dtype {targets.dtype}."
            if targets.shape <> lead then
                Check.fail argument $"{argument}: expected shape {dimsText lead} {legend}, but got {Check.shapeText targets}."
            if targets.numel () > 0L then
                use _ = torch.no_grad ()
                let lo, hi = (use m = targets.min () in m.item<int64> ()), (use m = targets.max () in m.item<int64> ())
                if lo < 0L || hi >= O then
                    Check.fail argument $"{argument}: expected class indices in [0, {O - 1L}], but found values in [{lo}, {hi}]."
        | MeanSquared ->
            let expected = Array.append lead [| O |]
            if targets.shape <> expected then
                Check.fail argument $"{argument}: expected shape {dimsText expected} for mean squared error, but got {Check.shapeText targets}."
            if targets.dtype <> net.DType then
                Check.fail argument $"{argument}: expected dtype {net.DType} to match the network, but got {targets.dtype}."
            Check.finite argument targets
        ignore rank

    /// ℓ at every position of y [.., O] against targets (classes [..] or values [.., O]): [..].
    let private pointLoss (net: Network) (y: torch.Tensor) (targets: torch.Tensor) =
        match net.Spec.Loss with
        | CrossEntropy -> -(y.log_softmax(-1L).gather(-1L, targets.unsqueeze -1L).squeeze -1L)
        | MeanSquared -> (y - targets).square().mean([| -1L |])

    /// Mean ℓ over the real steps of a sequence output y [T; B; O].
    let private sequenceLoss (net: Network) (y: torch.Tensor) (targets: torch.Tensor) (lengths: int64[] option) =
        match lengths, net.Spec.Loss with
        | None, CrossEntropy ->
            let O = y.shape[2]
            torch.nn.functional.cross_entropy(y.reshape(-1L, O), targets.reshape(-1L)) // mean over T·B, as PyTorch
        | None, MeanSquared -> (y - targets).square().mean()
        | Some _, _ ->
            let mask = stepMask y.dtype y.shape[0] y.shape[1] lengths // [T; B]
            (pointLoss net y targets * mask).sum() / mask.sum()

    /// The top layer's outputs pooled per row: [B; W].
    let private pool (net: Network) (pooling: Pooling) (top: torch.Tensor) (finals: torch.Tensor[]) (lengths: int64[] option) =
        match pooling with
        | Last ->
            let b = net.Encoder
            let top = b.Units[b.Units.Length - 1]
            let first = b.AllUnits.Length - top.Length
            let hs = top |> Array.mapi (fun k u -> Cell.output u.Cell finals[first + k]) // [B; H] each
            match b.Layers[b.Layers.Length - 1].Direction with
            | Forward -> hs[0]
            | Bidirectional Concat -> torch.cat(hs, -1L)
            | Bidirectional Sum -> hs[0] + hs[1]
        | Mean ->
            let mask = stepMask top.dtype top.shape[0] top.shape[1] lengths // [T; B]
            (top * mask.unsqueeze -1L).sum(0L) / mask.sum(0L).unsqueeze -1L
        | Max ->
            let mask = stepMask top.dtype top.shape[0] top.shape[1] lengths
            let masked = torch.where((mask.gt (0.0.ToScalar())).unsqueeze -1L, top, torch.full_like(top, Double.NegativeInfinity))
            masked.amax([| 0L |])

    /// s_0 = tanh(W_k v + b_k) for every unit k (one-to-many from an initial state, or an
    /// encoder–decoder's learned bridge).
    let private bridged (net: Network) (v: torch.Tensor) =
        net.BridgeOffsets |> Array.mapi (fun k offset ->
            let S, I = int64 net.BridgeTargets[k], int64 net.BridgeInput
            let W = net.Parameters.narrow(0L, offset, S * I).view(S, I)
            let b = net.Parameters.narrow(0L, offset + S * I, S)
            torch.addmm(b, v, W.t (), 1.0f, 1.0f).tanh ()) // [B; S]

    /// The decoder's initial states from the encoder's final states.
    let internal decoderStart (net: Network) (d: Decoder) (finals: torch.Tensor[]) =
        match d.Bridge with
        | Copy ->
            let enc = net.Encoder
            Array.init d.Layers.Length (fun k ->
                let first = enc.Units[.. k - 1] |> Array.sumBy _.Length
                finals[first]) // the forward direction of encoder layer k
        | Projection ->
            let enc = net.Encoder
            let top = enc.Units[enc.Units.Length - 1]
            let first = enc.AllUnits.Length - top.Length
            bridged net (torch.cat(finals[first ..], -1L)) // z: the top layer's final states

    /// What the encoder hands the decoder: its outputs as the attention memory [B; S; E], the mask of
    /// real source steps [B; S], and its final states.
    type private Encoded = { Memory: torch.Tensor; Mask: torch.Tensor; Finals: torch.Tensor[] }

    /// Each row's real steps in reverse order (t ↦ len − 1 − t), padding in place: source reversal.
    let private reverseRows (inputs: torch.Tensor) (lengths: int64[] option) =
        let S, B = inputs.shape[0], inputs.shape[1]
        let index =
            match lengths with
            | None -> torch.arange(S - 1L, -1L, -1L).unsqueeze(1L).expand(S, B)
            | Some ls ->
                let len = torch.tensor(ls).unsqueeze 0L
                let t = torch.arange(S).unsqueeze 1L
                torch.where(t.lt len, len - 1L - t, t.expand(S, B))
        if inputs.dim () = 2L then inputs.gather(0L, index)
        else inputs.gather(0L, index.unsqueeze(-1L).expand(S, B, inputs.shape[2]))

    let private encode (net: Network) (path: ExecutionPath) (d: Decoder) (argument: string) (inputs: torch.Tensor) (lengths: int64[] option) (training: bool) =
        let S, B = inputs.shape[0], inputs.shape[1]
        net.CheckLengths (if argument = "inputs" then "lengths" else "batch.Lengths") S B lengths
        let inputs = if d.ReverseSource then reverseRows inputs lengths else inputs
        let input = net.SequenceInput(argument, net.Encoder, inputs)
        let top, finals = net.RunBody(net.Encoder, path, input, net.ZeroState(int B), None, lengths, training)
        let mask =
            match lengths with
            | Some ls -> torch.arange(S).unsqueeze(0L).lt (torch.tensor(ls).unsqueeze 1L) // [B; S]
            | None -> torch.ones([| B; S |], dtype = torch.ScalarType.Bool)
        { Memory = top.transpose(0L, 1L).contiguous (); Mask = mask; Finals = finals }

    /// A decoder ready to run over one encoding: its initial states, one step (previous tokens [B] →
    /// logits [B; V], next states, attention weights [B; N]), and a teacher-forced run over shifted
    /// target tokens [T; B] (→ logits [T; B; V]).
    type private Decoding =
        { Start: torch.Tensor[]
          Step: torch.Tensor[] -> torch.Tensor -> torch.Tensor * torch.Tensor[] * torch.Tensor option
          Forced: torch.Tensor -> int64[] option -> torch.Tensor
          /// The attention weights [T; B; N] along states s_0 … s_T ([T+1; B; S]) of a forced run.
          WeightsAlong: torch.Tensor -> torch.Tensor option }

    /// The initial state of a decoder with attention: the decoder layers' bridged states as one inner
    /// state (a stack's: top layer first), with h̃_0 = 0 in front for Luong.
    let internal attentionStart (net: Network) (d: Decoder) (ad: AttentionDecoder) (finals: torch.Tensor[]) =
        let layerStates = decoderStart net d finals
        let inner = if layerStates.Length = 1 then layerStates[0] else torch.cat(Array.rev layerStates, -1L)
        match ad.Style with
        | Bahdanau -> inner
        | Luong _ -> torch.cat([| torch.zeros([| inner.shape[0]; int64 ad.QueryWidth |], dtype = inner.dtype); inner |], -1L)

    let private decoding (net: Network) (path: ExecutionPath) (d: Decoder) (e: Encoded) (training: bool) : Decoding =
        let body = net.Decoder.Value
        let layerStates = decoderStart net d e.Finals // one per decoder layer
        match body.Attention with
        | None ->
            { Start = layerStates
              Step = fun states tokens ->
                  let top, next = net.RunBody(body, path, TokenInput(tokens.unsqueeze 0L), states, None, None, training)
                  net.ApplyReadout top[0L], next, None
              Forced = fun shifted lengths ->
                  let top, _ = net.RunBody(body, path, TokenInput shifted, layerStates, None, lengths, training)
                  net.ApplyReadout top
              WeightsAlong = fun _ -> None }
        | Some ad ->
            let u = body.Units[0][0]
            let theta = net.UnitParameters u
            let cell = Attention.bind ad e.Memory (Some e.Mask)
            let H = int64 ad.QueryWidth
            let s0 = attentionStart net d ad e.Finals
            let step = Attention.decodingStep ad e.Memory (Some e.Mask) theta // θ's views and the additive score's U M once per decoding
            let weightsAt = Attention.weightsFor ad theta e.Memory (Some e.Mask) // the same, for the weights along a forced sequence
            let query (sPrev: torch.Tensor) (sNext: torch.Tensor) =
                match ad.Style with
                | Bahdanau -> sPrev.narrow(-1L, 0L, H) // h_{t−1}
                | Luong _ -> sNext.narrow(-1L, H, H) // h_t, the inner state's output
            let embed (tokens: torch.Tensor) = net.ApplyInput(body, TokenInput tokens) // [T; B; X]
            { Start = [| s0 |]
              Step = fun states tokens ->
                  let s = states[0]
                  let x = (embed (tokens.unsqueeze 0L)).squeeze 0L // [B; X]
                  let next, alpha = step x s
                  net.ApplyReadout(Cell.output cell next), [| next |], Some alpha
              Forced = fun shifted lengths ->
                  let T, B = shifted.shape[0], shifted.shape[1]
                  let mask = lengths |> Option.map (fun ls -> (torch.arange(T).unsqueeze(1L).lt (torch.tensor(ls).unsqueeze 0L)).to_type net.DType)
                  let ss = Recurrence.run cell theta false (embed shifted) s0 None mask
                  let hs = Cell.output cell (torch.stack(ss, 0L)) // [T; B; H]
                  ignore B
                  net.ApplyReadout hs
              WeightsAlong = fun states ->
                  let T = states.shape[0] - 1L
                  Some(torch.stack([| for t in 0L .. T - 1L -> weightsAt (query states[t] states[t + 1L]) |], 0L)) }

    let private requireVector (argument: string) (net: Network) (inputs: torch.Tensor) =
        Check.notNull argument inputs
        Check.floating argument inputs
        Check.dims argument "[B; I]" 2 inputs
        let I = match net.Spec.Input with InputLayer.Vectors w -> w | InputLayer.Dense(i, _) -> i | _ -> 0
        Check.size argument "[B; I]" 1 "I" (int64 I) inputs
        if inputs.dtype <> net.DType then Check.fail argument $"{argument}: expected dtype {net.DType} to match the network, but got {inputs.dtype}."
        Check.finite argument inputs

    /// One-to-many's outputs for T steps from vectors v [B; I].
    let private oneToMany (net: Network) (path: ExecutionPath) (vectorAs: VectorAs) (v: torch.Tensor) (T: int64) (training: bool) =
        let B = v.shape[0]
        let input, states =
            match vectorAs with
            | InputAtEachStep -> VectorInput(v.unsqueeze(0L).expand(T, B, v.shape[1])), net.ZeroState(int B)
            | InitialState -> ZeroInput(T, B), bridged net v
        let top, _ = net.RunBody(net.Encoder, path, input, states, None, None, training)
        net.ApplyReadout top // [T; B; O]

    /// The loss of a batch under the network's head: (L, the layers' final states). states (the
    /// layers' initial states, in the order of Network.Cells; zeros when None) and weights (the
    /// gradient cuts of truncated BPTT) apply to the heads that read a sequence.
    [<CompiledName("Loss")>]
    let loss (net: Network) (path: ExecutionPath) (batch: Batch) (states: torch.Tensor[] option) (weights: float[] option) (training: bool)
        : torch.Tensor * torch.Tensor[] =
        use _ = SignalShield.enter ()
        net.ThrowIfDisposed()
        Check.notNull "batch" (box batch)
        let inputs = batch.Inputs
        Check.notNull "batch.Inputs" inputs
        match net.Spec.Head with
        | PerStep ->
            let input = net.SequenceInput("batch.Inputs", net.Encoder, inputs)
            let T, B = inputs.shape[0], inputs.shape[1]
            net.CheckLengths "batch.Lengths" T B batch.Lengths
            checkTargets net "batch.Targets" 2 "[T; B]" [| T; B |] batch.Targets
            let states = defaultArg states (net.ZeroState(int B))
            let top, finals = net.RunBody(net.Encoder, path, input, states, weights, batch.Lengths, training)
            sequenceLoss net (net.ApplyReadout top) batch.Targets batch.Lengths, finals
        | ManyToOne pooling ->
            let input = net.SequenceInput("batch.Inputs", net.Encoder, inputs)
            let T, B = inputs.shape[0], inputs.shape[1]
            net.CheckLengths "batch.Lengths" T B batch.Lengths
            checkTargets net "batch.Targets" 1 "[B]" [| B |] batch.Targets
            let states = defaultArg states (net.ZeroState(int B))
            let top, finals = net.RunBody(net.Encoder, path, input, states, weights, batch.Lengths, training)
            let y = net.ApplyReadout(pool net pooling top finals batch.Lengths) // [B; O]
            (pointLoss net y batch.Targets).mean(), finals
        | OneToOne ->
            requireVector "batch.Inputs" net inputs
            let B = inputs.shape[0]
            checkTargets net "batch.Targets" 1 "[B]" [| B |] batch.Targets
            let states = defaultArg states (net.ZeroState(int B))
            let top, finals = net.RunBody(net.Encoder, path, VectorInput(inputs.unsqueeze 0L), states, None, None, training)
            (pointLoss net (net.ApplyReadout top[0L]) batch.Targets).mean(), finals
        | OneToMany vectorAs ->
            requireVector "batch.Inputs" net inputs
            let B = inputs.shape[0]
            let targets = batch.Targets
            Check.notNull "batch.Targets" targets
            if targets.dim () < 2L then Check.fail "batch.Targets" $"batch.Targets: expected [T; B] (or [T; B; O]) targets, but got {Check.shapeText targets}."
            let T = targets.shape[0]
            checkTargets net "batch.Targets" 2 "[T; B]" [| T; B |] targets
            net.CheckLengths "batch.TargetLengths" T B batch.TargetLengths
            let y = oneToMany net path vectorAs inputs T training
            sequenceLoss net y targets batch.TargetLengths, [||]
        | EncoderDecoder d ->
            Check.dims "batch.Inputs" "[S; B] token ids or [S; B; I] vectors" (if InputLayer.takesTokens net.Spec.Input then 2 else 3) inputs
            let B = inputs.shape[1]
            let targets = batch.Targets
            Check.notNull "batch.Targets" targets
            Check.dims "batch.Targets" "[T; B]" 2 targets
            let T = targets.shape[0]
            if T > int64 d.MaxLength then
                Check.fail "batch.Targets" $"batch.Targets: expected at most the decoder's MaxLength = {d.MaxLength} steps, but got T = {T}."
            checkTargets net "batch.Targets" 2 "[T; B]" [| T; B |] targets
            net.CheckLengths "batch.TargetLengths" T B batch.TargetLengths
            let e = encode net path d "batch.Inputs" inputs batch.Lengths training
            let dec = decoding net path d e training
            let bos = torch.full([| 1L; B |], (int64 d.Bos).ToScalar(), dtype = torch.int64)
            let logits =
                if not training || d.TeacherForcing >= 1.0 then
                    // Teacher forcing: the decoder reads <bos>, y_1, …, y_{T−1} and predicts y_1, …, y_T.
                    dec.Forced (torch.cat([| bos; targets.narrow(0L, 0L, T - 1L) |], 0L)) batch.TargetLengths // [T; B; V]
                else
                    // Scheduled: each row feeds the true previous token with probability TeacherForcing,
                    // else its own most likely one (drawn from the network's generator, reseeded per step).
                    let mutable states = dec.Start
                    let mutable token = bos[0L]
                    let steps = ResizeArray<torch.Tensor>()
                    for t in 0L .. T - 1L do
                        let y, next, _ = dec.Step states token
                        steps.Add y
                        states <- next
                        if t + 1L < T then
                            let truth = torch.rand([| B |], generator = net.DropoutGenerator).lt (d.TeacherForcing.ToScalar())
                            token <- torch.where(truth, targets[t], y.detach().argmax(-1L))
                    torch.stack(steps.ToArray(), 0L)
            sequenceLoss net logits targets batch.TargetLengths, e.Finals

    /// Greedy decoding: the encoder reads the source, the decoder starts from the bridged state and
    /// <bos>, and feeds back its most likely token until every row has produced Eos or MaxLength.
    let private greedy (net: Network) (path: ExecutionPath) (d: Decoder) (inputs: torch.Tensor) (lengths: int64[] option) =
        Check.dims "inputs" "[S; B] token ids or [S; B; I] vectors" (if InputLayer.takesTokens net.Spec.Input then 2 else 3) inputs
        let B = inputs.shape[1]
        let e = encode net path d "inputs" inputs lengths false
        let dec = decoding net path d e false
        let mutable states = dec.Start
        let mutable token = torch.full([| B |], (int64 d.Bos).ToScalar(), dtype = torch.int64)
        let out = ResizeArray<torch.Tensor>()
        let weights = ResizeArray<torch.Tensor>()
        let ended = Array.create (int B) 0L
        let mutable t = 0
        while t < d.MaxLength && ended |> Array.exists (fun e -> e = 0L) do
            let y, next, alpha = dec.Step states token
            states <- next
            token <- y.argmax(-1L) // [B]
            out.Add token
            alpha |> Option.iter weights.Add
            let ids = token.data<int64>().ToArray()
            for b in 0 .. int B - 1 do
                if ended[b] = 0L && ids[b] = int64 d.Eos then ended[b] <- int64 (t + 1)
            t <- t + 1
        let lengths = ended |> Array.map (fun e -> if e = 0L then int64 t else e)
        { Values = torch.stack(out.ToArray(), 0L); Lengths = Some lengths // [T'; B]
          Attention = if weights.Count = 0 then None else Some(torch.stack(weights.ToArray(), 0L)) } // [T'; B; S]

    /// The ranking score of a hypothesis of |y| tokens with log-probability lp.
    let internal normalized (o: BeamOptions) (lp: float) (length: int) =
        match o.Normalization with
        | NoNormalization -> lp
        | Power -> lp / Math.Pow(float length, o.Alpha)
        | Gnmt -> lp / Math.Pow((5.0 + float length) / 6.0, o.Alpha)

    /// Beam search for every source row: the n best hypotheses, best first. At every step each live
    /// hypothesis is extended by every token; of the best 2k extensions, those ending in Eos among the
    /// best k are finished — and leave the beam, so a finished hypothesis is kept once — and the best k others stay
    /// alive. The search stops when k hypotheses have finished, when none is alive, or at the
    /// maximum length (the live ones are then returned unfinished if nothing finished).
    [<CompiledName("Beam")>]
    let beam (net: Network) (path: ExecutionPath) (inputs: torch.Tensor) (lengths: int64[] option) (options: BeamOptions) : Hypothesis[][] =
        use _ = SignalShield.enter ()
        net.ThrowIfDisposed()
        Check.notNull "inputs" inputs
        let d =
            match net.Spec.Head with
            | EncoderDecoder d -> d
            | h -> Check.fail "net" $"net: beam search decodes an encoder–decoder, but the network's head is {h}."
        if options.Width < 1 then Check.fail "options" $"options: expected a beam Width of at least 1, but got {options.Width}."
        if options.NBest < 1 || options.NBest > options.Width then
            Check.fail "options" $"options: expected NBest in [1, Width = {options.Width}], but got {options.NBest}."
        if not (options.Alpha >= 0.0) || Double.IsInfinity options.Alpha then
            Check.fail "options" $"options: expected a finite length-normalisation Alpha >= 0, but got {options.Alpha}."
        let maxLength = defaultArg options.MaxLength d.MaxLength
        if maxLength < 1 then Check.fail "options" $"options: expected a positive MaxLength, but got {maxLength}."
        Check.dims "inputs" "[S; B] token ids or [S; B; I] vectors" (if InputLayer.takesTokens net.Spec.Input then 2 else 3) inputs
        let S, B = inputs.shape[0], inputs.shape[1]
        net.CheckLengths "lengths" S B lengths
        use _ = torch.no_grad ()
        let k = options.Width
        let V = net.Spec.Output
        [| for b in 0 .. int B - 1 do
               use scope = torch.NewDisposeScope()
               let length = lengths |> Option.map (fun ls -> ls[b])
               let n = defaultArg length S
               let row = inputs.narrow(1L, int64 b, 1L).narrow(0L, 0L, n) // this source alone
               let e1 = encode net path d "inputs" row None false
               let expand (t: torch.Tensor) = t.expand(Array.append [| int64 k |] t.shape[1..]).contiguous ()
               let e = { Memory = expand e1.Memory; Mask = expand e1.Mask; Finals = e1.Finals |> Array.map expand }
               let dec = decoding net path d e false
               let mutable states = dec.Start
               // Live hypotheses: (tokens, log p, attention rows); only the first exists at the start.
               let mutable live = [| [||], 0.0, [||] |]
               let finished = ResizeArray<Hypothesis>()
               let mutable t = 0
               while t < maxLength && live.Length > 0 && finished.Count < k do
                   let last = torch.tensor([| for i in 0 .. k - 1 -> if i < live.Length then (match live[i] with (toks: int64[]), _, _ when toks.Length > 0 -> toks[toks.Length - 1] | _ -> int64 d.Bos) else int64 d.Bos |])
                   let y, next, alpha = dec.Step states last
                   let logp = y.log_softmax(-1L).to_type(torch.float64).data<float>().ToArray() // [k·V]
                   let alphas = alpha |> Option.map (fun a -> a.to_type(torch.float64).data<float>().ToArray())
                   let N = int e.Memory.shape[1]
                   let candidates =
                       [| for i in 0 .. live.Length - 1 do
                              let _, lp, _ = live[i]
                              for v in 0 .. V - 1 -> i, v, lp + logp[i * V + v] |]
                       |> Array.sortByDescending (fun (_, _, score) -> score)
                       |> Array.truncate (2 * k)
                   let kept = ResizeArray()
                   // An extension ending in Eos finishes only if it ranks among the best k (as a beam of
                   // k would have kept it); the k best others stay alive, so the beam never runs empty early.
                   candidates |> Array.iteri (fun rank (i, v, score) ->
                       if finished.Count < k || kept.Count < k then
                           let tokens, _, att = live[i]
                           let att = match alphas with Some a -> Array.append att [| a[i * N .. i * N + N - 1] |] | None -> att
                           let tokens = Array.append tokens [| int64 v |]
                           if v = d.Eos then
                               if rank < k && finished.Count < k then
                                   finished.Add { Tokens = tokens; LogProbability = score; Score = normalized options score tokens.Length
                                                  Finished = true; Attention = att }
                           elif kept.Count < k then kept.Add(i, tokens, score, att))
                   live <- [| for _, tokens, score, att in kept -> tokens, score, att |]
                   if live.Length > 0 then
                       let origin = torch.tensor([| for i in 0 .. k - 1 -> let o, _, _, _ = kept[min i (kept.Count - 1)] in int64 o |])
                       states <- next |> Array.map (fun s -> s.index_select(0L, origin))
                   t <- t + 1
               let result =
                   if finished.Count > 0 then finished.ToArray()
                   else
                       [| for tokens, score, att in live ->
                              { Tokens = tokens; LogProbability = score; Score = normalized options score tokens.Length
                                Finished = false; Attention = att } |]
               yield result |> Array.sortByDescending _.Score |> Array.truncate options.NBest |]

    let private decide (net: Network) (y: torch.Tensor) =
        match net.Spec.Loss with
        | CrossEntropy -> y.argmax(-1L)
        | MeanSquared -> y

    /// What the network predicts for inputs (as the head's Batch.Inputs) with lengths per row:
    /// classes (cross-entropy) or values (mean squared error) per step or per row. steps: how many
    /// steps one-to-many generates (others ignore it).
    [<CompiledName("Predict")>]
    let predict (net: Network) (path: ExecutionPath) (inputs: torch.Tensor) (lengths: int64[] option) (steps: int option) : Prediction =
        use _ = SignalShield.enter ()
        net.ThrowIfDisposed()
        Check.notNull "inputs" inputs
        use _ = torch.no_grad ()
        match net.Spec.Head with
        | PerStep ->
            let input = net.SequenceInput("inputs", net.Encoder, inputs)
            let T, B = inputs.shape[0], inputs.shape[1]
            net.CheckLengths "lengths" T B lengths
            let top, _ = net.RunBody(net.Encoder, path, input, net.ZeroState(int B), None, lengths, false)
            { Values = decide net (net.ApplyReadout top); Lengths = lengths; Attention = None }
        | ManyToOne pooling ->
            let input = net.SequenceInput("inputs", net.Encoder, inputs)
            let T, B = inputs.shape[0], inputs.shape[1]
            net.CheckLengths "lengths" T B lengths
            let top, finals = net.RunBody(net.Encoder, path, input, net.ZeroState(int B), None, lengths, false)
            { Values = decide net (net.ApplyReadout(pool net pooling top finals lengths)); Lengths = None; Attention = None }
        | OneToOne ->
            requireVector "inputs" net inputs
            let top, _ = net.RunBody(net.Encoder, path, VectorInput(inputs.unsqueeze 0L), net.ZeroState(int inputs.shape[0]), None, None, false)
            { Values = decide net (net.ApplyReadout top[0L]); Lengths = None; Attention = None }
        | OneToMany vectorAs ->
            requireVector "inputs" net inputs
            let T =
                match steps with
                | Some s when s >= 1 -> int64 s
                | Some s -> Check.fail "steps" $"steps: expected a positive number of steps to generate, but got {s}."
                | None -> Check.fail "steps" "steps: a one-to-many head needs the number of steps to generate."
            { Values = decide net (oneToMany net path vectorAs inputs T false); Lengths = None; Attention = None }
        | EncoderDecoder d -> greedy net path d inputs lengths

    /// Loss, accuracy, exact match and mean absolute error of the network on a batch.
    [<CompiledName("Evaluate")>]
    let evaluate (net: Network) (path: ExecutionPath) (batch: Batch) : Metrics =
        use _ = SignalShield.enter ()
        use _ = torch.no_grad ()
        use scope = torch.NewDisposeScope()
        let l, _ = loss net path batch None None false
        let classification = net.Spec.Loss = CrossEntropy
        let nan = Double.NaN
        let rowsOf (ok: torch.Tensor) = float64Of (ok.to_type(torch.float64).mean())
        match net.Spec.Head with
        | PerStep | OneToMany _ ->
            let steps = match net.Spec.Head with OneToMany _ -> Some(int batch.Targets.shape[0]) | _ -> None
            let lengths = match net.Spec.Head with OneToMany _ -> batch.TargetLengths | _ -> batch.Lengths
            let lengthsIn = match net.Spec.Head with OneToMany _ -> None | _ -> batch.Lengths
            let p = predict net path batch.Inputs lengthsIn steps
            let T, B = batch.Targets.shape[0], batch.Targets.shape[1]
            let mask = stepMask torch.float64 T B lengths // [T; B]
            if classification then
                let right = p.Values.eq(batch.Targets).to_type torch.float64 // [T; B]
                let count = float64Of (mask.sum ())
                let wrongRows = ((1.0 - right) * mask).sum(0L).eq (0.0.ToScalar())
                { Loss = float64Of l; Accuracy = float64Of ((right * mask).sum ()) / count
                  ExactMatch = rowsOf wrongRows; MeanAbsoluteError = nan; Count = int count }
            else
                let err = (p.Values - batch.Targets).abs().mean([| -1L |]).to_type torch.float64 // [T; B]
                let count = float64Of (mask.sum ())
                { Loss = float64Of l; Accuracy = nan; ExactMatch = nan
                  MeanAbsoluteError = float64Of ((err * mask).sum ()) / count; Count = int count }
        | ManyToOne _ | OneToOne ->
            let p = predict net path batch.Inputs batch.Lengths None
            if classification then
                { Loss = float64Of l; Accuracy = rowsOf (p.Values.eq batch.Targets); ExactMatch = nan
                  MeanAbsoluteError = nan; Count = int batch.Targets.shape[0] }
            else
                { Loss = float64Of l; Accuracy = nan; ExactMatch = nan
                  MeanAbsoluteError = float64Of ((p.Values - batch.Targets).abs().mean())
                  Count = int batch.Targets.shape[0] }
        | EncoderDecoder _ ->
            let p = predict net path batch.Inputs batch.Lengths None
            let T, B = batch.Targets.shape[0], batch.Targets.shape[1]
            let targetLengths = defaultArg batch.TargetLengths (Array.create (int B) T)
            let predicted = p.Values.data<int64>().ToArray()
            let P = p.Values.shape[0]
            let targets = batch.Targets.data<int64>().ToArray()
            let mutable rightTokens = 0
            let mutable tokens = 0
            let mutable exact = 0
            for b in 0 .. int B - 1 do
                let n = int targetLengths[b]
                let predictedLength = int p.Lengths.Value[b]
                let mutable all = predictedLength = n
                for t in 0 .. n - 1 do
                    let ok = int64 t < P && predicted[t * int B + b] = targets[t * int B + b]
                    if ok then rightTokens <- rightTokens + 1 else all <- false
                    tokens <- tokens + 1
                if all then exact <- exact + 1
            { Loss = float64Of l; Accuracy = float rightTokens / float tokens; ExactMatch = float exact / float B
              MeanAbsoluteError = nan; Count = int B }
