/// The sensitivity analysis (Sensitivity.fs, GradientFlow.fs) against a direct computation from
/// autodiff: per-step c_t and b_t by autodiff (Bptt.jacobiansByAutodiff), every product
/// Π_{j=i+1..t} c_j formed explicitly (left-multiplying, the other association from the sweep's),
/// its norms and terms taken directly, the loss gradient by autograd through the whole unroll, and
/// truncated BPTT at every τ by autograd through re-runs that start from detached states.
/// Float64, distinct sizes (T ≠ B ≠ I ≠ H ≠ S), tolerance 1e-9 relative.
module SeqNets.Tests.GradientFlowTests

open System
open Expecto
open TorchSharp
open SeqNets
open SeqNets.Tests.Common

type Tensor = torch.Tensor

let private f64 = torch.float64
let private item (t: Tensor) = t.to_type(f64).item<float> ()
let private leaf (t: Tensor) = t.detach().clone().requires_grad_ true

/// |actual − expected| ≤ tol · max(|expected|, scale).
let private near (what: string) (tol: float) (scale: float) (actual: float) (expected: float) =
    let bound = tol * max (abs expected) scale
    if Double.IsNaN expected then
        if not (Double.IsNaN actual) then failtest $"{what}: expected NaN, got {actual:E6}"
    elif not (abs (actual - expected) <= bound) then
        failtest $"{what}: {actual:E12} vs reference {expected:E12} (|diff| {abs (actual - expected):E3} > {bound:E3})"

/// A loss that reads every component of every state (LSTM's memory cells included) nonlinearly:
/// L = 1/T Σ_t Σ_b ⟨r_{t,b}, tanh(s_t,b)⟩ + ½ ‖s_T‖² / B.
let private stateLoss (r: Tensor) (states: Tensor) =
    let T = states.shape[0] - 1L
    let s = states.narrow(0L, 1L, T) // [T; B; S]
    (r * s.tanh()).sum() / float T + states[-1L].square().sum() * (0.5 / float states.shape[1])

/// What the report must hold, computed directly.
type private Reference =
    { Products: Tensor[,] // [t−1, i−1]: Π_{j=i+1..t} c_j, [B; S; S]; null for i > t
      B: Tensor // b_t: [T; B; S; P]
      C: Tensor // c_t: [T; B; S; S]
      Delta: Tensor // ∂L/∂s_t direct: [T; B; S]
      Gradient: Tensor // ∂L/∂θ by autograd: [P]
      Truncated: Tensor[] // g_τ for τ = 1..T by autograd re-runs: [P] each
      Loss: float }

let private reference (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor) (loss: Tensor -> Tensor) =
    let T, B = int xs.shape[0], xs.shape[1]
    let S = int64 cell.StateSize
    let states = using (torch.no_grad ()) (fun _ -> Recurrence.unroll cell theta xs s0) // [T+1; B; S]
    let j = Bptt.jacobiansByAutodiff cell theta xs states
    let eye = torch.eye(S, dtype = f64).expand(B, S, S)
    let products = Array2D.create T T null
    for i in 1 .. T do
        let mutable m = eye
        products[i - 1, i - 1] <- m
        for t in i + 1 .. T do
            m <- j.State[int64 (t - 1)].matmul m // c_t Π_{j=i+1..t−1} c_j
            products[t - 1, i - 1] <- m
    let sl = leaf states
    let L = loss sl
    let delta = (Autodiff.grad [ L ] [ sl ]).Head.narrow(0L, 1L, int64 T) // [T; B; S]
    // The full gradient through the whole unroll.
    let th = leaf theta
    let full = (Autodiff.grad [ loss (Recurrence.unroll cell th xs s0) ] [ th ]).Head // [P]
    // g_τ = Σ_t δ_t ∂s_t/∂θ through the last τ steps only: re-run steps t−τ+1..t from s_{t−τ} detached.
    let truncated =
        Array.init T (fun n ->
            let tau = n + 1
            let mutable g = torch.zeros_like theta
            for t in 1 .. T do
                let start = max 0 (t - tau)
                let th = leaf theta
                let run = Recurrence.unroll cell th (xs.narrow(0L, int64 start, int64 (t - start))) (states[int64 start].detach ())
                let st = run[-1L] // s_t: [B; S]
                g <- g + (Autodiff.gradWith false false [ st ] [ th ] (Some [ delta[int64 (t - 1)] ])).Head
            g)
    { Products = products; B = j.Parameters; C = j.State; Delta = delta; Gradient = full; Truncated = truncated
      Loss = item (loss states) }

