/// Networks from layers, as values. A network is an input layer, recurrent layers over any cell
/// (stacked, one direction or both), dropout between them, a head — one of the lecture's five
/// input/output shapes — and a readout y = g(h) = V h + c with its loss:
///
///   (1) one-to-one        x → y                    (a vector through one step of the recurrence)
///   (2) one-to-many       v → y_1 … y_T            (v as the initial state, or as the input at each step)
///   (3) many-to-one       x_1 … x_T → y            (the last state of each row's own length, or a pooling)
///   (4) many-to-many      x_1 … x_S → y_1 … y_T    (encoder → decoder; Enc → g → Dec)
///   (5) synced            x_1 … x_T → y_1 … y_T    (a label per step; the character model)
///
/// The description is data: a checkpoint stores it and rebuilds the network from it.
/// Legend: T time, B batch, V vocabulary, E embedding width, I input, H hidden, S state, O outputs.
namespace SeqNets

open System
open SeqNets.Cells

/// How a network's inputs enter its first recurrent layer.
type InputLayer =
    /// Vectors x_t of this width, as they are: inputs [T; B; I].
    | Vectors of width: int
    /// Token ids [T; B] (int64) as one-hot vectors of the vocabulary's width; no parameters.
    | OneHot of vocabulary: int
    /// Token ids [T; B] (int64) looked up in a learned table [V; E] (PyTorch's nn.Embedding).
    | Embedding of vocabulary: int * width: int
    /// Vectors of inputSize mapped by a learned affine map W x + b to this width (nn.Linear).
    | Dense of inputSize: int * width: int

[<RequireQualifiedAccess>]
module InputLayer =
    /// The width of what the first recurrent layer reads.
    [<CompiledName("Width")>]
    let width input =
        match input with
        | Vectors w | OneHot w | Embedding(_, w) | Dense(_, w) -> w

    /// Whether the inputs are token ids (one-hot or embedding).
    [<CompiledName("TakesTokens")>]
    let takesTokens input =
        match input with
        | OneHot _ | Embedding _ -> true
        | Vectors _ | Dense _ -> false

    /// The vocabulary of a token input.
    let internal vocabulary input =
        match input with
        | OneHot v | Embedding(v, _) -> Some v
        | _ -> None

    /// The learned blocks of the layer: the table [V; E] of an embedding, W [E; I] and b [E] of a
    /// dense map; none for one-hot and plain vectors.
    let internal blocks input : (string * int64 list) list =
        match input with
        | Vectors _ | OneHot _ -> []
        | Embedding(v, e) -> [ "weight", [ int64 v; int64 e ] ]
        | Dense(i, e) -> [ "weight", [ int64 e; int64 i ]; "bias", [ int64 e ] ]

    let internal check (argument: string) input =
        match input with
        | Vectors w | OneHot w -> Check.positive argument w
        | Embedding(v, e) -> Check.positive argument v; Check.positive argument e
        | Dense(i, e) -> Check.positive argument i; Check.positive argument e

    /// A short description, e.g. "embedding 65 → 32".
    [<CompiledName("Describe")>]
    let describe input =
        match input with
        | Vectors w -> $"vectors of width {w}"
        | OneHot v -> $"one-hot over {v} tokens"
        | Embedding(v, e) -> $"embedding {v} → {e}"
        | Dense(i, e) -> $"dense {i} → {e}"

/// How a bidirectional layer combines its two directions at each step.
type Merge =
    /// [h→; h←]: twice the hidden width (PyTorch's bidirectional = True).
    | Concat
    /// h→ + h←: the hidden width.
    | Sum

/// Which way a recurrent layer reads the sequence.
type Direction =
    /// Left to right.
    | Forward
    /// Both ways: a second copy of the cell (its own θ) reads each row from its own last element
    /// back to its first; its outputs are put back in time order and merged with the forward ones.
    | Bidirectional of Merge

/// A recurrent layer: any cell, built-in or user-defined, in one direction or both.
[<NoComparison; NoEquality>]
type RecurrentLayer =
    { Cell: Cell
      Direction: Direction }
    /// The number of directions, 1 or 2.
    member l.Directions = match l.Direction with Forward -> 1 | Bidirectional _ -> 2
    /// The width of the layer's output at each step (what the next layer reads).
    member l.OutputWidth =
        match l.Direction with
        | Forward | Bidirectional Sum -> l.Cell.HiddenSize
        | Bidirectional Concat -> 2 * l.Cell.HiddenSize

