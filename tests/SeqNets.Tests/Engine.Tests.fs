/// The training engine on the derivation: its outputs and its gradients with respect to θ, px
/// and s_0 against autograd through the cells' projected transitions step by step, under full,
/// truncated and randomized boundary weights and masks, in float64 and float32; and the derived path
/// of networks (stacked, mixed, bidirectional, padded) against the step and fused paths.
module SeqNets.Tests.EngineTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open SeqNets
open SeqNets.Tests.Common

/// The specification: the projected transition stepped over px, the gradient into step t scaled by
/// w_t, rows with m_t = 0 keeping their state. Returns hs [T; B; H] and s_T [B; S].
let reference (cell: Cell) (theta: torch.Tensor) (px: torch.Tensor) (s0: torch.Tensor) (weights: float[]) (mask: torch.Tensor option) =
    let step = cell.ProjectedTransition.Value theta
    let pxs = px.unbind 0L
    let mutable s = s0
    let outs =
        [| for t in 0 .. pxs.Length - 1 do
               let w = weights[t]
               let sHat = if w = 1.0 then s elif w = 0.0 then s.detach () else let d = s.detach () in d + (s - d) * w
               let sNew = step pxs[t] sHat // [B; S]
               s <-
                   match mask with
                   | None -> sNew
                   | Some m -> let mt = m[int64 t].unsqueeze 1L in mt * sNew + (1.0 - mt) * sHat
               yield s |]
    Cell.output cell (torch.stack(outs, 0L)), s

/// How the boundary weights of a case are drawn.
type WeightsKind =
    | AllOnes
    | Truncation
    | RandomizedWeights

/// Training cuts the gradient into s_0 (w_1 = 0); here w_1 is also 1 or 0.75 in two cases of three,
/// so that ∂L/∂s_0 is checked under every kind of weights.
let private weightsFor kind (s: CaseSpec) =
    let w =
        match kind with
        | AllOnes -> Array.create s.Steps 1.0
        | Truncation -> BpttStrategy.boundaryWeights (Truncated(1 + s.Seed % 7)) s.Steps (SplitMix 0UL)
        | RandomizedWeights -> BpttStrategy.boundaryWeights (Randomized 3.0) s.Steps (SplitMix(uint64 s.Seed))
    if kind <> AllOnes then w[0] <- [| 0.0; 1.0; 0.75 |][s.Seed % 3]
    w

/// A random 0/1 mask [T; B] with most entries 1 and at least one 0 (for T·B ≥ 2).
let private maskFor (dtype: torch.ScalarType) (s: CaseSpec) =
    let g = generator (s.Seed + 1)
    let m = (torch.rand([| int64 s.Steps; int64 s.Batch |], generator = g).gt (0.3.ToScalar())).to_type dtype
    if s.Steps * s.Batch >= 2 then m[int64 (s.Seed % s.Steps), int64 (s.Seed % s.Batch)] <- torch.tensor(0.0, dtype = dtype)
    m

/// The gradients (θ, px, s_0) of L = Σ hs ⊙ R + Σ s_T ⊙ Q through one route, px and s_0 leaves.
let private gradients (run: torch.Tensor -> torch.Tensor -> torch.Tensor -> torch.Tensor * torch.Tensor)
                      (theta: torch.Tensor) (px: torch.Tensor) (s0: torch.Tensor) (R: torch.Tensor) (Q: torch.Tensor) =
    let theta, px, s0 = theta.detach().requires_grad_ true, px.detach().requires_grad_ true, s0.detach().requires_grad_ true
    let hs, sT = run theta px s0
    let loss = (hs * R).sum () + (sT * Q).sum ()
    loss.backward ()
    let grad (t: torch.Tensor) = if isNull t.grad then torch.zeros_like t else t.grad.clone ()
    hs.detach (), sT.detach (), grad theta, grad px, grad s0

