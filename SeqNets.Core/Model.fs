/// A character-level language model (the lecture's running example): one-hot characters →
/// L recurrent layers → y_t = V h_t + c → softmax over the next character.
/// All parameters live in one flat tensor [θ_1; …; θ_L; w_o] — the single parameter an optimizer
/// sees. Two execution paths share it: the lecture's equations step by step (Step), and
/// libtorch's fused nn.RNN / nn.GRU / nn.LSTM whose weights are views of the same storage (Fused).
/// Legend: T time, B batch, V vocabulary, H hidden, S state.
namespace SeqNets

open System
open TorchSharp
open SeqNets.Cells

/// The recurrent family of a model's layers.
type CellKind =
    | ElmanTanh
    | ElmanRelu
    /// GRU in PyTorch's form (fused path available).
    | GruPyTorch
    /// GRU in the lecture's (Cho 2014) form (step path only).
    | GruLecture
    | Lstm
    /// Multiplicative RNN with F factors (step path only).
    | MultiplicativeRnn of factors: int
    override k.ToString() =
        match k with
        | ElmanTanh -> "elman-tanh"
        | ElmanRelu -> "elman-relu"
        | GruPyTorch -> "gru"
        | GruLecture -> "gru-lecture"
        | Lstm -> "lstm"
        | MultiplicativeRnn f -> $"mrnn-{f}"

[<RequireQualifiedAccess>]
module CellKind =
    /// Parses the names printed by ToString (elman-tanh, elman-relu, gru, gru-lecture, lstm, mrnn-F).
    [<CompiledName("Parse")>]
    let parse (name: string) =
        match (if isNull name then "" else name.Trim().ToLowerInvariant()) with
        | "elman" | "elman-tanh" | "rnn" -> ElmanTanh
        | "elman-relu" -> ElmanRelu
        | "gru" | "gru-pytorch" -> GruPyTorch
        | "gru-lecture" -> GruLecture
        | "lstm" -> Lstm
        | s when s.StartsWith "mrnn-" && fst (Int32.TryParse(s.Substring 5)) && Int32.Parse(s.Substring 5) > 0 -> MultiplicativeRnn(Int32.Parse(s.Substring 5))
        | other -> Check.fail "name" $"name: expected one of elman-tanh, elman-relu, gru, gru-lecture, lstm, mrnn-F, but got '{other}'."

    /// Whether libtorch has a fused kernel with this cell's equations and layout.
    [<CompiledName("HasFusedPath")>]
    let hasFusedPath kind =
        match kind with
        | ElmanTanh | ElmanRelu | GruPyTorch | Lstm -> true
        | GruLecture | MultiplicativeRnn _ -> false

    /// The cell of one layer.
    [<CompiledName("Cell")>]
    let cell kind (inputSize: int) (hiddenSize: int) =
        match kind with
        | ElmanTanh -> Elman.create Tanh inputSize hiddenSize
        | ElmanRelu -> Elman.create Relu inputSize hiddenSize
        | GruPyTorch -> Gru.create PyTorch inputSize hiddenSize
        | GruLecture -> Gru.create Lecture inputSize hiddenSize
        | Lstm -> Cells.Lstm.create inputSize hiddenSize
        | MultiplicativeRnn f -> Cells.MultiplicativeRnn.create inputSize hiddenSize f

/// The shape of a character model.
type ModelConfig =
    { Kind: CellKind
      /// V: characters in the vocabulary (input and output width).
      VocabularySize: int
      /// H: hidden units per layer.
      HiddenSize: int
      /// L: stacked layers.
      Layers: int }

/// How a model runs its recurrence.
type ExecutionPath =
    /// libtorch's fused nn.RNN / nn.GRU / nn.LSTM over views of the model's parameters.
    | Fused
    /// The cells' equations step by step, through Recurrence's transition functions.
    | Step