[<RequireQualifiedAccess>]
module Layer =
    /// A recurrent layer reading left to right.
    [<CompiledName("Recurrent")>]
    let recurrent (cell: Cell) = Check.notNull (nameof cell) cell; { Cell = cell; Direction = Forward }

    /// A bidirectional layer whose directions are concatenated, as PyTorch's bidirectional = True.
    [<CompiledName("Bidirectional")>]
    let bidirectional (cell: Cell) = Check.notNull (nameof cell) cell; { Cell = cell; Direction = Bidirectional Concat }

    /// A bidirectional layer whose directions are merged as given.
    [<CompiledName("BidirectionalWith")>]
    let bidirectionalWith (merge: Merge) (cell: Cell) = Check.notNull (nameof cell) cell; { Cell = cell; Direction = Bidirectional merge }

    /// count layers of the cells make gives: layer 0 reads inputWidth, each next layer the width of the
    /// one below; `make` is called with the input width of each layer.
    [<CompiledName("Stack")>]
    let stack (count: int) (direction: Direction) (inputWidth: int) (make: int -> Cell) : RecurrentLayer list =
        Check.positive (nameof count) count
        Check.positive (nameof inputWidth) inputWidth
        let mutable width = inputWidth
        [ for _ in 1 .. count ->
              let layer = { Cell = make width; Direction = direction }
              width <- layer.OutputWidth
              layer ]

/// How many-to-one reduces the top layer's outputs to one vector per row.
type Pooling =
    /// The state after each row's own last element (for a bidirectional layer, each direction's
    /// final state: forward after the last element, backward after the first), merged.
    | Last
    /// The mean of the outputs over each row's real steps.
    | Mean
    /// The element-wise maximum over each row's real steps.
    | Max

/// How one-to-many feeds its vector v [B; I] to the recurrence.
type VectorAs =
    /// s_0 = tanh(W v + b) for every layer (learned); the inputs x_t are zero.
    | InitialState
    /// x_t = v at every step (through the input layer).
    | InputAtEachStep

/// How an encoder's final states become a decoder's initial states.
type Bridge =
    /// Decoder layer k starts from encoder layer k's final state (forward direction): the layers
    /// must agree in number and state size.
    | Copy
    /// Decoder layer k starts from tanh(W_k z + b_k), z the top encoder layer's final states
    /// (both directions, concatenated), with W_k, b_k learned: the sizes may differ.
    | Projection

/// The decoder of an encoder–decoder head (Sutskever et al. 2014): target tokens in, one prediction
/// per step, teacher forcing in training.
[<NoComparison; NoEquality>]
type Decoder =
    { /// The target tokens' input layer (one-hot or embedding of the target vocabulary).
      Input: InputLayer
      /// The decoder's recurrent layers (left to right).
      Layers: RecurrentLayer list
      Bridge: Bridge
      /// The id that starts every decoded sequence (<bos>).
      Bos: int
      /// The id that ends a sequence (<eos>); decoding stops there.
      Eos: int
      /// The longest sequence decoding produces (and training accepts), <eos> included.
      MaxLength: int
      /// Attention over the encoder's outputs (the top layer's, padded steps masked): None for the plain
      /// Sutskever decoder. With attention the decoder's layers form one cell (a stack when there are
      /// several) inside the attention decoder, and its first layer reads [x; ctx] (Bahdanau, width X + E),
      /// [x; h̃] (Luong with input feeding, X + H) or x (Luong without).
      Attention: (AttentionStyle * Score) option
      /// The probability of feeding the true previous token in training (teacher forcing); otherwise the
      /// decoder's own most likely one. 1: always the truth.
      TeacherForcing: float
      /// Read each source row from its last real token back to its first (Sutskever et al. 2014).
      ReverseSource: bool }

/// One of the lecture's five input/output shapes.
[<NoComparison; NoEquality>]
type Head =
    /// (5) synced many-to-many: y_t = g(h_t) at every (real) step. The character model's head.
    | PerStep
    /// (3) many-to-one: y = g(pool(h_1, …, h_T)) per row.
    | ManyToOne of Pooling
    /// (2) one-to-many: a vector v [B; I] → y_1 … y_T.
    | OneToMany of VectorAs
    /// (1) one-to-one: a vector x [B; I] → y, through one step of the recurrence.
    | OneToOne
    /// (4) many-to-many: the network's layers encode the source, the decoder produces the target.
    | EncoderDecoder of Decoder

