/// Networks of layers as values and pipelines, for F# scripts:
///
///   Net.spec (OneHot 65) [ Layer.lstm 128; Layer.lstm 128 ] PerStep 65
///   |> Net.create 1
///   |> Net.fit 500 { TrainingConfig.Default with Strategy = Truncated 32 } (Net.text corpus)
///
/// Layers take their input width from the layer below (Net.spec chains them); the functions take the
/// network last. Everything here is a short translation onto SeqNets' Network, Heads and Trainer.
namespace SeqNets.FSharp

open TorchSharp
open SeqNets

/// A layer waiting for its input width: the recurrent layers of Net.spec.
type LayerOf = int -> RecurrentLayer

[<RequireQualifiedAccess>]
module Net =
    /// An LSTM layer of H units reading left to right.
    [<CompiledName("Lstm")>]
    let lstm (hiddenSize: int) : LayerOf = fun width -> Layer.recurrent (Cells.Lstm.create width hiddenSize)

    /// A GRU layer (PyTorch's form) of H units reading left to right.
    [<CompiledName("Gru")>]
    let gru (hiddenSize: int) : LayerOf = fun width -> Layer.recurrent (Cells.Gru.create Cells.PyTorch width hiddenSize)

    /// An Elman (tanh) layer of H units reading left to right.
    [<CompiledName("Elman")>]
    let elman (hiddenSize: int) : LayerOf = fun width -> Layer.recurrent (Cells.Elman.create Cells.Tanh width hiddenSize)

    /// A layer of any cell, made from its input width: Net.cell (fun width -> myCell width 32).
    [<CompiledName("Cell")>]
    let cell (make: int -> Cell) : LayerOf = fun width -> Layer.recurrent (make width)

    /// The same layer reading both ways, directions concatenated.
    [<CompiledName("Bidirectional")>]
    let bidirectional (layer: LayerOf) : LayerOf = fun width -> { layer width with Direction = Bidirectional Concat }

    /// A spec: the input layer, the layers (each given the width of the one below), the head and the
    /// readout's width; cross-entropy, no dropout (change them with { spec with … }).
    [<CompiledName("Spec")>]
    let spec (input: InputLayer) (layers: LayerOf list) (head: Head) (output: int) : NetworkSpec =
        let mutable width = InputLayer.width input
        let built =
            [ for make in layers ->
                  let l = make width
                  width <- l.OutputWidth
                  l ]
        { Input = input; Layers = built; Dropout = 0.0; Head = head; Output = output; Loss = CrossEntropy }

    /// A float32 network of the spec, its parameters drawn from the seed.
    [<CompiledName("Create")>]
    let create (seed: int) (spec: NetworkSpec) : Network = new Network(spec, torch.float32, uint64 seed)

    /// B streams over a corpus's training text, for Net.fit.
    [<CompiledName("Text")>]
    let text (corpus: Corpus) : TrainingConfig -> IBatchSource = fun config -> TextStreams(corpus.Train, config.Batch, config.SequenceLength)

    /// Batches made by a function of their index, for Net.fit.
    [<CompiledName("Batches")>]
    let batches (make: int -> Batch) : TrainingConfig -> IBatchSource = fun config -> GeneratedBatches(1_000_000, config.Batch, make)

    /// Trains for steps steps and returns the network (its training losses are dropped; use a
    /// Trainer to see them).
    [<CompiledName("Fit")>]
    let fit (steps: int) (config: TrainingConfig) (data: TrainingConfig -> IBatchSource) (net: Network) : Network =
        Args.positive (nameof steps) steps
        use trainer = new Trainer(net, data config, config)
        for _ in 1 .. steps do trainer.Step () |> ignore
        net

    /// The network's predictions for inputs with lengths per row (None: all real).
    [<CompiledName("Predict")>]
    let predict (inputs: torch.Tensor) (lengths: int64[] option) (net: Network) : Prediction =
        Heads.predict net net.DefaultPath inputs lengths None

    /// Loss, accuracy, exact match and mean absolute error on a batch.
    [<CompiledName("Evaluate")>]
    let evaluate (batch: Batch) (net: Network) : Metrics = Heads.evaluate net net.DefaultPath batch

    /// A generated task (Tasks.names) trained for steps steps from the seed: its table and claim.
    [<CompiledName("Task")>]
    let task (steps: int) (seed: int) (name: string) : TaskReport =
        Tasks.run name { TaskOptions.Default with Steps = steps; Seed = uint64 seed }