let private checkSpread (what: string) (actual: Spread) (expected: float list) =
    let a = Array.ofList expected
    Expect.equal actual.Count a.Length $"{what}: count"
    let mean = Array.average a
    near $"{what}: mean" exact 0.0 actual.Mean mean
    near $"{what}: min" exact 0.0 actual.Min (Array.min a)
    near $"{what}: max" exact 0.0 actual.Max (Array.max a)
    near $"{what}: geometric mean" exact 0.0 actual.GeometricMean (exp (Array.averageBy log a))
    let sd = sqrt (a |> Array.averageBy (fun v -> (v - mean) ** 2.0))
    near $"{what}: standard deviation" 1e-7 (abs mean) actual.StandardDeviation sd

/// Every number of the report against the direct computation.
let private checkReport (name: string) (options: SensitivityOptions) (cell: Cell) (theta: Tensor) (xs: Tensor) (s0: Tensor) (loss: Tensor -> Tensor) =
    use _ = torch.NewDisposeScope()
    let report = Sensitivity.analyse options name cell theta xs s0 loss
    let ref = reference cell theta xs s0 loss
    let T, B = int xs.shape[0], int xs.shape[1]
    let N = min T (defaultArg options.Lags T)
    Expect.equal report.Steps T "T"
    Expect.equal report.Rows B "B"
    Expect.equal report.StateSize cell.StateSize "S"
    Expect.equal report.ParameterCount cell.ParameterCount "P"
    let positions = [| for t in T .. -options.Stride .. 1 -> t |] |> Array.rev
    Expect.sequenceEqual report.Positions positions $"{name}: positions"
    near $"{name}: loss" exact 0.0 report.Loss ref.Loss
    let gNorm = item (ref.Gradient.norm ())
    near $"{name}: ‖∂L/∂θ‖" exact 0.0 report.GradientNorm gNorm
    // Per lag: the norms of the products and terms over every row and every position read.
    Expect.equal report.Lags.Length N $"{name}: lags measured"
    for k in 0 .. N - 1 do
        let spectral, frobenius, term =
            [ for t in positions do
                  let i = t - k
                  if i >= 1 then
                      let M = ref.Products[t - 1, i - 1] // [B; S; S]
                      let Mb = M.matmul ref.B[int64 (i - 1)] // [B; S; P]
                      for r in 0 .. B - 1 ->
                          item (torch.linalg.svdvals(M[int64 r])[0L]), item (M[int64 r].norm ()), item (Mb[int64 r].norm ()) ]
            |> List.unzip3
        let l = report.Lags[k]
        Expect.equal l.Lag k $"{name}: lag index"
        checkSpread $"{name}: ‖Π c_j‖₂ at lag {k}" l.Spectral spectral
        checkSpread $"{name}: ‖Π c_j‖_F at lag {k}" l.Frobenius frobenius
        checkSpread $"{name}: ‖(Π c_j) b_i‖_F at lag {k}" l.Term term
    // The heatmap: the geometric mean over rows of ‖Π c_j‖₂ where measured, NaN elsewhere.
    for t in 1 .. T do
        for i in 1 .. T do
            let expected =
                if i <= t && t - i < N && Array.contains t positions then
                    let M = ref.Products[t - 1, i - 1]
                    exp ([ for r in 0 .. B - 1 -> log (item (torch.linalg.svdvals(M[int64 r])[0L])) ] |> List.average)
                else nan
            near $"{name}: heatmap at t = {t}, i = {i}" exact 0.0 report.ProductNorms[t - 1, i - 1] expected
    // G_k = Σ_t δ_t (Π_{j=t−k+1..t} c_j) b_{t−k}, its norm; Σ_k G_k = ∂L/∂θ.
    let G =
        Array.init T (fun k ->
            [ for t in k + 1 .. T ->
                  let i = t - k
                  torch.einsum("bs,bsr,brp->p", ref.Delta[int64 (t - 1)], ref.Products[t - 1, i - 1], ref.B[int64 (i - 1)]) ]
            |> List.reduce (+))
    Expect.equal report.LossGradientByLag.Length T $"{name}: lags of the loss gradient"
    for k in 0 .. T - 1 do
        near $"{name}: ‖G_{k}‖" exact gNorm report.LossGradientByLag[k] (item (G[k].norm ()))
    close $"{name}: Σ_k G_k against autograd's ∂L/∂θ" exact (Array.reduce (+) G) ref.Gradient
    let Gs = Sensitivity.lossGradientByLag cell theta xs s0 loss // [T; P]
    close $"{name}: lossGradientByLag against the direct G_k" exact Gs (torch.stack(G, 0L))
    // Truncation at every τ, against autograd's truncated gradient.
    Expect.equal report.Truncation.Length T $"{name}: truncation points"
    for n in 0 .. T - 1 do
        let p = report.Truncation[n]
        let gTau = ref.Truncated[n]
        Expect.equal p.Tau (n + 1) $"{name}: τ"
        near $"{name}: ‖g_τ‖/‖g‖ at τ = {n + 1}" exact 1.0 p.KeptNorm (item (gTau.norm ()) / gNorm)
        near $"{name}: ‖g − g_τ‖/‖g‖ at τ = {n + 1}" exact 1.0 p.Discarded (item ((ref.Gradient - gTau).norm ()) / gNorm)
        near $"{name}: cos(g_τ, g) at τ = {n + 1}" exact 1.0 p.Cosine (item ((gTau * ref.Gradient).sum ()) / (item (gTau.norm ()) * gNorm))
    near $"{name}: nothing discarded at τ = T" exact 1.0 report.Truncation[T - 1].Discarded 0.0
    // The spectrum of c_t, averaged over rows.
    let k = min options.SingularValues cell.StateSize
    for t in 1 .. T do
        let sv = torch.linalg.svdvals ref.C[int64 (t - 1)] // [B; S]
        Expect.equal (report.Spectrum[t - 1].Length) k $"{name}: singular values at t = {t}"
        for r in 0 .. k - 1 do
            near $"{name}: σ{r + 1}(c_{t})" exact 0.0 (report.Spectrum[t - 1][r]) (item (sv.select(1L, int64 r).mean ()))

