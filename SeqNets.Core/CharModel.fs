/// The character-level language model of the lecture's running example, as one network among
/// others: one-hot characters → L recurrent layers of one built-in cell family → y_t = V h_t + c →
/// softmax over the next character (a PerStep head with cross-entropy).
/// Legend: V vocabulary, H hidden, L layers.
namespace SeqNets

/// The shape of a character model.
type ModelConfig =
    { Kind: CellKind
      /// V: characters in the vocabulary (input and output width).
      VocabularySize: int
      /// H: hidden units per layer.
      HiddenSize: int
      /// L: stacked layers.
      Layers: int }

[<RequireQualifiedAccess>]
module CharModel =
    /// The network spec of a character model, with dropout p between its layers (0 for none).
    [<CompiledName("SpecWithDropout")>]
    let specWithDropout (dropout: float) (config: ModelConfig) : NetworkSpec =
        Check.positive "VocabularySize" config.VocabularySize
        Check.positive "HiddenSize" config.HiddenSize
        Check.positive "Layers" config.Layers
        let V, H = config.VocabularySize, config.HiddenSize
        { Input = OneHot V
          Layers = Layer.stack config.Layers Forward V (fun width -> CellKind.cell config.Kind width H)
          Dropout = dropout
          Head = PerStep
          Output = V
          Loss = CrossEntropy }

    /// The network spec of a character model.
    [<CompiledName("Spec")>]
    let spec (config: ModelConfig) = specWithDropout 0.0 config

    /// A new character model with parameters drawn from the seed (the cells' U(−1/√H, 1/√H), layer by
    /// layer, then the readout's).
    [<CompiledName("Create")>]
    let create (config: ModelConfig) (dtype: TorchSharp.torch.ScalarType) (seed: uint64) : Network =
        new Network(spec config, dtype, seed)

    /// A network for next-token prediction over a vocabulary of V tokens whose layers are any cells:
    /// one-hot tokens → the layers → V outputs, cross-entropy at every step.
    [<CompiledName("OfLayers")>]
    let ofLayers (vocabulary: int) (layers: RecurrentLayer list) (dropout: float) : NetworkSpec =
        { Input = OneHot vocabulary; Layers = layers; Dropout = dropout; Head = PerStep; Output = vocabulary; Loss = CrossEntropy }

    /// The character-model config of a network of that shape (one-hot input, layers of one built-in
    /// family and hidden size reading left to right, a PerStep readout over the vocabulary), if it is one.
    [<CompiledName("TryConfig")>]
    let tryConfig (net: Network) : ModelConfig option =
        let s = net.Spec
        match s.Input, s.Head, s.Loss with
        | OneHot v, PerStep, CrossEntropy when s.Output = v ->
            let kinds = s.Layers |> List.map (fun l -> CellKind.ofCell l.Cell)
            let H = s.Layers.Head.Cell.HiddenSize
            match kinds.Head with
            | Some k when kinds |> List.forall ((=) (Some k))
                          && s.Layers |> List.forall (fun l -> l.Direction = Forward && l.Cell.HiddenSize = H) ->
                Some { Kind = k; VocabularySize = v; HiddenSize = H; Layers = s.Layers.Length }
            | _ -> None
        | _ -> None