/// A character-level language model holding native memory (dispose it).
[<Sealed>]
type CharModel(config: ModelConfig, dtype: torch.ScalarType, seed: uint64) =
    do
        Native.ensure ()
        Check.positive "VocabularySize" config.VocabularySize
        Check.positive "HiddenSize" config.HiddenSize
        Check.positive "Layers" config.Layers
        if dtype <> torch.float32 && dtype <> torch.float64 then
            Check.fail "dtype" $"dtype: expected float32 or float64, but got {dtype}."
    let V, H, L = config.VocabularySize, config.HiddenSize, config.Layers
    let cells = Array.init L (fun l -> CellKind.cell config.Kind (if l = 0 then V else H) H)
    let output = OutputLayer.create H V
    let cellCounts = cells |> Array.map (fun c -> int64 c.ParameterCount)
    let cellOffsets = Array.scan (+) 0L cellCounts
    let total = cellOffsets[L] + int64 output.ParameterCount
    let parameters =
        use generator = new torch.Generator(seed)
        use _ = torch.no_grad ()
        let parts =
            [| for c in cells -> Cell.initParameters c dtype generator
               yield OutputLayer.initParameters output dtype generator |]
        torch.nn.Parameter(torch.cat(parts, 0L).detach(), true)
    let fused : torch.nn.Module option =
        if not (CellKind.hasFusedPath config.Kind) then None
        else
            let d = Nullable dtype
            let m: torch.nn.Module =
                match config.Kind with
                | ElmanTanh -> torch.nn.RNN(int64 V, int64 H, int64 L, nonLinearity = torch.nn.NonLinearities.Tanh, dtype = d)
                | ElmanRelu -> torch.nn.RNN(int64 V, int64 H, int64 L, nonLinearity = torch.nn.NonLinearities.ReLU, dtype = d)
                | GruPyTorch -> torch.nn.GRU(int64 V, int64 H, int64 L, dtype = d)
                | _ -> torch.nn.LSTM(int64 V, int64 H, int64 L, dtype = d)
            // Point every module weight at its block of the flat parameters (layer-major, then
            // weight_ih, weight_hh, bias_ih, bias_hh — the cells' own layout).
            use _ = torch.no_grad ()
            let mutable offset = 0L
            for struct (_, p) in m.named_parameters () do
                let n = p.numel ()
                p.set_ (parameters.detach().narrow(0L, offset, n).view p.shape) |> ignore
                offset <- offset + n
            if offset <> cellOffsets[L] then
                failwith $"fused module has {offset} parameters, the cells {cellOffsets[L]}"
            Some m
    let mutable disposed = false

    /// The model's shape.
    member _.Config = config
    /// float32 or float64.
    member _.DType = dtype
    /// The cell of each layer.
    member _.Cells = cells
    /// The output layer y = V h + c.
    member _.Output = output
    /// All parameters, one flat leaf tensor [θ_1; …; θ_L; w_o] (requires grad).
    member _.Parameters: Modules.Parameter = parameters
    /// Number of parameters.
    member _.ParameterCount = total
    /// θ_l, a view of Parameters.
    member _.CellParameters(layer: int) = parameters.narrow(0L, cellOffsets[layer], cellCounts[layer])
    /// w_o, a view of Parameters.
    member _.OutputParameters = parameters.narrow(0L, cellOffsets[L], int64 output.ParameterCount)
    /// Whether the fused path is available for this cell kind.
    member _.HasFusedPath = fused.IsSome
    /// The fastest available path.
    member _.DefaultPath = if fused.IsSome then Fused else Step
    /// s_0 = 0 for every layer: L tensors [B; S].
    member _.ZeroState(batch: int) : torch.Tensor[] =
        cells |> Array.map (fun c -> torch.zeros([| int64 batch; int64 c.StateSize |], dtype = dtype))

    /// One-hot rows of ids: [..] int64 → [..; V].
    member _.OneHot(ids: torch.Tensor) = torch.nn.functional.one_hot(ids, int64 V).to_type dtype

    /// Runs the recurrence over ids [T; B] from the given layer states and returns the logits
    /// [T; B; V] and the final states. boundaryWeights, when given, holds T weights w_t applied to
    /// the gradient flowing through the state into step t: 0 cuts it (truncation), 1 passes it,
    /// other values scale it (randomized truncation's compensation). The fused path supports only
    /// weights 0 and 1.
    member m.Forward(path: ExecutionPath, ids: torch.Tensor, states: torch.Tensor[], ?boundaryWeights: float[]) : torch.Tensor * torch.Tensor[] =
        use _ = SignalShield.enter ()
        if disposed then raise (ObjectDisposedException "CharModel")
        Check.dims "ids" "[T; B]" 2 ids
        Check.nonEmptyTime "ids" ids
        if states.Length <> L then Check.fail "states" $"states: expected {L} layer states, but got {states.Length}."
        let T = int ids.shape[0]
        let weights = defaultArg boundaryWeights (Array.create T 1.0)
        if weights.Length <> T then Check.fail "boundaryWeights" $"boundaryWeights: expected T = {T} weights, but got {weights.Length}."
        let x = lazy (m.OneHot ids) // [T; B; V]
        match path with
        | Step ->
            let scale (w: float) (s: torch.Tensor) =
                if w = 1.0 then s
                elif w = 0.0 then s.detach ()
                else let d = s.detach () in d + (s - d) * w
            // Layer inputs: ids for the first layer, the previous layer's outputs [T; B; H] after.
            let mutable dense: torch.Tensor option = None
            let finals =
                Array.init L (fun l ->
                    let cell, theta = cells[l], m.CellParameters l
                    let mutable s = states[l]
                    let outs = Array.zeroCreate T
                    match cell.InputProjection, cell.ProjectedTransition with
                    | Some project, Some projected ->
                        // The input half of the pre-activations for every step at once: for one-hot
                        // characters a lookup in the projection of the V unit vectors.
                        let px =
                            match dense with
                            | None ->
                                let table = project theta (torch.eye(int64 V, dtype = dtype)) // [V; G]
                                table.index_select(0L, ids.reshape(-1L)).view(int64 T, ids.shape[1], -1L) // [T; B; G]
                            | Some d -> project theta d // [T; B; G]
                        let pxs = px.unbind 0L // T × [B; G]; one backward for all
                        let step = projected theta // views of θ once for the whole unroll
                        for t in 0 .. T - 1 do
                            s <- step pxs[t] (scale weights[t] s) // [B; S]
                            outs[t] <- s
                    | _ ->
                        let input = (match dense with Some d -> d | None -> x.Value).unbind 0L
                        let step = cell.Transition theta
                        for t in 0 .. T - 1 do
                            s <- step input[t] (scale weights[t] s) // [B; S]
                            outs[t] <- s
                    // The outputs h_t, read once from all states: [T; B; H].
                    dense <- Some(Cell.output cell (torch.stack(outs, 0L)))
                    s)
            let input = dense.Value
            OutputLayer.apply output m.OutputParameters input, finals
        | Fused ->
            let md =
                match fused with
                | Some md -> md
                | None -> Check.fail "path" $"path: the fused path needs a PyTorch-form cell (elman, gru, lstm), but this model is {config.Kind}."
            if weights |> Array.exists (fun w -> w <> 0.0 && w <> 1.0) then
                Check.fail "boundaryWeights" "boundaryWeights: the fused path supports only 0 (cut) and 1 (pass); use the step path for randomized truncation."
            // Segments between cuts run as one fused call each.
            let cuts = [ for t in 1 .. T - 1 do if weights[t] = 0.0 then yield t ] @ [ T ]
            let mutable start = 0
            let mutable current = states |> Array.map (fun s -> if weights[0] = 0.0 then s.detach () else s)
            let outs = ResizeArray()
            for stop in cuts do
                let seg = x.Value.narrow(0L, int64 start, int64 (stop - start))
                let hs, next =
                    match config.Kind with
                    | Lstm ->
                        let h0 = torch.stack(current |> Array.map (fun s -> s.narrow(1L, 0L, int64 H)), 0L) // [L; B; H]
                        let c0 = torch.stack(current |> Array.map (fun s -> s.narrow(1L, int64 H, int64 H)), 0L)
                        let struct (y, h, c) = (md :?> Modules.LSTM).forward(seg, Nullable<struct (torch.Tensor * torch.Tensor)>(struct (h0, c0)))
                        y, Array.init L (fun l -> torch.cat([| h[l]; c[l] |], 1L))
                    | GruPyTorch ->
                        let struct (y, h) = (md :?> Modules.GRU).forward(seg, torch.stack(current, 0L))
                        y, Array.init L (fun l -> h[l])
                    | _ ->
                        let struct (y, h) = (md :?> Modules.RNN).forward(seg, torch.stack(current, 0L))
                        y, Array.init L (fun l -> h[l])
                outs.Add hs
                current <- if stop < T then next |> Array.map _.detach() else next
                start <- stop
            OutputLayer.apply output m.OutputParameters (torch.cat(outs.ToArray(), 0L)), current

    /// After a backward pass on the fused path, the gradients sit on the module's own parameter
    /// tensors; this copies them into Parameters.grad and clears them. Call it only after a fused
    /// backward pass: on the step path the gradient is already in Parameters.grad.
    member _.CollectGradients() =
        match fused with
        | None -> ()
        | Some md ->
            use _ = torch.no_grad ()
            if isNull parameters.grad || parameters.grad.IsInvalid then
                parameters.grad <- torch.zeros_like parameters
            let mutable offset = 0L
            for struct (_, p) in md.named_parameters () do
                let n = p.numel ()
                let g = p.grad
                if not (isNull g) && not g.IsInvalid then
                    parameters.grad.narrow(0L, offset, n).copy_ (g.reshape -1L) |> ignore
                    g.zero_ () |> ignore
                else
                    parameters.grad.narrow(0L, offset, n).zero_ () |> ignore
                offset <- offset + n

    interface IDisposable with
        member _.Dispose() =
            if not disposed then
                disposed <- true
                fused |> Option.iter (fun md -> md.Dispose())
                parameters.Dispose()