/// Everything that fixes a network's shape.
[<NoComparison; NoEquality>]
type NetworkSpec =
    { Input: InputLayer
      /// The recurrent layers, bottom first (at least one).
      Layers: RecurrentLayer list
      /// Dropout probability on each recurrent layer's outputs except the last (as PyTorch), in training.
      Dropout: float
      Head: Head
      /// O: the readout's width, y = V h + c.
      Output: int
      Loss: Loss }

/// The recurrent family of the built-in cells, by name.
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

    /// The kind of a built-in cell (by its name and layout), or None for any other cell.
    [<CompiledName("OfCell")>]
    let ofCell (c: Cell) : CellKind option =
        let kind =
            match c.Name with
            | "elman-tanh" -> Some ElmanTanh
            | "elman-relu" -> Some ElmanRelu
            | "gru-pytorch" -> Some GruPyTorch
            | "gru-lecture" -> Some GruLecture
            | "lstm" -> Some Lstm
            | "mrnn" ->
                match c.Layout.Blocks |> List.tryFind (fun b -> b.Name = "W_fx") with
                | Some b -> Some(MultiplicativeRnn(int b.Shape[0]))
                | None -> None
            | _ -> None
        // A user's cell may borrow a built-in name: only the same layout and state make it that cell.
        kind
        |> Option.filter (fun k ->
            let builtIn = cell k c.InputSize c.HiddenSize
            string builtIn.Layout = string c.Layout && builtIn.StateSize = c.StateSize)

/// Cells a checkpoint can rebuild by name: the built-in ones, and user-defined ones registered here.
[<RequireQualifiedAccess>]
module CellCatalog =
    let private registered = Collections.Concurrent.ConcurrentDictionary<string, Func<int, int, Cell>>()

    /// Registers how to build the user-defined cell called name from (inputSize, hiddenSize), so that
    /// checkpoints holding it can be loaded. A later registration of the same name replaces it.
    [<CompiledName("Register")>]
    let register (name: string) (make: int -> int -> Cell) =
        if String.IsNullOrWhiteSpace name then Check.fail "name" "name: expected a cell name, but got an empty one."
        Check.notNull (nameof make) make
        registered[name] <- Func<int, int, Cell>(make)

    /// The cell called name at these sizes: a built-in cell, or a registered one.
    let internal tryBuild (name: string) (inputSize: int) (hiddenSize: int) (factors: int option) : Cell option =
        match name with
        | "elman-tanh" -> Some(CellKind.cell ElmanTanh inputSize hiddenSize)
        | "elman-relu" -> Some(CellKind.cell ElmanRelu inputSize hiddenSize)
        | "gru-pytorch" -> Some(CellKind.cell GruPyTorch inputSize hiddenSize)
        | "gru-lecture" -> Some(CellKind.cell GruLecture inputSize hiddenSize)
        | "lstm" -> Some(CellKind.cell Lstm inputSize hiddenSize)
        | "mrnn" when factors.IsSome -> Some(CellKind.cell (MultiplicativeRnn factors.Value) inputSize hiddenSize)
        | _ ->
            match registered.TryGetValue name with
            | true, make -> Some(make.Invoke(inputSize, hiddenSize))
            | _ -> None

