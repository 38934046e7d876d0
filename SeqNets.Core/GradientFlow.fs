/// The sensitivity analysis (Sensitivity.fs) for networks of layers and checkpoints, and clipping
/// and truncation in the same light.
///
/// A network whose recurrent layers read left to right is, for the analysis, one cell: its layers'
/// cells stacked (Stack.create; a single layer is its own cell), θ their blocks of the network's
/// parameters in order, x_t what the input layer gives, and L the head's loss (PerStep, or ManyToOne
/// with any pooling) as a function of the stack's states. Readout and input-layer parameters do not
/// flow through time and are left out of θ.
///
/// The clipping study takes one trajectory and one loss and compares, next to the full gradient g,
/// the updates training would apply: g clipped by norm (g · min(1, τ_c/‖g‖): every lag's part
/// G_k scaled by the same factor, the direction kept), g clipped by value, and the gradients of
/// truncated BPTT g_τ = Σ_{k<τ} G_k (with and without clipping): their norms, their cosines with g,
/// and the loss after one plain gradient step θ − η u along each.
/// Legend: T time, B batch, I input, S state, P parameters, O outputs.
namespace SeqNets

open System
open TorchSharp

/// One update compared with the full gradient g.
type UpdateComparison =
    { /// What the update is, e.g. "clipped by norm 1" or "truncated at τ = 10".
      Update: string
      /// ‖u‖.
      Norm: float
      /// ‖u‖ / ‖g‖.
      RelativeNorm: float
      /// cos(u, g).
      Cosine: float
      /// L(θ − η u): the loss after one gradient step of rate η along u.
      LossAfterStep: float }

/// What clipping by norm does to the update, and what truncation costs, on one configuration.
[<NoComparison; NoEquality>]
type ClippingStudy =
    { Model: string
      /// L(θ).
      Loss: float
      /// ‖g‖ = ‖∂L/∂θ‖.
      GradientNorm: float
      /// η of the one-step comparison.
      LearningRate: float
      /// τ_c of clipping by norm.
      MaxNorm: float
      /// The threshold of clipping by value.
      MaxValue: float
      /// The truncation lengths compared.
      Taus: int[]
      /// The full gradient first, then clipped by norm, by value, and truncated (alone and clipped).
      Updates: UpdateComparison[]
      /// The gradient flow of the configuration (G_k by lag, the truncation curve, the products).
      Flow: SensitivityReport }