/// Engine against the reference on one case: outputs and the three gradients.
let private agree (dtype: torch.ScalarType) (tol: float) (weightsKind: WeightsKind) (masked: bool) (name: string) (s: CaseSpec) =
    use _ = torch.NewDisposeScope()
    let cell = cellNamed name s
    let g = generator s.Seed
    let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch g
    let theta = case.Theta.to_type dtype
    let px = (use _ = torch.no_grad () in cell.InputProjection.Value theta (case.Inputs.to_type dtype)) // [T; B; G]
    let s0 = case.InitialState.to_type dtype
    let weights = weightsFor weightsKind s
    let mask = if masked then Some(maskFor dtype s) else None
    let H = int64 cell.HiddenSize
    let R = torch.randn([| int64 s.Steps; int64 s.Batch; H |], dtype = torch.float64, generator = g).to_type dtype
    let Q = torch.randn([| int64 s.Batch; int64 cell.StateSize |], dtype = torch.float64, generator = g).to_type dtype
    // Both forms: unrollOnce writes some gradients over the stored gates.
    let engine = if s.Seed % 2 = 0 then Engine.unroll else Engine.unrollOnce
    let hsE, sTE, dThetaE, dPxE, dS0E = gradients (fun th p s -> engine cell th p s weights mask) theta px s0 R Q
    let hsR, sTR, dThetaR, dPxR, dS0R = gradients (fun th p s -> reference cell th p s weights mask) theta px s0 R Q
    let what = $"{name}, {s}, weights {weightsKind}, mask {masked}"
    close $"hs, {what}" tol hsE hsR
    close $"s_T, {what}" tol sTE sTR
    close $"∂L/∂θ, {what}" tol dThetaE dThetaR
    close $"∂L/∂px, {what}" tol dPxE dPxR
    if weights[0] <> 0.0 then close $"∂L/∂s_0, {what}" tol dS0E dS0R
    else Expect.equal (Tensors.maxAbs dS0E) 0.0 $"∂L/∂s_0 is cut by w_1 = 0, {what}"

/// The multiplicative RNN's exploding regime is tested on its own (below): chaotic trajectories.
let private notChaotic (name: string) (s: CaseSpec) =
    if name = "mrnn" && s.Regime = Exploding then { s with Regime = Moderate } else s

/// θ's gradient when px = InputProjection θ x is computed inside the graph: the engine's unroll
/// composes with autograd as the reference's does.
let private composes (tol: float) (name: string) (s: CaseSpec) =
    use _ = torch.NewDisposeScope()
    let cell = cellNamed name s
    let g = generator s.Seed
    let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch g
    let weights = weightsFor Truncation s
    let R = torch.randn([| int64 s.Steps; int64 s.Batch; int64 cell.HiddenSize |], dtype = torch.float64, generator = g)
    let run (unroll: torch.Tensor -> torch.Tensor -> torch.Tensor -> torch.Tensor * torch.Tensor) =
        let theta = case.Theta.detach().requires_grad_ true
        let hs, _ = unroll theta (cell.InputProjection.Value theta case.Inputs) case.InitialState
        (hs.tanh () * R).sum().backward ()
        theta.grad.clone ()
    close $"{name}, {s}" tol
        (run (fun th p s0 -> Engine.unroll cell th p s0 weights None))
        (run (fun th p s0 -> reference cell th p s0 weights None))

/// Larger sizes than the common cases (SIMD lanes full and partial, several vectors per row).
let private wideSpecs =
    gen {
        let! b = Gen.choose (2, 7)
        let! i = Gen.choose (3, 11)
        let! h = Gen.choose (12, 37)
        let! t = Gen.choose (2, 30) |> Gen.filter (fun t -> t <> b && t <> i && t <> h && t <> 2 * h && t <> h + 1)
        let! seed = Gen.choose (0, Int32.MaxValue)
        return { Steps = t; Batch = b; Input = i; Hidden = h; Regime = Moderate; Seed = seed }
    }

