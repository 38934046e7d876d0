/// A network of layers (Layers.fs) with its parameters: one flat leaf tensor θ with a named view per
/// layer, and two execution paths over the same θ:
///   Step   the cells' own equations, one unroll (Recurrence.run) per layer and direction;
///   Fused  libtorch's nn.RNN / nn.GRU / nn.LSTM (several layers, bidirectional, packed sequences)
///          whose weights are views of θ, where the layers match such a module;
///   Derived  the step path's unroll with the engine on the derivation (Engine.fs) in place of the
///          cell's transition and autograd's tape: the same layers, directions, masks and gradient
///          weights, the reverse sweep built from the cells' hand-derived Jacobians.
/// Variable-length batches carry lengths per row: a row's state stops at its own last element, the
/// backward direction starts there, padded outputs are zero, and losses and metrics skip padding,
/// so a padded batch gives exactly what running each row alone gives.
/// Legend: T time, B batch, V vocabulary, I input, W a layer's output width, H hidden, S state,
/// G pre-activation rows, O outputs, D directions, L layers.
namespace SeqNets

open System
open System.Collections.Generic
open TorchSharp

/// How a network runs its recurrence.
type ExecutionPath =
    /// libtorch's fused nn.RNN / nn.GRU / nn.LSTM over views of the network's parameters.
    | Fused
    /// The cells' equations step by step, through the one unroll.
    | Step
    /// The one unroll run by the engine on the derivation (Engine.unroll): the built-in cells'
    /// equations forward, the reverse sweep of their hand-derived Jacobians backward (stacked and
    /// bidirectional layers, variable lengths, truncated and randomized gradient weights). Only for
    /// networks whose every recurrent layer is a built-in cell (Network.HasDerivedPath); a network
    /// with a user-defined cell is refused with an ArgumentException. In training (training = true)
    /// the backward pass writes its gradients over the stored gates (Engine.unrollOnce), so it runs
    /// once per forward pass; a second backward pass through the same graph gives NaN gradients.
    | Derived

/// One batch of examples for a network's head. Shapes by head:
///   PerStep          Inputs ids [T; B] or vectors [T; B; I]   Targets [T; B] classes or [T; B; O] values
///   ManyToOne        Inputs as PerStep                        Targets [B] or [B; O]
///   OneToOne         Inputs [B; I]                            Targets [B] or [B; O]
///   OneToMany        Inputs [B; I]                            Targets [T; B] or [T; B; O]
///   EncoderDecoder   Inputs source ids [S; B] or vectors      Targets target ids [T; B], each row ending in Eos
/// Lengths are the real steps of each row of the input sequence, TargetLengths those of the target
/// sequence (None: every step is real).
[<NoComparison; NoEquality>]
type Batch =
    { Inputs: torch.Tensor
      Lengths: int64[] option
      Targets: torch.Tensor
      TargetLengths: int64[] option }

/// A network's quality on a batch.
type Metrics =
    { /// The head's loss (mean over real steps or rows).
      Loss: float
      /// Share of correct predictions: per real step (sequence heads) or per row; NaN for regression.
      Accuracy: float
      /// Share of rows whose whole predicted sequence is right (sequence outputs); NaN otherwise.
      ExactMatch: float
      /// Mean absolute error of a regression; NaN for classification.
      MeanAbsoluteError: float
      /// Rows (or real steps) counted.
      Count: int }

/// What a network predicts for a batch: classes (int64) or values, and for generated sequences
/// the length of each row (up to and with its Eos).
[<NoComparison; NoEquality>]
type Prediction =
    { Values: torch.Tensor
      Lengths: int64[] option
      /// For a decoder with attention: the weights over the source at every decoded step, [T; B; S].
      Attention: torch.Tensor option }

/// One direction of one recurrent layer: its cell and where its θ sits.
type internal Unit =
    { Cell: Cell
      Layer: int
      Reverse: bool
      Offset: int64 }

/// Input layer + recurrent layers: the body of every network, and a decoder's own.
type internal Body =
    { Input: InputLayer
      /// Offset of the input layer's blocks in θ.
      InputOffset: int64
      Layers: RecurrentLayer[]
      /// Per layer, its one or two directions.
      Units: Unit[][]
      Dropout: float
      /// The prefix of the body's blocks in the network's layout ("" or "decoder.").
      Prefix: string
      /// The fused module over the same θ, when the layers match one.
      Fused: (torch.nn.Module * (Modules.Parameter * int64)[]) option
      /// A decoder with attention: its layers form one attention decoder, the body's only unit.
      Attention: AttentionDecoder option }
    member b.AllUnits = Array.concat b.Units