[<RequireQualifiedAccess>]
module GradientFlow =
    let private f64 = torch.float64
    let private scalar (t: Tensor) = (use d = t.to_type f64 in d.item<float> ())

    /// The network as one cell for the analysis: (cell, θ [P], xs [T; B; I], loss over states), all float64.
    let internal recurrence (net: Network) (batch: Batch) : Cell * Tensor * Tensor * (Tensor -> Tensor) =
        Check.notNull (nameof net) net
        net.ThrowIfDisposed()
        Check.notNull "batch" (box batch)
        let spec = net.Spec
        match spec.Head with
        | PerStep | ManyToOne _ -> ()
        | h -> Check.fail "net" $"net: the analysis follows a recurrence that reads a sequence and is scored along it (PerStep or ManyToOne heads), but the network's head is {h}."
        if net.IsBidirectional then
            Check.fail "net" "net: the analysis follows a recurrence left to right, but a layer of this network reads both ways; analyse its forward cells with Sensitivity.analyse."
        if batch.Lengths.IsSome then
            Check.fail "batch.Lengths" "batch.Lengths: expected rows of one length (None): the analysis averages over positions every row has."
        // The head's own loss checks the batch (shapes, classes, dtypes) and is the value to match.
        using (torch.no_grad ()) (fun _ -> Heads.loss net Step batch None None false |> fst |> ignore)
        let cells = net.Cells
        let cell = if cells.Length = 1 then cells[0] else Stack.create (List.ofArray cells)
        let theta = torch.cat([| for k in 0 .. cells.Length - 1 -> net.LayerParameters k |], 0L).detach().to_type f64 // [P]
        let input = net.SequenceInput("batch.Inputs", net.Encoder, batch.Inputs)
        let xs = using (torch.no_grad ()) (fun _ -> net.ApplyInput(net.Encoder, input).detach().to_type f64) // [T; B; I]
        let wo = net.ReadoutParameters.detach().to_type f64 // [P_o]
        let readout = net.Readout
        let targets = if spec.Loss = MeanSquared then batch.Targets.detach().to_type f64 else batch.Targets
        let pointLoss (y: Tensor) =
            match spec.Loss with
            | CrossEntropy -> torch.nn.functional.cross_entropy(y, targets)
            | MeanSquared -> (y - targets).square().mean()
        let loss (states: Tensor) =
            let hs = Recurrence.outputs cell states // [T; B; H]
            match spec.Head with
            | ManyToOne Last -> pointLoss (OutputLayer.apply readout wo hs[-1L]) // [B; O]
            | ManyToOne Mean -> pointLoss (OutputLayer.apply readout wo (hs.mean([| 0L |])))
            | ManyToOne Max -> pointLoss (OutputLayer.apply readout wo (hs.amax([| 0L |])))
            | _ ->
                let ys = OutputLayer.apply readout wo hs // [T; B; O]
                match spec.Loss with
                | CrossEntropy -> torch.nn.functional.cross_entropy(ys.reshape(-1L, ys.shape[2]), targets.reshape(-1L))
                | MeanSquared -> (ys - targets).square().mean()
        cell, theta, xs, loss

    /// B windows of T + 1 consecutive token ids spread evenly over ids (a text encoded in a model's
    /// vocabulary): inputs [T; B] and next-token targets [T; B], for a character model's analysis.
    [<CompiledName("TextBatch")>]
    let textBatch (ids: int64[]) (rows: int) (steps: int) : Batch =
        Native.ensure ()
        Check.notNull (nameof ids) ids
        Check.positive (nameof rows) rows
        Check.positive (nameof steps) steps
        if ids.Length < steps + 1 then
            Check.fail "ids" $"ids: expected at least T + 1 = {steps + 1} tokens for windows of T = {steps}, but got {ids.Length}."
        let room = ids.Length - steps - 1 // the last window's start
        let start b = if rows = 1 then 0 else int (int64 room * int64 b / int64 (rows - 1))
        let window (shift: int) = [| for t in 0 .. steps - 1 do for b in 0 .. rows - 1 -> ids[start b + t + shift] |]
        { Inputs = torch.tensor(window 0).reshape(int64 steps, int64 rows) // [T; B]
          Lengths = None
          Targets = torch.tensor(window 1).reshape(int64 steps, int64 rows) // [T; B]
          TargetLengths = None }

    /// How the gradient of a network's loss on a batch flows back in time through its recurrent
    /// layers (forward layers; PerStep or ManyToOne head; rows of one length). The report is named
    /// after the network's description.
    [<CompiledName("OfNetwork")>]
    let ofNetwork (options: SensitivityOptions) (net: Network) (batch: Batch) : SensitivityReport =
        use _ = SignalShield.enter ()
        Native.ensure ()
        use _ = torch.NewDisposeScope()
        let cell, theta, xs, loss = recurrence net batch
        let s0 = torch.zeros([| xs.shape[1]; int64 cell.StateSize |], dtype = f64)
        let report, _ = Sensitivity.sweep options true (net.Describe()) cell theta xs s0 loss
        report

    /// The same for the network a checkpoint holds (at the step it was saved).
    [<CompiledName("OfCheckpoint")>]
    let ofCheckpoint (options: SensitivityOptions) (path: string) (batch: Batch) : SensitivityReport =
        Check.notNull (nameof path) path
        let contents = Checkpoint.load path
        use net = contents.Network
        for s in contents.State do s.Dispose()
        ofNetwork options net batch

    /// The clipping study of one trajectory: the full gradient, clipped by norm maxNorm and by value
    /// maxValue, and truncated at each τ of taus (alone, then clipped by norm), each compared with the
    /// full gradient and by the loss after one step θ − η u of rate learningRate.
    [<CompiledName("ClippingStudy")>]
    let clippingStudy (options: SensitivityOptions) (model: string) (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor)
                      (loss: Tensor -> Tensor) (learningRate: float) (maxNorm: float) (maxValue: float) (taus: int list) : ClippingStudy =
        use _ = SignalShield.enter ()
        Native.ensure ()
        use _ = torch.NewDisposeScope()
        if not (learningRate > 0.0 && Double.IsFinite learningRate) then
            Check.fail "learningRate" $"learningRate: expected a positive finite rate, but got {learningRate}."
        if not (maxNorm > 0.0 && Double.IsFinite maxNorm) then
            Check.fail "maxNorm" $"maxNorm: expected a positive finite threshold, but got {maxNorm}."
        if not (maxValue > 0.0 && Double.IsFinite maxValue) then
            Check.fail "maxValue" $"maxValue: expected a positive finite threshold, but got {maxValue}."
        Check.notNull (nameof taus) taus
        let model = if String.IsNullOrWhiteSpace model then cell.Name else model
        let report, G = Sensitivity.sweep options true model cell theta xs s0 loss // G: [T; P]
        let T = int G.shape[0]
        taus |> List.iter (fun tau ->
            if tau < 1 || tau > T then Check.fail "taus" $"taus: expected truncation lengths in [1, T = {T}], but got {tau}.")
        let theta = theta.detach().to_type f64
        let xs = xs.detach().to_type f64
        let s0 = Sensitivity.initialState cell xs.shape[1] s0
        use _ = torch.no_grad ()
        let lossAt (th: Tensor) =
            let states = Recurrence.unroll cell th xs s0
            scalar (loss states)
        let g = G.sum(0L) // [P]
        let gNorm = scalar (g.norm ())
        let compare (name: string) (u: Tensor) =
            let n = scalar (u.norm ())
            { Update = name
              Norm = n
              RelativeNorm = n / gNorm
              Cosine = scalar ((u * g).sum ()) / (n * gNorm)
              LossAfterStep = (try lossAt (theta - u * learningRate) with :? ArgumentException -> nan) }
        let byNorm (u: Tensor) = let n = scalar (u.norm ()) in if n > maxNorm then u * (maxNorm / n) else u
        let inv = Globalization.CultureInfo.InvariantCulture
        let num (x: float) = x.ToString("G4", inv)
        let updates =
            [| yield compare "full gradient" g
               yield compare $"clipped by norm {num maxNorm}" (byNorm g)
               yield compare $"clipped by value {num maxValue}" (g.clamp((-maxValue).ToScalar(), maxValue.ToScalar()))
               for tau in taus do
                   let gTau = G.narrow(0L, 0L, int64 tau).sum(0L)
                   yield compare $"truncated at τ = {tau}" gTau
                   yield compare $"truncated at τ = {tau}, clipped by norm {num maxNorm}" (byNorm gTau) |]
        { Model = model
          Loss = report.Loss
          GradientNorm = gNorm
          LearningRate = learningRate
          MaxNorm = maxNorm
          MaxValue = maxValue
          Taus = Array.ofList taus
          Updates = updates
          Flow = report }