let private wideProperty name body =
    testPropertyWithConfig { config with maxTest = 30 } name (Prop.forAll (Arb.fromGen wideSpecs) body)

let private modelConfig kind V H L = { Kind = kind; VocabularySize = V; HiddenSize = H; Layers = L }

let private builtInKinds = [ ElmanTanh; ElmanRelu; GruPyTorch; GruLecture; Lstm; MultiplicativeRnn 3 ]

/// ∂L/∂(all parameters) of a batch on a path from given states under given weights.
let private networkGradient (net: Network) path (batch: Batch) (states: torch.Tensor[] option) (weights: float[] option) =
    Training.gradient net path batch states weights |> ignore
    net.Parameters.grad.detach().clone ()

/// A random network: 1–3 layers of built-in cells (one family or mixed, hidden sizes H, H+1, …),
/// one direction or both (concatenated or summed), every row real or random lengths.
type EngineNetSpec =
    { Case: CaseSpec
      Kinds: CellKind list
      Bidirectional: Merge option
      Lengths: int64[] option }
    override s.ToString() =
        let lengths = match s.Lengths with Some l -> String.Join(",", l) | None -> "all"
        let kinds = String.Join(", ", s.Kinds)
        $"{s.Case}; layers [{kinds}]; bidirectional {s.Bidirectional}; lengths {lengths}"

let private engineNetSpecs =
    gen {
        let! case = caseSpecs |> Gen.filter (fun c -> c.Steps >= 2 && c.Steps <= 16)
        let! layers = Gen.choose (1, 3)
        let! chosen = Gen.listOfLength layers (Gen.elements builtInKinds)
        let! same = Gen.elements [ true; false ]
        let! bi = Gen.elements [ None; None; Some Concat; Some Sum ]
        let! padded = Gen.elements [ true; false ]
        let! lengths = Gen.arrayOfLength case.Batch (Gen.choose (1, case.Steps))
        return
            { Case = case; Kinds = (if same then List.replicate layers chosen.Head else chosen); Bidirectional = bi
              Lengths = if padded then Some(lengths |> Array.map int64) else None }
    }

let private netProperty name (body: EngineNetSpec -> unit) =
    testPropertyWithConfig config name (Prop.forAll (Arb.fromGen engineNetSpecs) body)

/// A PerStep regression network of the spec's layers over vectors of width I.
let private networkOf (dtype: torch.ScalarType) (s: EngineNetSpec) =
    let direction = match s.Bidirectional with None -> Forward | Some m -> Bidirectional m
    let mutable width = s.Case.Input
    let layers =
        s.Kinds |> List.mapi (fun l k ->
            let layer = { Cell = CellKind.cell k width (s.Case.Hidden + l); Direction = direction }
            width <- layer.OutputWidth
            layer)
    new Network({ Input = InputLayer.Vectors s.Case.Input; Layers = layers; Dropout = 0.0; Head = PerStep; Output = 2; Loss = MeanSquared },
                dtype, uint64 s.Case.Seed)

/// Inputs [T; B; I], targets [T; B; 2] and random initial states for a network.
let private batchOf (dtype: torch.ScalarType) (net: Network) (s: EngineNetSpec) =
    let g = generator s.Case.Seed
    let T, B = int64 s.Case.Steps, int64 s.Case.Batch
    let x = torch.randn([| T; B; int64 s.Case.Input |], dtype = torch.float64, generator = g).to_type dtype
    let y = torch.randn([| T; B; 2L |], dtype = torch.float64, generator = g).to_type dtype
    let states = net.Cells |> Array.map (fun c -> (torch.randn([| B; int64 c.StateSize |], dtype = torch.float64, generator = g) * 0.5).to_type dtype)
    { Inputs = x; Lengths = s.Lengths; Targets = y; TargetLengths = None }, states