/// What a body reads.
[<NoComparison; NoEquality>]
type internal BodyInput =
    /// Token ids [T; B].
    | TokenInput of torch.Tensor
    /// Vectors [T; B; I] (before the input layer).
    | VectorInput of torch.Tensor
    /// T zero steps of the input layer's width for B rows (one-to-many from an initial state).
    | ZeroInput of steps: int64 * batch: int64

/// A network holding native memory (dispose it).
[<Sealed>]
type Network(spec: NetworkSpec, dtype: torch.ScalarType, seed: uint64) =
    do
        Native.ensure ()
        NetworkSpec.validate spec
        if dtype <> torch.float32 && dtype <> torch.float64 then
            Check.fail "dtype" $"dtype: expected float32 or float64, but got {dtype}."
        match spec.Head with
        | OneToMany _ when spec.Layers |> List.exists (fun l -> l.Directions = 2) ->
            Check.fail "spec" "spec: a one-to-many head generates its sequence left to right, so its layers cannot be bidirectional."
        | _ -> ()

    // The flat layout: [input; layers (forward, reverse); bridge; decoder input; decoder layers; readout].
    let blocks = ResizeArray<string * int64 list>()
    let mutable total = 0L
    let add (prefix: string) (bs: (string * int64 list) list) =
        let start = total
        for name, shape in bs do
            blocks.Add(prefix + name, shape)
            total <- total + List.fold (*) 1L shape
        start

    let makeBody (prefix: string) (input: InputLayer) (layers: RecurrentLayer list) (dropout: float) (attention: (AttentionStyle * Score) option) =
        let inputOffset = add (prefix + "input.") (InputLayer.blocks input)
        let layers = Array.ofList layers
        match attention with
        | Some(style, score) ->
            let inner = if layers.Length = 1 then layers[0].Cell else Stack.create [ for l in layers -> l.Cell ]
            let E = (List.last spec.Layers).OutputWidth
            let ad = Attention.decoder style score (InputLayer.width input) E (fun _ -> inner)
            let offset = add prefix [ for b in ad.Layout.Blocks -> b.Name, List.ofArray b.Shape ]
            // A template bound to an empty memory: the unit's layout, state and parameter count.
            let template = Attention.bind ad (torch.zeros([| 1L; 1L; int64 E |], dtype = dtype)) None
            { Input = input; InputOffset = inputOffset; Layers = layers; Dropout = dropout; Prefix = prefix; Fused = None
              Units = [| [| { Cell = template; Layer = 0; Reverse = false; Offset = offset } |] |]; Attention = Some ad }
        | None ->
        let units =
            layers |> Array.mapi (fun k layer ->
                [| for reverse in (if layer.Directions = 2 then [ false; true ] else [ false ]) ->
                       let name = if reverse then $"{prefix}l{k}.reverse." else $"{prefix}l{k}."
                       let offset = add name [ for b in layer.Cell.Layout.Blocks -> b.Name, List.ofArray b.Shape ]
                       { Cell = layer.Cell; Layer = k; Reverse = reverse; Offset = offset } |])
        { Input = input; InputOffset = inputOffset; Layers = layers; Units = units; Dropout = dropout; Prefix = prefix; Fused = None; Attention = None }

    let encoder = makeBody "" spec.Input spec.Layers spec.Dropout None
    // One-to-many from an initial state: s_0 = tanh(W v + b) per unit. Encoder–decoder, dense bridge:
    // decoder layer k starts from tanh(W_k z + b_k), z the top encoder layer's final states.
    let bridgeIn =
        match spec.Head with
        | OneToMany InitialState -> InputLayer.width spec.Input
        | EncoderDecoder d when d.Bridge = Projection -> (Array.last encoder.Units) |> Array.sumBy (fun u -> u.Cell.StateSize)
        | _ -> 0
    let bridgeTargets =
        match spec.Head with
        | OneToMany InitialState -> encoder.AllUnits |> Array.map (fun u -> u.Cell.StateSize)
        | EncoderDecoder d when d.Bridge = Projection -> d.Layers |> List.map (fun l -> l.Cell.StateSize) |> Array.ofList
        | _ -> [||]
    let bridgeOffsets =
        bridgeTargets |> Array.mapi (fun k S -> add $"bridge.{k}." [ "weight", [ int64 S; int64 bridgeIn ]; "bias", [ int64 S ] ])
    let decoder =
        match spec.Head with
        | EncoderDecoder d -> Some(makeBody "decoder." d.Input d.Layers 0.0 d.Attention)
        | _ -> None
    let readout = OutputLayer.create (NetworkSpec.topWidth spec) spec.Output
    let readoutOffset = add "readout." [ for b in readout.Layout.Blocks -> b.Name, List.ofArray b.Shape ]
    let layout = ParameterLayout(List.ofSeq blocks)
    do Memory.check $"a network of {total:N0} parameters ({dtype})" (Memory.modelBytes dtype total)

    let parameters =
        use generator = new torch.Generator(seed)
        use _ = torch.no_grad ()
        let uniform (n: int64) (a: float) = (torch.rand([| n |], dtype = dtype, generator = generator) * 2.0 - 1.0) * a
        let inputPart (input: InputLayer) =
            match input with
            | Embedding(v, e) -> [ torch.randn([| int64 v * int64 e |], dtype = dtype, generator = generator) ] // N(0, 1), as nn.Embedding
            | InputLayer.Dense(i, e) -> [ uniform (int64 e * int64 i + int64 e) (1.0 / sqrt (float i)) ] // as nn.Linear
            | _ -> []
        let bodyParts (b: Body) =
            match b.Attention with
            | Some ad -> inputPart b.Input @ [ Attention.initParameters ad dtype generator ]
            | None -> inputPart b.Input @ [ for u in b.AllUnits -> Cell.initParameters u.Cell dtype generator ]
        let parts =
            bodyParts encoder
            @ [ for S in bridgeTargets -> uniform (int64 S * int64 bridgeIn + int64 S) (1.0 / sqrt (float bridgeIn)) ]
            @ (match decoder with Some d -> bodyParts d | None -> [])
            @ [ OutputLayer.initParameters readout dtype generator ]
        let flat = torch.cat(Array.ofList parts, 0L)
        if flat.numel () <> total then failwith $"initialised {flat.numel ()} parameters for a layout of {total}"
        torch.nn.Parameter(flat.detach (), true)

    /// The fused module for a body whose layers match one: same PyTorch-form family and hidden
    /// size in every layer, all one direction or all both (concatenated), nothing else.
    let fusedFor (b: Body) =
      if b.Attention.IsSome then None
      else
        let kinds = b.Layers |> Array.map (fun l -> CellKind.ofCell l.Cell)
        let first = kinds[0]
        let H = b.Layers[0].Cell.HiddenSize
        let D = b.Layers[0].Directions
        let matches =
            first.IsSome && CellKind.hasFusedPath first.Value
            && kinds |> Array.forall (fun k -> k = first)
            && b.Layers |> Array.forall (fun l -> l.Cell.HiddenSize = H && l.Directions = D && l.Direction <> Bidirectional Sum)
        if not matches then None
        else
            let I, L, d = int64 (InputLayer.width b.Input), int64 b.Layers.Length, Nullable dtype
            let bi = D = 2
            let m: torch.nn.Module =
                match first.Value with
                | ElmanTanh -> torch.nn.RNN(I, int64 H, L, nonLinearity = torch.nn.NonLinearities.Tanh, dropout = b.Dropout, bidirectional = bi, dtype = d)
                | ElmanRelu -> torch.nn.RNN(I, int64 H, L, nonLinearity = torch.nn.NonLinearities.ReLU, dropout = b.Dropout, bidirectional = bi, dtype = d)
                | GruPyTorch -> torch.nn.GRU(I, int64 H, L, dropout = b.Dropout, bidirectional = bi, dtype = d)
                | _ -> torch.nn.LSTM(I, int64 H, L, dropout = b.Dropout, bidirectional = bi, dtype = d)
            // Point every module weight (weight_ih_l0, …, bias_hh_l1_reverse) at its block of θ.
            use _ = torch.no_grad ()
            let units = b.AllUnits |> Array.map (fun u -> ((u.Layer, u.Reverse), u)) |> dict
            let views =
                [| for struct (name, p) in m.named_parameters () ->
                       let reverse = name.EndsWith "_reverse"
                       let core = if reverse then name.Substring(0, name.Length - 8) else name
                       let cut = core.LastIndexOf "_l"
                       let block, layer = core.Substring(0, cut), int (core.Substring(cut + 2))
                       let u = units[(layer, reverse)]
                       let blk = u.Cell.Layout.Block block
                       let offset = u.Offset + blk.Offset
                       if blk.Shape <> p.shape then failwith $"fused module's {name} has shape {Check.shapeText p}, the cell's block {blk.Shape}"
                       p.set_ (parameters.detach().narrow(0L, offset, blk.Count).view p.shape) |> ignore
                       p, offset |]
            Some(m, views)

    let encoder = { encoder with Fused = fusedFor encoder }
    let decoder = decoder |> Option.map (fun d -> { d with Fused = fusedFor d })
    let mutable disposed = false
    // Dropout draws from a generator of the network's own, reseeded by the trainer at every step
    // from its checkpointed random state, so that a resumed run drops the same units.
    let dropoutGenerator = new torch.Generator(seed ^^^ 0x5DEECE66DUL)

    /// Inverted dropout with the network's generator: x ⊙ m / (1 − p), m_i ~ Bernoulli(1 − p).
    let dropout (p: float) (x: torch.Tensor) =
        let keep = torch.rand(x.shape, dtype = x.dtype, generator = dropoutGenerator).ge(p.ToScalar()).to_type x.dtype
        x * keep * (1.0 / (1.0 - p))

    let theta (u: Unit) = parameters.narrow(0L, u.Offset, int64 u.Cell.ParameterCount)

    /// The mask [T; B] (dtype) of real steps, and the index [T; B] that reverses each row's real
    /// steps in place (t ↦ len − 1 − t for t < len, padding fixed): its own inverse.
    let lengthsTensors (T: int64) (B: int64) (lengths: int64[] option) =
        match lengths with
        | None -> None, lazy (torch.arange(T - 1L, -1L, -1L).unsqueeze(1L).expand(T, B))
        | Some ls ->
            let len = torch.tensor(ls).unsqueeze 0L // [1; B]
            let t = torch.arange(T).unsqueeze 1L // [T; 1]
            let real = t.lt len // [T; B]
            let rev = torch.where(real, len - 1L - t, t.expand(T, B)) // [T; B]
            Some(real.to_type dtype), lazy rev

    let checkLengths (argument: string) (T: int64) (B: int64) (lengths: int64[] option) =
        match lengths with
        | None -> ()
        | Some ls ->
            if int64 ls.Length <> B then
                Check.fail argument $"{argument}: expected one length per row (B = {B}), but got {ls.Length}."
            ls |> Array.iteri (fun b l ->
                if l < 1L || l > T then
                    Check.fail argument $"{argument}: expected every length in [1, T = {T}], but row {b} has {l}.")

    /// The input layer applied: [T; B; I] → [T; B; E] (vectors, dense) or ids [T; B] → [T; B; E].
    let applyInput (b: Body) (input: BodyInput) =
        let view name = layout.View(parameters, name)
        let prefix = b.Prefix
        match input, b.Input with
        | TokenInput ids, OneHot v -> torch.nn.functional.one_hot(ids, int64 v).to_type dtype
        | TokenInput ids, Embedding _ -> (view (prefix + "input.weight")).index_select(0L, ids.reshape(-1L)).view(ids.shape[0], ids.shape[1], -1L)
        | VectorInput x, InputLayer.Vectors _ -> x
        | VectorInput x, InputLayer.Dense _ -> x.matmulChecked((view (prefix + "input.weight")).t ()) + view (prefix + "input.bias")
        | ZeroInput(steps, rows), _ -> torch.zeros([| steps; rows; int64 (InputLayer.width b.Input) |], dtype = dtype)
        | _ -> Check.fail "inputs" $"inputs: the input layer is {InputLayer.describe b.Input}, which does not read these inputs."

    /// The step path of a body: each layer and direction one unroll. Returns the top layer's
    /// outputs [T; B; W] and every unit's final state.
    /// On the derived path (derived = true) each unit's unroll is Engine's over the same px.
    let runStep (b: Body) (input: BodyInput) (states: torch.Tensor[]) (weights: float[] option)
                (mask: torch.Tensor option) (reverseIndex: Lazy<torch.Tensor>) (training: bool) (derived: bool) =
        let tokens = match input, b.Input with TokenInput ids, OneHot _ -> Some ids | _ -> None
        let x0 = lazy (applyInput b input)
        let finals = Array.zeroCreate (b.AllUnits.Length)
        let mutable below: torch.Tensor option = None
        let mutable index = 0
        for k in 0 .. b.Layers.Length - 1 do
            let outs =
                [| for u in b.Units[k] ->
                       let cell, th = u.Cell, theta u
                       let reversed (x: torch.Tensor) =
                           if not u.Reverse then x
                           else
                               let r = reverseIndex.Value
                               if x.dim () = 2L then x.gather(0L, r)
                               else x.gather(0L, r.unsqueeze(-1L).expand(x.shape[0], x.shape[1], x.shape[2]))
                       let projected, inputs =
                           match cell.InputProjection, cell.ProjectedTransition, below, tokens with
                           | Some project, Some _, None, Some ids ->
                               // One-hot tokens: the input half of the pre-activations is a row of
                               // the projection of the V unit vectors, looked up for every step at once.
                               let V = match b.Input with OneHot v -> int64 v | _ -> 0L
                               let table = project th (torch.eye(V, dtype = dtype)) // [V; G]
                               let ids = reversed ids
                               true, table.index_select(0L, ids.reshape(-1L)).view(ids.shape[0], ids.shape[1], -1L) // [T; B; G]
                           | Some project, Some _, _, _ -> true, project th (reversed (defaultArg below x0.Value)) // [T; B; G]
                           | _ -> false, reversed (defaultArg below x0.Value) // [T; B; I]
                       let w = if u.Reverse then None else weights
                       let hs =
                           if derived then
                               // The same unroll, run by the engine: px [T; B; G] in, hs and s_T out.
                               let T = int inputs.shape[0]
                               let unroll = if training then Engine.unrollOnce else Engine.unroll
                               let hs, sT = unroll cell th inputs states[index] (defaultArg w (Array.create T 1.0)) mask // [T; B; H], [B; S]
                               finals[index] <- sT
                               hs
                           else
                               let ss = Recurrence.run cell th projected inputs states[index] w mask
                               finals[index] <- ss[ss.Length - 1]
                               Cell.output cell (torch.stack(ss, 0L)) // [T; B; H]
                       index <- index + 1
                       let hs = match mask with Some m -> hs * m.unsqueeze -1L | None -> hs // padded outputs are 0
                       if u.Reverse then reversed hs else hs |]
            let merged =
                match b.Layers[k].Direction with
                | Forward -> outs[0]
                | Bidirectional Concat -> torch.cat(outs, -1L) // [T; B; 2H]
                | Bidirectional Sum -> outs[0] + outs[1] // [T; B; H]
            below <-
                Some(if b.Dropout > 0.0 && training && k < b.Layers.Length - 1 then dropout b.Dropout merged else merged)
        below.Value, finals

    /// The fused path of a body: one libtorch call (per segment between gradient cuts).
    let runFused (b: Body) (input: BodyInput) (states: torch.Tensor[]) (weights: float[] option)
                 (lengths: int64[] option) (training: bool) =
        let md, _ =
            match b.Fused with
            | Some f -> f
            | None -> Check.fail "path" "path: the fused path needs layers that match one libtorch module (nn.RNN, nn.GRU or nn.LSTM: the same PyTorch-form cell and hidden size in every layer, one direction or both concatenated), but this network's do not; use the step path."
        let x = applyInput b input // [T; B; I]
        let T = int x.shape[0]
        let H = int64 b.Layers[0].Cell.HiddenSize
        let isLstm = b.Layers[0].Cell.StateSize = 2 * b.Layers[0].Cell.HiddenSize
        if b.Dropout > 0.0 then
            md.train training
            // libtorch's fused dropout draws from the global generator: seed it from the network's.
            if training then
                let draw = torch.randint(Int64.MaxValue, [| 1L |], generator = dropoutGenerator)
                torch.random.manual_seed (draw.item<int64> ()) |> ignore
        let weights = defaultArg weights (Array.create T 1.0)
        // Segments between cuts run as one fused call each.
        let cuts = [ for t in 1 .. T - 1 do if weights[t] = 0.0 then yield t ] @ [ T ]
        let mutable start = 0
        let mutable current = states |> Array.map (fun s -> if weights[0] = 0.0 then s.detach () else s)
        let outs = ResizeArray()
        let call (seg: torch.Tensor) (packedLengths: torch.Tensor option) =
            let hOf (s: torch.Tensor) = if isLstm then s.narrow(1L, 0L, H) else s
            let h0 = torch.stack(current |> Array.map hOf, 0L) // [L·D; B; H]
            let unpack (p: torch.nn.utils.rnn.PackedSequence) =
                let struct (y, _) = torch.nn.utils.rnn.pad_packed_sequence(p, false, 0.0, Nullable(seg.shape[0]))
                y
            match md with
            | :? Modules.LSTM as lstm ->
                let c0 = torch.stack(current |> Array.map (fun s -> s.narrow(1L, H, H)), 0L)
                let hc = Nullable<struct (torch.Tensor * torch.Tensor)>(struct (h0, c0))
                let y, h, c =
                    match packedLengths with
                    | Some ls ->
                        let struct (p, h, c) = lstm.call(torch.nn.utils.rnn.pack_padded_sequence(seg, ls, false, false), hc)
                        unpack p, h, c
                    | None -> let struct (y, h, c) = lstm.forward(seg, hc) in y, h, c
                y, Array.init current.Length (fun k -> torch.cat([| h[k]; c[k] |], 1L))
            | :? Modules.GRU as gru ->
                let y, h =
                    match packedLengths with
                    | Some ls -> let struct (p, h) = gru.call(torch.nn.utils.rnn.pack_padded_sequence(seg, ls, false, false), h0) in unpack p, h
                    | None -> let struct (y, h) = gru.forward(seg, h0) in y, h
                y, Array.init current.Length (fun k -> h[k])
            | _ ->
                let rnn = md :?> Modules.RNN
                let y, h =
                    match packedLengths with
                    | Some ls -> let struct (p, h) = rnn.call(torch.nn.utils.rnn.pack_padded_sequence(seg, ls, false, false), h0) in unpack p, h
                    | None -> let struct (y, h) = rnn.forward(seg, h0) in y, h
                y, Array.init current.Length (fun k -> h[k])
        match lengths with
        | Some ls ->
            if cuts.Length > 1 then
                Check.fail "weights" "weights: the fused path cannot cut the gradient inside a padded batch; use the step path."
            let y, finals = call x (Some(torch.tensor ls))
            y, finals
        | None ->
            for stop in cuts do
                let seg = x.narrow(0L, int64 start, int64 (stop - start))
                let hs, next = call seg None
                outs.Add hs
                current <- if stop < T then next |> Array.map _.detach() else next
                start <- stop
            torch.cat(outs.ToArray(), 0L), current

    /// The spec.
    member _.Spec = spec
    /// float32 or float64.
    member _.DType = dtype
    /// Every parameter, one flat leaf tensor (requires grad), laid out as Layout says.
    member _.Parameters: Modules.Parameter = parameters
    /// P: the number of parameters.
    member _.ParameterCount = total
    /// The named blocks of Parameters: input.weight, l0.weight_ih, l0.reverse.weight_hh, bridge.0.weight,
    /// decoder.l0.weight_ih, readout.weight, readout.bias, …
    member _.Layout = layout
    /// The view of Parameters named name (see Layout).
    member _.View(name: string) = layout.View(parameters, name)
    /// θ of layer k's cell (its reverse direction's when reverse), a view of Parameters.
    member _.LayerParameters(layer: int, ?reverse: bool) =
        let reverse = defaultArg reverse false
        if layer < 0 || layer >= encoder.Units.Length then
            Check.fail "layer" $"layer: expected 0 <= layer < {encoder.Units.Length}, but got {layer}."
        match encoder.Units[layer] |> Array.tryFind (fun u -> u.Reverse = reverse) with
        | Some u -> theta u
        | None -> Check.fail "reverse" $"reverse: layer {layer} reads one direction only."
    /// The readout y = V h + c.
    member _.Readout = readout
    /// The readout's parameters [V; c] flattened, a view of Parameters.
    member _.ReadoutParameters = parameters.narrow(0L, readoutOffset, int64 readout.ParameterCount)
    /// The cells of the layers' directions, in the order of the states (layer 0 forward, layer 0
    /// reverse, layer 1 forward, …).
    member _.Cells = encoder.AllUnits |> Array.map _.Cell
    /// Whether the fused path is available.
    member _.HasFusedPath = encoder.Fused.IsSome && (match decoder with Some d -> d.Fused.IsSome || d.Attention.IsSome | None -> true)
    /// Whether the derived path is available: every recurrent layer (the decoder's too) is a built-in
    /// cell the engine runs, and no decoder reads with attention.
    member _.HasDerivedPath =
        (encoder :: Option.toList decoder)
        |> List.forall (fun b -> b.Attention.IsNone && b.AllUnits |> Array.forall (fun u -> Engine.supports u.Cell))
    /// The fastest available path.
    member n.DefaultPath = if n.HasFusedPath then Fused else Step
    /// Whether any layer reads both ways.
    member _.IsBidirectional = spec.Layers |> List.exists (fun l -> l.Directions = 2)
    /// s_0 = 0 for every layer and direction: tensors [B; S] in the order of Cells.
    member _.ZeroState(batch: int) : torch.Tensor[] =
        encoder.AllUnits |> Array.map (fun u -> torch.zeros([| int64 batch; int64 u.Cell.StateSize |], dtype = dtype))

    member internal _.Encoder = encoder
    member internal _.ApplyInput(b: Body, input: BodyInput) = applyInput b input
    member internal _.DropoutGenerator = dropoutGenerator
    member internal _.UnitParameters(u: Unit) = theta u
    member internal _.Decoder = decoder
    member internal _.BridgeOffsets = bridgeOffsets
    member internal _.BridgeTargets = bridgeTargets
    member internal _.BridgeInput = bridgeIn
    member internal _.ThrowIfDisposed() = if disposed then raise (ObjectDisposedException "Network")
    member internal _.CheckLengths argument T B lengths = checkLengths argument T B lengths

    /// Runs a body over its input from the given unit states: (top outputs [T; B; W], final states).
    member internal n.RunBody(b: Body, path: ExecutionPath, input: BodyInput, states: torch.Tensor[],
                              weights: float[] option, lengths: int64[] option, training: bool) =
        let T, B =
            match input with
            | TokenInput ids -> ids.shape[0], ids.shape[1]
            | VectorInput x -> x.shape[0], x.shape[1]
            | ZeroInput(t, b) -> t, b
        if states.Length <> b.AllUnits.Length then
            Check.fail "states" $"states: expected {b.AllUnits.Length} states (one per layer and direction), but got {states.Length}."
        states |> Array.iteri (fun k s ->
            Check.notNull $"states[{k}]" s
            let S = int64 b.AllUnits[k].Cell.StateSize
            if s.dim () <> 2L || s.shape[0] <> B || s.shape[1] <> S then
                Check.fail $"states[{k}]" $"states[{k}]: expected [B; S] = [{B}; {S}], but got {Check.shapeText s}.")
        match weights with
        | Some w ->
            if int64 w.Length <> T then Check.fail "weights" $"weights: expected T = {T} weights, but got {w.Length}."
            if b.Layers |> Array.exists (fun l -> l.Directions = 2) && w |> Array.skip 1 |> Array.exists (fun v -> v <> 1.0) then
                Check.fail "weights" "weights: a bidirectional layer reads the whole sequence both ways, so the gradient cannot be cut or scaled inside it; use full BPTT."
        | None -> ()
        match path with
        | Step ->
            let mask, rev = lengthsTensors T B lengths
            runStep b input states weights mask rev training false
        | Derived ->
            match b.AllUnits |> Array.tryFind (fun u -> b.Attention.IsSome || not (Engine.supports u.Cell)) with
            | Some u ->
                Check.fail "path" $"path: the derived path runs the built-in cells (elman-tanh, elman-relu, gru-pytorch, gru-lecture, lstm, mrnn), but layer {u.Layer} is '{u.Cell.Name}'; use the step path."
            | None -> ()
            let mask, rev = lengthsTensors T B lengths
            runStep b input states weights mask rev training true
        | Fused ->
            match weights with
            | Some w when w |> Array.exists (fun v -> v <> 0.0 && v <> 1.0) ->
                Check.fail "weights" "weights: the fused path supports only 0 (cut) and 1 (pass); use the step path for randomized truncation."
            | _ -> ()
            runFused b input states weights lengths training

    /// Reseeds the generator that dropout draws from (a trainer does this before every step).
    member _.ReseedDropout(seed: uint64) = dropoutGenerator.manual_seed (int64 (seed >>> 1)) |> ignore

    /// The readout y = V h + c over the last axis of h.
    member _.ApplyReadout(h: torch.Tensor) = OutputLayer.apply readout (parameters.narrow(0L, readoutOffset, int64 readout.ParameterCount)) h

    /// Runs the network's layers over token ids [T; B] or vectors [T; B; I] from the given states
    /// and applies the readout at every step: (y [T; B; O], final states in the order of Cells).
    /// weights (T of them) act on the gradient through the state into each step: 0 cuts it, 1 passes
    /// it, other values scale it (step path only); lengths mark each row's real steps.
    member n.Forward(path: ExecutionPath, inputs: torch.Tensor, states: torch.Tensor[], ?weights: float[],
                     ?lengths: int64[], ?training: bool) : torch.Tensor * torch.Tensor[] =
        use _ = SignalShield.enter ()
        n.ThrowIfDisposed()
        Check.notNull "inputs" inputs
        Check.notNull "states" states
        let input = n.SequenceInput("inputs", encoder, inputs)
        let T, B = inputs.shape[0], inputs.shape[1]
        checkLengths "lengths" T B lengths
        let top, finals = n.RunBody(encoder, path, input, states, weights, lengths, defaultArg training false)
        n.ApplyReadout top, finals

    /// Checks a sequence input for a body and wraps it.
    member internal _.SequenceInput(argument: string, b: Body, inputs: torch.Tensor) : BodyInput =
        if InputLayer.takesTokens b.Input then
            if inputs.dtype <> torch.int64 then
                Check.fail argument $"{argument}: expected int64 token ids [T; B] for the {InputLayer.describe b.Input} input, but got dtype {inputs.dtype}."
            Check.dims argument "[T; B]" 2 inputs
            Check.nonEmptyTime argument inputs
            let V = (InputLayer.vocabulary b.Input).Value
            if inputs.numel () > 0L then
                use _ = torch.no_grad ()
                let lo, hi = (use m = inputs.min () in m.item<int64> ()), (use m = inputs.max () in m.item<int64> ())
                if lo < 0L || hi >= int64 V then
                    Check.fail argument $"{argument}: expected token ids in [0, {V - 1}], but found values in [{lo}, {hi}]."
            TokenInput inputs
        else
            Check.floating argument inputs
            Check.dims argument "[T; B; I]" 3 inputs
            Check.nonEmptyTime argument inputs
            let I = match b.Input with InputLayer.Vectors w -> w | InputLayer.Dense(i, _) -> i | _ -> 0
            Check.size argument "[T; B; I]" 2 "I" (int64 I) inputs
            if inputs.dtype <> dtype then Check.fail argument $"{argument}: expected dtype {dtype} to match the network, but got {inputs.dtype}."
            Check.finite argument inputs
            VectorInput inputs

    /// After a backward pass on the fused path the gradients sit on the fused modules' own weights;
    /// this adds them into Parameters.grad and clears them (a no-op on the step path).
    member _.CollectGradients() =
        use _ = torch.no_grad ()
        for b in (encoder :: Option.toList decoder) do
            match b.Fused with
            | None -> ()
            | Some(_, views) ->
                if isNull parameters.grad || parameters.grad.IsInvalid then parameters.grad <- torch.zeros_like parameters
                for p, offset in views do
                    let g = p.grad
                    if not (isNull g) && not g.IsInvalid then
                        parameters.grad.narrow(0L, offset, p.numel ()).add_ (g.reshape -1L) |> ignore
                        g.zero_ () |> ignore

    /// A one-line description: the input, the layers, the head, the readout and the size.
    member _.Describe() =
        let layer (l: RecurrentLayer) =
            let dir = match l.Direction with Forward -> "" | Bidirectional Concat -> " bidirectional" | Bidirectional Sum -> " bidirectional (sum)"
            $"{l.Cell.Name} {l.Cell.HiddenSize}{dir}"
        let head =
            match spec.Head with
            | PerStep -> "a prediction per step"
            | ManyToOne p -> $"many-to-one ({(string p).ToLowerInvariant()} state)"
            | OneToMany v ->
                let how = match v with InitialState -> "initial state" | InputAtEachStep -> "input at each step"
                $"one-to-many (vector as {how})"
            | OneToOne -> "one-to-one"
            | EncoderDecoder d ->
                let decoderLayers = String.Join(" → ", d.Layers |> List.map layer)
                let attention =
                    match d.Attention with
                    | None -> "no attention"
                    | Some(style, score) ->
                        let scoreText = match score with Dot -> "dot" | General -> "general" | Additive a -> $"additive, A = {a}"
                        match style with
                        | Bahdanau -> $"Bahdanau attention ({scoreText})"
                        | Luong true -> $"Luong attention ({scoreText}, input feeding)"
                        | Luong false -> $"Luong attention ({scoreText})"
                $"encoder–decoder (decoder {decoderLayers}, {attention})"
        let layers = String.Join(" → ", spec.Layers |> List.map layer)
        $"{InputLayer.describe spec.Input} → {layers} → {head} → readout {spec.Output}; {total:N0} parameters"

    override n.ToString() = n.Describe()

    interface IDisposable with
        member _.Dispose() =
            if not disposed then
                disposed <- true
                for b in (encoder :: Option.toList decoder) do
                    b.Fused |> Option.iter (fun (md, _) -> md.Dispose())
                dropoutGenerator.Dispose()
                parameters.Dispose()
