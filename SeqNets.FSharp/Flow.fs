/// How gradients flow back in time, as pipelines over a CellModel or a network:
///
///   Rnn.lstm 3 5 |> Rnn.init 42 |> Flow.analyse xs loss          // a SensitivityReport
///   Flow.network net batch |> Flow.save "flow"                   // PNG + CSV pictures
///
/// Every function is a thin call of SeqNets.Sensitivity, GradientFlow, Plots and LongRange.
/// Legend: T time, B batch, I input, S state, P parameters.
namespace SeqNets.FSharp

open TorchSharp
open SeqNets

[<RequireQualifiedAccess>]
module Flow =
    /// The analysis of the model along xs [T; B; I] from s_0 = 0 for the loss of the states
    /// [T+1; B; S] (see readout), every lag and position.
    [<CompiledName("Analyse")>]
    let analyse (xs: Tensor) (loss: Tensor -> Tensor) (model: CellModel) : SensitivityReport =
        Args.notNull (nameof model) (box model)
        let s0 = torch.zeros([| xs.shape[1]; int64 model.Cell.StateSize |], dtype = model.Dtype)
        Sensitivity.analyse SensitivityOptions.Default model.Cell.Name model.Cell model.Theta xs s0 loss

    /// The same with options (lags N, stride, singular values).
    [<CompiledName("AnalyseWith")>]
    let analyseWith (options: SensitivityOptions) (xs: Tensor) (loss: Tensor -> Tensor) (model: CellModel) : SensitivityReport =
        Args.notNull (nameof model) (box model)
        let s0 = torch.zeros([| xs.shape[1]; int64 model.Cell.StateSize |], dtype = model.Dtype)
        Sensitivity.analyse options model.Cell.Name model.Cell model.Theta xs s0 loss

    /// The lecture's readout loss L = 1/T Σ_t ℓ(V h_t + c, o_t) as a function of the states.
    [<CompiledName("Readout")>]
    let readout (output: OutputLayer) (loss: Loss) (wo: Tensor) (targets: Tensor) (model: CellModel) : Tensor -> Tensor =
        Args.notNull (nameof model) (box model)
        Sensitivity.readoutLoss model.Cell output loss wo targets

    /// The analysis of a network's loss on a batch (forward layers, PerStep or ManyToOne head).
    [<CompiledName("Network")>]
    let network (net: Network) (batch: Batch) : SensitivityReport = GradientFlow.ofNetwork SensitivityOptions.Default net batch

    /// The analysis of the network a checkpoint holds, on a batch.
    [<CompiledName("Checkpoint")>]
    let checkpoint (path: string) (batch: Batch) : SensitivityReport = GradientFlow.ofCheckpoint SensitivityOptions.Default path batch

    /// The clipping study: the full gradient, clipped by norm maxNorm and by value maxValue, and
    /// truncated at each τ, compared by norm, cosine and the loss after one step of rate η.
    [<CompiledName("Clipping")>]
    let clipping (xs: Tensor) (loss: Tensor -> Tensor) (eta: float) (maxNorm: float) (maxValue: float) (taus: int list) (model: CellModel) : ClippingStudy =
        Args.notNull (nameof model) (box model)
        let s0 = torch.zeros([| xs.shape[1]; int64 model.Cell.StateSize |], dtype = model.Dtype)
        GradientFlow.clippingStudy SensitivityOptions.Default model.Cell.Name model.Cell model.Theta xs s0 loss eta maxNorm maxValue taus

    /// Every picture of the reports into a folder (PNG with CSV beside each); the PNG paths.
    [<CompiledName("Save")>]
    let save (directory: string) (reports: SensitivityReport list) : string list = Plots.all directory reports

    /// The long-range task (adding or copy) at the lengths T for Elman, GRU and LSTM, with options.
    [<CompiledName("LongRange")>]
    let longRange (options: LongRangeOptions) : LongRangeReport = LongRange.run options