[<RequireQualifiedAccess>]
module NetworkSpec =
    let private fail = Check.fail "spec"

    let private checkLayers (what: string) (inputWidth: int) (layers: RecurrentLayer list) =
        if layers.IsEmpty then fail $"spec: expected at least one recurrent layer in {what}, but got none."
        let mutable width = inputWidth
        layers |> List.iteri (fun k layer ->
            if isNull (box layer.Cell) then fail $"spec: {what} layer {k} has no cell."
            if layer.Cell.InputSize <> width then
                let source = if k = 0 then "the input layer gives" else $"layer {k - 1} gives"
                fail $"spec: {what} layer {k} ('{layer.Cell.Name}') expects inputs of width {layer.Cell.InputSize}, but {source} {width}."
            width <- layer.OutputWidth)
        width

    /// The width of the vectors the readout reads (the top layer's output, or the decoder's).
    [<CompiledName("TopWidth")>]
    let topWidth (spec: NetworkSpec) =
        match spec.Head with
        | EncoderDecoder d -> (List.last d.Layers).OutputWidth
        | _ -> (List.last spec.Layers).OutputWidth

    /// Checks a spec: sizes that chain, a head the layers and loss allow. ArgumentException naming
    /// the part at fault.
    [<CompiledName("Validate")>]
    let validate (spec: NetworkSpec) =
        InputLayer.check "spec.Input" spec.Input
        Check.notNull "spec.Layers" spec.Layers
        checkLayers "the network's" (InputLayer.width spec.Input) spec.Layers |> ignore
        if not (spec.Dropout >= 0.0 && spec.Dropout < 1.0) then
            fail $"spec: expected a dropout probability in [0, 1), but got {spec.Dropout}."
        Check.positive "spec.Output" spec.Output
        match spec.Head with
        | OneToOne | OneToMany _ ->
            if InputLayer.takesTokens spec.Input then
                let head = match spec.Head with OneToOne -> "one-to-one" | _ -> "one-to-many"
                fail $"spec: a {head} head reads one vector per row, but the input layer is {InputLayer.describe spec.Input}; use Vectors or Dense."
        | EncoderDecoder d ->
            InputLayer.check "spec.Head.Input" d.Input
            match InputLayer.vocabulary d.Input with
            | None -> fail $"spec: the decoder reads target tokens, but its input layer is {InputLayer.describe d.Input}; use OneHot or Embedding."
            | Some v ->
                if d.Bos < 0 || d.Bos >= v then fail $"spec: the decoder's Bos id must be in [0, {v - 1}], but got {d.Bos}."
                if d.Eos < 0 || d.Eos >= v then fail $"spec: the decoder's Eos id must be in [0, {v - 1}], but got {d.Eos}."
                if spec.Output <> v then fail $"spec: the decoder predicts target tokens, so Output must be the target vocabulary {v}, but got {spec.Output}."
            if d.MaxLength < 1 then fail $"spec: the decoder's MaxLength must be positive, but got {d.MaxLength}."
            let X = InputLayer.width d.Input
            let E = (List.last spec.Layers).OutputWidth
            let H = (List.last d.Layers).Cell.HiddenSize
            let first =
                match d.Attention with
                | None -> X
                | Some(Bahdanau, _) -> X + E
                | Some(Luong true, _) -> X + H
                | Some(Luong false, _) -> X
            let what =
                match d.Attention with
                | None -> "the decoder's"
                | Some(Bahdanau, _) -> $"the decoder's (Bahdanau attention: the first reads [x; ctx], {X} + {E} wide)"
                | Some(Luong true, _) -> $"the decoder's (Luong attention with input feeding: the first reads [x; h̃], {X} + {H} wide)"
                | Some(Luong false, _) -> "the decoder's"
            checkLayers what first d.Layers |> ignore
            match d.Attention with
            | Some(_, Dot) when H <> E ->
                fail $"spec: dot attention compares the decoder's state (H = {H}) with the encoder's outputs (E = {E}), so they must be equally wide; use General or Additive."
            | Some(_, Additive a) when a < 1 -> fail $"spec: additive attention needs a positive width, but got {a}."
            | _ -> ()
            if not (d.TeacherForcing >= 0.0 && d.TeacherForcing <= 1.0) then
                fail $"spec: the decoder's TeacherForcing must be a probability in [0, 1], but got {d.TeacherForcing}."
            if d.Layers |> List.exists (fun l -> l.Directions = 2) then
                fail "spec: a decoder produces its sequence left to right, so its layers cannot be bidirectional."
            match d.Bridge with
            | Copy ->
                if d.Layers.Length <> spec.Layers.Length then
                    fail $"spec: Bridge.Copy starts decoder layer k from encoder layer k, but the encoder has {spec.Layers.Length} layers and the decoder {d.Layers.Length}; use Bridge.Projection."
                List.iteri2 (fun k (e: RecurrentLayer) (dl: RecurrentLayer) ->
                    if e.Cell.StateSize <> dl.Cell.StateSize then
                        fail $"spec: Bridge.Copy needs equal state sizes, but encoder layer {k} has S = {e.Cell.StateSize} and decoder layer {k} S = {dl.Cell.StateSize}; use Bridge.Projection.") spec.Layers d.Layers
            | Projection -> ()
            if spec.Loss <> CrossEntropy then fail "spec: an encoder–decoder head predicts tokens: its loss is CrossEntropy."
        | PerStep | ManyToOne _ -> ()