/// The derived path against the step path on one network: outputs, final states, ∂L/∂θ.
let private pathsAgree (dtype: torch.ScalarType) (tol: float) (s: EngineNetSpec) (weights: float[] option) =
    use _ = torch.NewDisposeScope()
    use net = networkOf dtype s
    Expect.isTrue net.HasDerivedPath $"built-in cells only: {s}"
    let batch, states = batchOf dtype net s
    let lengths = s.Lengths |> Option.toArray |> Array.tryHead
    let run path training = net.Forward(path, batch.Inputs, states, ?weights = weights, ?lengths = lengths, training = training)
    for training in [ false; true ] do
        let yd, fd = run Derived training
        let ys, fs = run Step training
        close $"outputs (training {training}), {s}" tol yd ys
        Array.iteri2 (fun k a b -> close $"final state {k} (training {training}), {s}" tol a b) fd fs
    close $"∂L/∂θ, {s}, weights {weights}" tol (networkGradient net Derived batch (Some states) weights) (networkGradient net Step batch (Some states) weights)

[<Tests>]
let tests =
    testList "Engine" [
        testList "float64: hs, s_T and ∂L/∂θ, ∂L/∂px, ∂L/∂s_0 equal autograd's through the step path (1e-12)" [
            for name in cellNames do
                yield property $"{name}: full BPTT" (notChaotic name >> agree torch.float64 1e-12 AllOnes false name)
                yield property $"{name}: truncated BPTT's weights" (notChaotic name >> agree torch.float64 1e-12 Truncation false name)
                yield property $"{name}: randomized truncation's weights" (notChaotic name >> agree torch.float64 1e-12 RandomizedWeights false name)
                yield property $"{name}: masked rows, randomized weights" (notChaotic name >> agree torch.float64 1e-12 RandomizedWeights true name)
            // The multiplicative RNN with θ scaled by 3 is chaotic: two evaluations of the same
            // equations that differ by one rounding (libtorch's tanh and addmm against the engine's)
            // drift apart by about 1e-9 relative over 40 steps, in hs before any gradient (200 cases
            // at T = 40 measured up to 1.2e-9).
            yield property "mrnn, exploding regime (chaotic trajectories): 1e-8" (fun s ->
                agree torch.float64 1e-8 RandomizedWeights true "mrnn" { s with Regime = Exploding })
        ]

        // In the exploding regime two float32 routes differ by more than their rounding (products
        // of c_t amplify it); there each is compared with float64 instead.
        testList "float32: the same, to 1e-5 relative (vanishing and moderate regimes)" [
            for name in cellNames ->
                property $"{name}: masked rows, randomized weights" (fun s ->
                    agree torch.float32 1e-5 RandomizedWeights true name { s with Regime = (if s.Regime = Exploding then Moderate else s.Regime) })
        ]

        testList "float32, exploding regime: ∂L/∂θ as accurate as autograd's in float32 (both against float64)" [
            // Not the multiplicative RNN: its exploding trajectories are chaotic, and both float32
            // routes are then off float64 by up to 100% (see above).
            for name in cellNames |> List.filter ((<>) "mrnn") ->
                property $"{name}" (fun s ->
                    use _ = torch.NewDisposeScope()
                    let s = { s with Regime = Exploding }
                    let cell = cellNamed name s
                    let g = generator s.Seed
                    let case = Verify.randomCase cell torch.float64 s.Regime s.Steps s.Batch g
                    let weights = weightsFor RandomizedWeights s
                    let R = torch.randn([| int64 s.Steps; int64 s.Batch; int64 cell.HiddenSize |], dtype = torch.float64, generator = g)
                    let Q = torch.randn([| int64 s.Batch; int64 cell.StateSize |], dtype = torch.float64, generator = g)
                    let dTheta dtype run =
                        let theta = case.Theta.to_type dtype
                        let px = (use _ = torch.no_grad () in cell.InputProjection.Value theta (case.Inputs.to_type dtype))
                        let _, _, d, _, _ = gradients run theta px (case.InitialState.to_type dtype) (R.to_type dtype) (Q.to_type dtype)
                        d.to_type torch.float64
                    let engine th p s0 = Engine.unroll cell th p s0 weights None
                    let stepwise th p s0 = reference cell th p s0 weights None
                    let exact64 = dTheta torch.float64 stepwise
                    let errEngine = Tensors.relativeError (dTheta torch.float32 engine) exact64
                    let errAutograd = Tensors.relativeError (dTheta torch.float32 stepwise) exact64
                    if not (errEngine <= max 1e-5 (4.0 * errAutograd)) then
                        failtest $"{name}, {s}: float32 engine off float64 by {errEngine:E2}, float32 autograd by {errAutograd:E2}")
        ]

        testList "wider layers (full and partial SIMD vectors)" [
            for name in cellNames do
                yield wideProperty $"{name}: float64" (agree torch.float64 1e-12 RandomizedWeights true name)
                yield wideProperty $"{name}: float32" (agree torch.float32 1e-5 Truncation true name)
        ]

        testList "composes through autograd: px = InputProjection θ x, θ's gradient from both" [
            for name in cellNames do
                yield property $"{name}" (notChaotic name >> composes 1e-12 name)
            // Two unrolls of one chaotic trajectory (see the float64 list above): 4.1e-12 was seen.
            yield property "mrnn, exploding regime (chaotic trajectories): 1e-8" (fun s ->
                composes 1e-8 "mrnn" { s with Regime = Exploding })
        ]

        testList "on networks: the derived path's ∂L/∂θ equals autograd's through the step path" [
            yield netProperty "float64 (1e-12): stacked, mixed, bidirectional, padded, from random states" (fun s ->
                pathsAgree torch.float64 1e-12 s None)
            yield netProperty "float32 (1e-5 relative): the same" (fun s ->
                pathsAgree torch.float32 1e-5 { s with Case = { s.Case with Regime = Moderate } } None)
            yield netProperty "float64: truncated BPTT's weights, one direction, padded or not" (fun s ->
                let s = { s with Bidirectional = None }
                let w = BpttStrategy.boundaryWeights (Truncated(1 + s.Case.Seed % 5)) s.Case.Steps (SplitMix 0UL)
                w[0] <- [| 0.0; 1.0; 0.5 |][s.Case.Seed % 3]
                pathsAgree torch.float64 1e-12 s (Some w))
            yield netProperty "float64: randomized truncation's weights, one direction, padded or not" (fun s ->
                let s = { s with Bidirectional = None }
                let w = BpttStrategy.boundaryWeights (Randomized 3.0) s.Case.Steps (SplitMix(uint64 s.Case.Seed))
                w[0] <- [| 0.0; 1.0; 0.75 |][s.Case.Seed % 3]
                pathsAgree torch.float64 1e-12 s (Some w))
            yield netProperty "a bidirectional layer: gradient weight on s_0 only" (fun s ->
                let s = { s with Bidirectional = Some(if s.Case.Seed % 2 = 0 then Concat else Sum) }
                let w = Array.create s.Case.Steps 1.0
                w[0] <- 0.5
                pathsAgree torch.float64 1e-12 s (Some w))
            for kind in builtInKinds do
              yield property $"{kind}, two layers, one-hot characters (the projection table), randomized weights" (fun s ->
                    use _ = torch.NewDisposeScope()
                    use model = CharModel.create (modelConfig kind s.Input s.Hidden 2) torch.float64 (uint64 s.Seed)
                    let g = generator s.Seed
                    let V = int64 s.Input
                    let inputs = torch.randint(V, [| int64 s.Steps; int64 s.Batch |], generator = g)
                    let targets = torch.randint(V, [| int64 s.Steps; int64 s.Batch |], generator = g)
                    let states = model.Cells |> Array.map (fun c -> torch.randn([| int64 s.Batch; int64 c.StateSize |], dtype = torch.float64, generator = g) * 0.5)
                    let weights = BpttStrategy.boundaryWeights (Randomized 4.0) s.Steps (SplitMix(uint64 s.Seed))
                    let batch = { Inputs = inputs; Lengths = None; Targets = targets; TargetLengths = None }
                    close $"{kind}, {s}" 1e-12 (networkGradient model Derived batch (Some states) (Some weights)) (networkGradient model Step batch (Some states) (Some weights)))
            yield! [
                for kind in [ ElmanTanh; ElmanRelu; GruPyTorch; Lstm ] ->
                    property $"{kind}: the derived path against libtorch's fused kernels (cross-check)" (fun s ->
                        use _ = torch.NewDisposeScope()
                        use model = CharModel.create (modelConfig kind s.Input s.Hidden 1) torch.float64 (uint64 s.Seed)
                        let g = generator s.Seed
                        let V = int64 s.Input
                        let inputs = torch.randint(V, [| int64 s.Steps; int64 s.Batch |], generator = g)
                        let targets = torch.randint(V, [| int64 s.Steps; int64 s.Batch |], generator = g)
                        let s0 = [| torch.randn([| int64 s.Batch; int64 model.Cells[0].StateSize |], dtype = torch.float64, generator = g) * 0.5 |]
                        let weights = BpttStrategy.boundaryWeights (Truncated(1 + s.Seed % 6)) s.Steps (SplitMix 0UL)
                        let batch = { Inputs = inputs; Lengths = None; Targets = targets; TargetLengths = None }
                        close $"{kind}, {s}" 1e-10 (networkGradient model Derived batch (Some s0) (Some weights)) (networkGradient model Fused batch (Some s0) (Some weights)))
            ]
        ]

        testList "training on the derived path" [
            for strategy in [ Full; Truncated 3; Randomized 3.0 ] ->
                test $"{strategy}: ten Adam steps on the derived path give the step path's parameters" {
                    use _ = torch.NewDisposeScope()
                    let ids = Array.init 400 (fun k -> int64 ((k * 7 + k / 5) % 6))
                    let train path =
                        let net = CharModel.create (modelConfig GruLecture 6 11 2) torch.float64 5UL
                        use trainer = new Trainer(net, ids, { TrainingConfig.Default with Batch = 3; SequenceLength = 9; Strategy = strategy; Path = Some path })
                        Expect.equal trainer.Path path "the path asked for"
                        for _ in 1 .. 10 do trainer.Step() |> ignore
                        net
                    use derived = train Derived
                    use step = train Step
                    close $"{strategy}" 1e-10 (derived.Parameters.detach ()) (step.Parameters.detach ())
                }
        ]

        testList "networks the derived path refuses" [
            let withMgu () =
                let layout = ParameterLayout [ "U", [ 6L; 6L ]; "W", [ 6L; 5L ] ]
                let mine = Cell.custom "mine" 5 6 6 layout (fun theta x h -> (Tensors.linear (layout.View(theta, "W")) x + Tensors.linear (layout.View(theta, "U")) h).tanh ())
                new Network({ Input = InputLayer.Vectors 4; Layers = [ { Cell = Cells.Lstm.create 4 5; Direction = Forward }; { Cell = mine; Direction = Forward } ]
                              Dropout = 0.0; Head = PerStep; Output = 2; Loss = MeanSquared }, torch.float64, 3UL)
            yield test "a layer of a user-defined cell: HasDerivedPath is false, Forward is an ArgumentException naming path" {
                use _ = torch.NewDisposeScope()
                use net = withMgu ()
                Expect.isFalse net.HasDerivedPath "a user-defined cell"
                let e = Expect.throwsC (fun () -> net.Forward(Derived, torch.zeros([| 3L; 2L; 4L |], dtype = torch.float64), net.ZeroState 2) |> ignore) id
                Expect.isTrue (e :? ArgumentException) $"ArgumentException, got {e.GetType().Name}"
                Expect.equal (e :?> ArgumentException).ParamName "path" "names the argument"
                Expect.stringContains e.Message "mine" "names the cell"
            }
            yield test "a trainer asked for the derived path on such a network is an ArgumentException naming Path" {
                use _ = torch.NewDisposeScope()
                use net = withMgu ()
                let source = GeneratedBatches(2, 2, fun _ -> { Inputs = torch.zeros([| 3L; 2L; 4L |], dtype = torch.float64); Lengths = None; Targets = torch.zeros([| 3L; 2L; 2L |], dtype = torch.float64); TargetLengths = None })
                let e = Expect.throwsC (fun () -> new Trainer(net, source, { TrainingConfig.Default with Path = Some Derived }) |> ignore) id
                Expect.isTrue (e :? ArgumentException) $"ArgumentException, got {e.GetType().Name}"
                Expect.equal (e :?> ArgumentException).ParamName "Path" "names the argument"
            }
        ]

        test "the vector exp is within a few units in the last place of Math.Exp, and NaN stays NaN" {
            let xs = [| for i in -8000 .. 8000 -> float i / 100.0 |]
            let rel e a = abs (a - e) / e
            let e32 (x: float) = float (EngineKernels.exp32 (Numerics.Vector<float32>(float32 x))).[0]
            let e64 (x: float) = (EngineKernels.exp64 (Numerics.Vector<float>(x))).[0]
            let worst32 = xs |> Array.filter (fun x -> abs x < 87.0) |> Array.map (fun x -> rel (Math.Exp(float (float32 x))) (e32 x)) |> Array.max
            let worst64 = xs |> Array.map (fun x -> rel (Math.Exp x) (e64 x)) |> Array.max
            Expect.isLessThan worst32 (4.0 * 6e-8) $"float32: worst relative error {worst32:E2}"
            Expect.isLessThan worst64 (8.0 * 1.1e-16) $"float64: worst relative error {worst64:E2}"
            Expect.isTrue (Single.IsNaN((EngineKernels.exp32 (Numerics.Vector<float32>(nanf))).[0])) "float32 NaN"
            Expect.isTrue (Double.IsNaN((EngineKernels.exp64 (Numerics.Vector<float>(nan))).[0])) "float64 NaN"
        }

        test "the vector tanh is within a few units in the last place of Math.Tanh, near 0 too" {
            let xs = [| for i in -4000 .. 4000 -> float i / 200.0 |] |> Array.append [| 1e-30; -1e-8; 3e-5; 0.2499999; 0.25; 0.3999999; 0.4 |]
            let worst32, worst64 =
                xs |> Array.fold (fun (w32, w64) x ->
                    let t32 = (EngineKernels.tanh32 (Numerics.Vector<float32>(float32 x)))[0]
                    let t64 = (EngineKernels.tanh64 (Numerics.Vector<float>(x)))[0]
                    let exact32, exact64 = Math.Tanh(float (float32 x)), Math.Tanh x
                    let rel e a = if e = 0.0 then abs a else abs (a - e) / abs e
                    max w32 (rel exact32 (float t32)), max w64 (rel exact64 t64)) (0.0, 0.0)
            Expect.isLessThan worst32 (4.0 * 6e-8) $"float32: worst relative error {worst32:E2}"
            Expect.isLessThan worst64 (8.0 * 1.1e-16) $"float64: worst relative error {worst64:E2}"
        }

        testList "which cells run on it" [
            test "every built-in cell, and no user-defined one" {
                for cell in Verify.builtInCells 4 6 do
                    Expect.isTrue (Engine.supports cell) $"{cell.Name}"
                let custom = Cell.custom "lstm" 4 6 12 (Cells.Lstm.create 4 6).Layout (fun _ _ s -> s)
                Expect.isFalse (Engine.supports custom) "a user-defined cell, even one called lstm with an LSTM's layout"
                let borrowed = { Cells.Lstm.create 4 6 with StateSize = 6 }
                Expect.isFalse (Engine.supports borrowed) "a built-in name with the wrong state size"
            }
        ]

        testList "backward passes through one unroll" [
            let setup (unroll: Cell -> torch.Tensor -> torch.Tensor -> torch.Tensor -> float[] -> torch.Tensor option -> torch.Tensor * torch.Tensor) =
                let cell = Cells.Lstm.create 3 5
                let theta = (Cell.initParameters cell torch.float64 (generator 2)).requires_grad_ true
                let px = torch.randn([| 4L; 2L; 20L |], dtype = torch.float64, generator = generator 3)
                let hs, _ = unroll cell theta px (torch.zeros([| 2L; 10L |], dtype = torch.float64)) (Array.create 4 1.0) None
                theta, (hs * hs).sum ()
            yield test "Engine.unroll: any number (retain_graph), each the same gradient" {
                use _ = torch.NewDisposeScope()
                let theta, loss = setup Engine.unroll
                loss.backward(retain_graph = true)
                let first = theta.grad.clone ()
                loss.backward ()
                close "the second pass adds the same gradient" 1e-15 theta.grad (first * 2.0)
            }
            yield test "Engine.unrollOnce: one; a second gives NaN and says why" {
                use _ = torch.NewDisposeScope()
                let theta, loss = setup Engine.unrollOnce
                loss.backward(retain_graph = true)
                Expect.isTrue (Double.IsFinite(Tensors.maxAbs theta.grad)) "the first pass is finite"
                loss.backward ()
                Expect.isTrue (Double.IsNaN(theta.grad.sum().item<float> ())) "the second pass is NaN"
                Expect.stringContains EngineSweep.lastRefusal "retain_graph" "and the reason is recorded"
            }
        ]

        testList "bad input is an ArgumentException naming it" [
            let cell = Cells.Lstm.create 3 5
            let theta () = Cell.initParameters cell torch.float64 (generator 1)
            let px () = torch.zeros([| 4L; 2L; 20L |], dtype = torch.float64)
            let s0 () = torch.zeros([| 2L; 10L |], dtype = torch.float64)
            let expectArg name (f: unit -> obj) =
                let e = Expect.throwsC (fun () -> f () |> ignore) id
                Expect.isTrue (e :? ArgumentException) $"{name}: ArgumentException, got {e.GetType().Name}"
                Expect.equal (e :?> ArgumentException).ParamName name "names the argument"
            yield test "a user-defined cell" {
                let custom = Cell.custom "mine" 3 5 10 cell.Layout (fun _ _ s -> s)
                expectArg "cell" (fun () -> box (Engine.unroll custom (theta ()) (px ()) (s0 ()) (Array.create 4 1.0) None))
            }
            yield test "px of the wrong width" {
                expectArg "px" (fun () -> box (Engine.unroll cell (theta ()) (torch.zeros([| 4L; 2L; 19L |], dtype = torch.float64)) (s0 ()) (Array.create 4 1.0) None))
            }
            yield test "s0 of the wrong batch" {
                expectArg "s0" (fun () -> box (Engine.unroll cell (theta ()) (px ()) (torch.zeros([| 3L; 10L |], dtype = torch.float64)) (Array.create 4 1.0) None))
            }
            yield test "too few weights" {
                expectArg "weights" (fun () -> box (Engine.unroll cell (theta ()) (px ()) (s0 ()) (Array.create 3 1.0) None))
            }
            yield test "a mask that is not 0/1" {
                let m = torch.ones([| 4L; 2L |], dtype = torch.float64) * 0.5
                expectArg "mask" (fun () -> box (Engine.unroll cell (theta ()) (px ()) (s0 ()) (Array.create 4 1.0) (Some m)))
            }
            yield test "float32 px for float64 θ" {
                expectArg "px" (fun () -> box (Engine.unroll cell (theta ()) (torch.zeros([| 4L; 2L; 20L |])) (s0 ()) (Array.create 4 1.0) None))
            }
        ]
    ]