let private case (cell: Cell) (regime: Regime) (T: int) (B: int) (seed: int) =
    let g = generator seed
    let c = Verify.randomCase cell f64 regime T B g
    let r = torch.randn([| int64 T; int64 B; int64 cell.StateSize |], dtype = f64, generator = g)
    c.Theta, c.Inputs, c.InitialState, stateLoss r

let private analysed (name: string) (cell: Cell) (regime: Regime) (T: int) (B: int) (options: SensitivityOptions) =
    test name {
        let theta, xs, s0, loss = case cell regime T B 17
        checkReport name options cell theta xs s0 loss
    }

let private expectArgument (argument: string) (f: unit -> 'a) =
    match (try f () |> ignore; None with e -> Some e) with
    | Some(:? ArgumentException as e) -> Expect.equal e.ParamName argument $"the exception names {argument}: {e.Message}"
    | Some e -> failtest $"expected an ArgumentException naming {argument}, got {e.GetType().Name}: {e.Message}"
    | None -> failtest $"expected an ArgumentException naming {argument}, got none"

[<Tests>]
let tests =
    testSequenced <| testList "Gradient flow" [
        testList "against autodiff Jacobians" [
            // Sizes: T ≠ B ≠ I ≠ H ≠ S in every case.
            analysed "Elman (tanh), exploding: T = 7, B = 3, I = 4, H = 5" (Cells.Elman.create Cells.Tanh 4 5) Exploding 7 3 SensitivityOptions.Default
            analysed "Elman (tanh), vanishing: T = 8, B = 2, I = 3, H = 6" (Cells.Elman.create Cells.Tanh 3 6) Vanishing 8 2 SensitivityOptions.Default
            analysed "GRU (PyTorch form): T = 6, B = 2, I = 3, H = 5" (Cells.Gru.create Cells.PyTorch 3 5) Moderate 6 2 SensitivityOptions.Default
            analysed "GRU (lecture form), exploding: T = 7, B = 3, I = 2, H = 4" (Cells.Gru.create Cells.Lecture 2 4) Exploding 7 3 SensitivityOptions.Default
            analysed "LSTM: T = 7, B = 2, I = 3, H = 4 (S = 8)" (Cells.Lstm.create 3 4) Moderate 7 2 SensitivityOptions.Default
            analysed "2-layer stack GRU → LSTM: T = 6, B = 2, I = 3, H = 4, 5 (S = 14)"
                (Stack.create [ Cells.Gru.create Cells.PyTorch 3 4; Cells.Lstm.create 4 5 ]) Moderate 6 2 SensitivityOptions.Default
            analysed "LSTM with 4 lags, stride 3, 3 singular values: T = 9, B = 2, I = 3, H = 5 (S = 10)"
                (Cells.Lstm.create 3 5) Moderate 9 2 { Lags = Some 4; Stride = 3; SingularValues = 3 }
            analysed "2-layer Elman stack, lags beyond T, stride 2: T = 5, B = 3, I = 2, H = 4, 6 (S = 10)"
                (Stack.create [ Cells.Elman.create Cells.Tanh 2 4; Cells.Elman.create Cells.Tanh 4 6 ]) Exploding 5 3
                { Lags = Some 50; Stride = 2; SingularValues = 12 }
        ]
        testList "a user's cell" [
            // No hand-derived Jacobians and no θ per row: autodiff's local c_t, b_t and the contraction with b_i.
            let userCell =
                let I, H = 3L, 5L
                let L = ParameterLayout [ "W", [ H; I ]; "U", [ H; H ]; "b", [ H ] ]
                Cell.custom "user-elman" 3 5 5 L (fun theta x h ->
                    (Tensors.linear (L.View(theta, "W")) x + Tensors.linear (L.View(theta, "U")) h + L.View(theta, "b")).tanh ())
            analysed "user-defined Elman-like cell: T = 6, B = 2, I = 3, H = 5" userCell Exploding 6 2 SensitivityOptions.Default
        ]
        testList "the readout loss" [
            test "Σ_k G_k of the lecture's readout loss is the closed form's and autograd's ∂L/∂θ (Elman, GRU, LSTM)" {
                use _ = torch.NewDisposeScope()
                for cell in [ Cells.Elman.create Cells.Tanh 3 5; Cells.Gru.create Cells.PyTorch 3 5; Cells.Lstm.create 3 5 ] do
                    let g = generator 5
                    let c = Verify.randomCase cell f64 Moderate 8 2 g
                    let output = OutputLayer.create cell.HiddenSize 7
                    let wo = OutputLayer.initParameters output f64 g
                    let targets = torch.randint(7L, [| 8L; 2L |], generator = g)
                    let loss = Sensitivity.readoutLoss cell output CrossEntropy wo targets
                    let G = Sensitivity.lossGradientByLag cell c.Theta c.Inputs c.InitialState loss // [T; P]
                    let gt, _, _ = Autodiff.lossGradient cell output CrossEntropy c.Theta wo c.Inputs c.InitialState targets
                    close $"{cell.Name}: Σ_k G_k against autograd" exact (G.sum(0L)) gt
            }
        ]
        testList "networks" [
            let networkCase (head: Head) =
                // Vectors of I = 3 → GRU (H = 4) → LSTM (H = 5) → O = 2; T = 6, B = 7.
                let spec =
                    { Input = InputLayer.Vectors 3
                      Layers = [ Layer.recurrent (Cells.Gru.create Cells.PyTorch 3 4); Layer.recurrent (Cells.Lstm.create 4 5) ]
                      Dropout = 0.0; Head = head; Output = 2; Loss = MeanSquared }
                let net = new Network(spec, f64, 11UL)
                let g = generator 3
                let targets =
                    match head with
                    | PerStep -> torch.randn([| 6L; 7L; 2L |], dtype = f64, generator = g)
                    | _ -> torch.randn([| 7L; 2L |], dtype = f64, generator = g)
                let batch = { Inputs = torch.randn([| 6L; 7L; 3L |], dtype = f64, generator = g); Lengths = None; Targets = targets; TargetLengths = None }
                net, batch
            for head in [ PerStep; ManyToOne Last; ManyToOne Mean ] do
                test $"a 2-layer network ({head}): the head's loss, and Σ_k G_k = autograd's gradient of the recurrent layers" {
                    use _ = torch.NewDisposeScope()
                    let net, batch = networkCase head
                    use net = net
                    let report = GradientFlow.ofNetwork SensitivityOptions.Default net batch
                    let L, _ = Heads.loss net Step batch None None false
                    near "loss" exact 0.0 report.Loss (item L)
                    let gAll = (Autodiff.grad [ L ] [ net.Parameters ]).Head
                    let blocks = [ for b in net.Layout.Blocks do if b.Name.StartsWith "l0." || b.Name.StartsWith "l1." then yield gAll.narrow(0L, b.Offset, b.Count) ]
                    let g = torch.cat(Array.ofList blocks, 0L)
                    near "‖∂L/∂θ‖ of the recurrent layers" exact 0.0 report.GradientNorm (item (g.norm ()))
                    near "τ = T keeps the whole gradient" exact 1.0 report.Truncation[5].KeptNorm 1.0
                }
        ]
        testList "clipping study" [
            test "clipping by norm scales every lag alike and keeps the direction; truncation's numbers are the report's" {
                use _ = torch.NewDisposeScope()
                let cell = Cells.Elman.create Cells.Tanh 3 5
                let theta, xs, s0, loss = case cell Exploding 9 2 4
                let study = GradientFlow.clippingStudy SensitivityOptions.Default "" cell theta xs s0 loss 0.01 0.5 0.1 [ 2; 5 ]
                let full = study.Updates[0]
                near "full gradient's norm" exact 0.0 full.Norm study.GradientNorm
                near "full gradient's cosine" exact 1.0 full.Cosine 1.0
                let byNorm = study.Updates[1]
                near "clipped norm" exact 0.0 byNorm.Norm (min 0.5 study.GradientNorm)
                near "clipped cosine" exact 1.0 byNorm.Cosine 1.0
                let t2 = study.Updates |> Array.find (fun u -> u.Update = "truncated at τ = 2")
                near "truncated at 2: relative norm" exact 1.0 t2.RelativeNorm study.Flow.Truncation[1].KeptNorm
                near "truncated at 2: cosine" exact 1.0 t2.Cosine study.Flow.Truncation[1].Cosine
                let lossAfter =
                    use _ = torch.no_grad ()
                    let g = (Sensitivity.lossGradientByLag cell theta xs s0 loss).sum(0L)
                    item (loss (Recurrence.unroll cell (theta - g * 0.01) xs s0))
                near "loss after a full step" exact 0.0 full.LossAfterStep lossAfter
            }
        ]
        testList "bad input names the argument" [
            let cell = Cells.Gru.create Cells.PyTorch 3 4
            let theta, xs, s0, loss = case cell Moderate 5 2 1
            let run (options: SensitivityOptions) (xs: Tensor) (s0: Tensor) (loss: Tensor -> Tensor) () =
                Sensitivity.analyse options "" cell theta xs s0 loss
            test "lags < 1" { expectArgument "Lags" (run { SensitivityOptions.Default with Lags = Some 0 } xs s0 loss) }
            test "stride < 1" { expectArgument "Stride" (run { SensitivityOptions.Default with Stride = 0 } xs s0 loss) }
            test "negative singular values" { expectArgument "SingularValues" (run { SensitivityOptions.Default with SingularValues = -1 } xs s0 loss) }
            test "an empty batch" { expectArgument "xs" (run SensitivityOptions.Default (torch.zeros([| 5L; 0L; 3L |], dtype = f64)) s0 loss) }
            test "no time steps" { expectArgument "xs" (run SensitivityOptions.Default (torch.zeros([| 0L; 2L; 3L |], dtype = f64)) s0 loss) }
            test "an input of the wrong width" { expectArgument "xs" (run SensitivityOptions.Default (torch.zeros([| 5L; 2L; 6L |], dtype = f64)) s0 loss) }
            test "an initial state of the wrong size" { expectArgument "s0" (run SensitivityOptions.Default xs (torch.zeros([| 2L; 7L |], dtype = f64)) loss) }
            test "a null initial state" { expectArgument "s0" (run SensitivityOptions.Default xs null loss) }
            test "a null loss" { expectArgument "loss" (run SensitivityOptions.Default xs s0 (Unchecked.defaultof<_>)) }
            test "a loss that is not a scalar" { expectArgument "loss" (run SensitivityOptions.Default xs s0 (fun s -> s.sum(0L))) }
            test "θ of the wrong size" {
                expectArgument "theta" (fun () -> Sensitivity.analyse SensitivityOptions.Default "" cell (torch.zeros([| 3L |], dtype = f64)) xs s0 loss)
            }
            test "a truncation length outside [1, T]" {
                expectArgument "taus" (fun () -> GradientFlow.clippingStudy SensitivityOptions.Default "" cell theta xs s0 loss 0.1 1.0 1.0 [ 6 ])
            }
            test "a non-positive clipping threshold" {
                expectArgument "maxNorm" (fun () -> GradientFlow.clippingStudy SensitivityOptions.Default "" cell theta xs s0 loss 0.1 0.0 1.0 [ 2 ])
            }
            test "a network with a bidirectional layer" {
                let spec =
                    { Input = InputLayer.Vectors 3; Layers = [ Layer.bidirectional (Cells.Elman.create Cells.Tanh 3 4) ]
                      Dropout = 0.0; Head = PerStep; Output = 2; Loss = MeanSquared }
                use net = new Network(spec, f64, 1UL)
                let batch = { Inputs = torch.zeros([| 5L; 2L; 3L |], dtype = f64); Lengths = None; Targets = torch.zeros([| 5L; 2L; 2L |], dtype = f64); TargetLengths = None }
                expectArgument "net" (fun () -> GradientFlow.ofNetwork SensitivityOptions.Default net batch)
            }
            test "long-range: an unknown task, no lags, a length too short" {
                expectArgument "Task" (fun () -> LongRange.run { LongRangeOptions.Default with Task = "sorting" })
                expectArgument "Lags" (fun () -> LongRange.run { LongRangeOptions.Default with Lags = [] })
                expectArgument "Lags" (fun () -> LongRange.run { LongRangeOptions.Default with Lags = [ 1 ] })
                expectArgument "steps" (fun () -> LongRange.addingBatch f64 1UL 3 1)
            }
        ]
        testList "long-range tasks" [
            test "the adding problem: two markers, one in each half, the target their sum; the baseline of predicting 1 is 1/6" {
                let b = LongRange.addingBatch f64 7UL 2000 12
                let x = b.Inputs // [T; B; 2]
                let marks = x.select(2L, 1L) // [T; B]
                Expect.isTrue (item (marks.sum(0L).eq(2.0.ToScalar()).all().to_type f64) = 1.0) "two markers per row"
                Expect.isTrue (item (marks.narrow(0L, 0L, 6L).sum(0L).eq(1.0.ToScalar()).all().to_type f64) = 1.0) "one marker in the first half"
                let sums = (x.select(2L, 0L) * marks).sum(0L) // [B]
                close "targets are the marked sums" exact sums (b.Targets.select(1L, 0L))
                let mse = item ((b.Targets - 1.0).square().mean ())
                near "predicting 1: MSE ≈ 1/6" 0.1 0.0 mse (1.0 / 6.0)
            }
            test "the copy task: ten symbols recalled after the delimiter at delay T" {
                let T = 13
                let b = LongRange.copyBatch 3UL 4 T
                Expect.sequenceEqual b.Inputs.shape [| int64 (T + 20); 4L |] "inputs [T + 20; B]"
                let x, y = b.Inputs, b.Targets
                close "recalled symbols" 0.0 (y.narrow(0L, int64 (T + 10), 10L).to_type f64) (x.narrow(0L, 0L, 10L).to_type f64)
                Expect.isTrue (item (x[int64 (T + 9)].eq(9L.ToScalar()).all().to_type f64) = 1.0) "the delimiter at T + 9"
                Expect.equal (item (y.narrow(0L, 0L, int64 (T + 10)).abs().sum().to_type f64)) 0.0 "blanks before the recall"
                near "baseline" exact 0.0 (LongRange.baseline "copy" T) (10.0 * log 8.0 / float (T + 20))
            }
        ]
    ]
