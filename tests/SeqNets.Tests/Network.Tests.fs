/// Networks from layers: stacks as cells, the two paths, padded batches, bidirectional layers, the
/// five heads, user-defined cells through the whole training stack, and bad input.
module SeqNets.Tests.NetworkTests

open System
open System.IO
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open SeqNets
open SeqNets.Tests.Common

/// The minimal gated unit (Zhou et al. 2016), written by a user with Cell.custom:
///   f = σ(W_f x + U_f h + b_f),  h̃ = tanh(W_h x + U_h (f ⊙ h) + b_h),  h' = (1 − f) ⊙ h + f ⊙ h̃.
let mgu (inputSize: int) (hiddenSize: int) =
    let I, H = int64 inputSize, int64 hiddenSize
    let layout = ParameterLayout [ "W_f", [ H; I ]; "U_f", [ H; H ]; "b_f", [ H ]; "W_h", [ H; I ]; "U_h", [ H; H ]; "b_h", [ H ] ]
    Cell.custom "mgu" inputSize hiddenSize hiddenSize layout (fun theta x h ->
        let v name = layout.View(theta, name)
        let f = (Tensors.linear (v "W_f") x + Tensors.linear (v "U_f") h + v "b_f").sigmoid ()
        let hTilde = (Tensors.linear (v "W_h") x + Tensors.linear (v "U_h") (f * h) + v "b_h").tanh ()
        (1.0 - f) * h + f * hTilde)
    |> Cell.withRowParameters

let private builtIn = [ ElmanTanh; ElmanRelu; GruPyTorch; GruLecture; Lstm; MultiplicativeRnn 3 ]
let private fusable = [ ElmanTanh; ElmanRelu; GruPyTorch; Lstm ]

/// A cell of a kind, or the user's MGU (kind None).
let private cellOf (kind: CellKind option) (input: int) (hidden: int) =
    match kind with
    | Some k -> CellKind.cell k input hidden
    | None -> mgu input hidden

/// A random network shape: sizes from the case, layers, directions, lengths.
type NetSpec =
    { Case: CaseSpec
      Kinds: CellKind option list
      Bidirectional: Merge option
      Lengths: int64[] option }
    override s.ToString() =
        let kinds = String.Join(", ", s.Kinds |> List.map (function Some k -> string k | None -> "mgu"))
        let lengths = match s.Lengths with Some l -> String.Join(",", l) | None -> "all"
        $"{s.Case}; layers [{kinds}]; bidirectional {s.Bidirectional}; lengths {lengths}"

let private netSpecs (kinds: CellKind option list) (allowSum: bool) =
    gen {
        let! case = caseSpecs |> Gen.filter (fun c -> c.Steps >= 2 && c.Steps <= 14)
        let! layers = Gen.choose (1, 3)
        let! chosen = Gen.listOfLength layers (Gen.elements kinds)
        let! same = Gen.elements [ true; false ]
        let chosen = if same then List.replicate layers chosen.Head else chosen
        let! bi = Gen.elements (if allowSum then [ None; Some Concat; Some Sum ] else [ None; Some Concat ])
        let! padded = Gen.elements [ true; false ]
        let! lengths = Gen.arrayOfLength case.Batch (Gen.choose (1, case.Steps))
        return
            { Case = case; Kinds = chosen; Bidirectional = bi
              Lengths = if padded then Some(lengths |> Array.map int64) else None }
    }

let private netProperty name (kinds: CellKind option list) (allowSum: bool) (body: NetSpec -> unit) =
    testPropertyWithConfig config name (Prop.forAll (Arb.fromGen (netSpecs kinds allowSum)) body)

/// A PerStep regression network of the spec's layers over vectors of width I; hidden sizes H, H+1, …
/// (the same H in every layer when the kinds are one family, so that the fused path applies).
let private networkOf (s: NetSpec) (head: Head) =
    let direction = match s.Bidirectional with None -> Forward | Some m -> Bidirectional m
    let sameFamily = s.Kinds |> List.distinct |> List.length = 1
    let mutable width = s.Case.Input
    let layers =
        s.Kinds |> List.mapi (fun l k ->
            let layer = { Cell = cellOf k width (s.Case.Hidden + (if sameFamily then 0 else l)); Direction = direction }
            width <- layer.OutputWidth
            layer)
    new Network({ Input = InputLayer.Vectors s.Case.Input; Layers = layers; Dropout = 0.0; Head = head; Output = 2; Loss = MeanSquared },
                torch.float64, uint64 s.Case.Seed)

let private inputsOf (s: NetSpec) =
    let g = generator s.Case.Seed
    let T, B = int64 s.Case.Steps, int64 s.Case.Batch
    let x = torch.randn([| T; B; int64 s.Case.Input |], dtype = torch.float64, generator = g)
    let y = torch.randn([| T; B; 2L |], dtype = torch.float64, generator = g)
    x, y

let private maskOf (T: int64) (B: int64) (lengths: int64[] option) =
    match lengths with
    | None -> torch.ones([| T; B; 1L |], dtype = torch.float64)
    | Some ls -> (torch.arange(T).unsqueeze(1L).lt (torch.tensor(ls).unsqueeze 0L)).to_type(torch.float64).unsqueeze -1L

/// ∂L/∂(all parameters) of a batch under the network's head, by autograd on the given path.
let private gradientOf (net: Network) path (batch: Batch) =
    Training.gradient net path batch None None |> ignore
    net.Parameters.grad.detach().clone ()

/// The stack cell of a network's forward layers and its θ (the layers' blocks concatenated).
let private stackOf (net: Network) =
    let cells = net.Cells |> List.ofArray
    Stack.create cells, torch.cat([| for l in 0 .. cells.Length - 1 -> net.LayerParameters l |], 0L)

[<Tests>]
let tests =
    testList "Networks" [
        testList "a stack of cells is a cell" [
            property "its hand-derived c_t and b_t (chain rule over the layers) pass the identity, mixed cells" (fun s ->
                use _ = torch.NewDisposeScope()
                let g = generator s.Seed
                let kinds = [ for l in 0 .. 1 + s.Seed % 2 -> builtIn[(s.Seed / (l + 1) + l) % builtIn.Length] ]
                let mutable width = s.Input
                let cells =
                    kinds |> List.mapi (fun l k ->
                        let c = CellKind.cell k width (s.Hidden + l)
                        width <- c.HiddenSize
                        c)
                let stack = Stack.create cells
                let case = Verify.randomCase stack torch.float64 s.Regime s.Steps s.Batch g
                let r = Verify.identity stack case
                Expect.isTrue r.HandDerived "the stack has Jacobians of its own"
                if not (r.WorstError <= exact) then failtest $"{stack}, {s}: worst relative error {r.WorstError:E3}")
            property "its input Jacobian ∂s_t/∂x_t equals autodiff's" (fun s ->
                use _ = torch.NewDisposeScope()
                let g = generator s.Seed
                let stack = Stack.create [ Cells.Lstm.create s.Input s.Hidden; Cells.Gru.create Cells.Lecture s.Hidden (s.Hidden + 1) ]
                let theta = Cell.initParameters stack torch.float64 g
                let x = torch.randn([| int64 s.Batch; int64 s.Input |], dtype = torch.float64, generator = g)
                let st = torch.randn([| int64 s.Batch; int64 stack.StateSize |], dtype = torch.float64, generator = g)
                let hand = stack.InputJacobian.Value theta x st // [B; S; I]
                let xLeaf = x.detach().requires_grad_ true
                let next = stack.Transition theta xLeaf st
                let rows =
                    [| for i in 0L .. int64 stack.StateSize - 1L ->
                           match Autodiff.gradWith true false [ next.select(1L, i).sum () ] [ xLeaf ] None with
                           | [ gx ] -> gx // [B; I]
                           | _ -> failwith "unreachable" |]
                close $"{s}" exact hand (torch.stack(rows, 1L)))
            test "a stack with a user's cell (no Jacobians) is checked through autodiff's local Jacobians" {
                use _ = torch.NewDisposeScope()
                let stack = Stack.create [ Cells.Elman.create Cells.Tanh 3 5; mgu 5 4 ]
                Expect.isNone stack.Jacobians "no hand Jacobians when a layer has none"
                let case = Verify.randomCase stack torch.float64 Moderate 9 2 (generator 3)
                let r = Verify.identity stack case
                Expect.isFalse r.HandDerived "autodiff's local Jacobians"
                Expect.isLessThanOrEqual r.WorstError exact "recurrence = closed form = reverse mode"
            }
            netProperty "a network's layer-by-layer run is the stack cell's unroll" (None :: (builtIn |> List.map Some)) false (fun s ->
                use _ = torch.NewDisposeScope()
                let s = { s with Bidirectional = None; Lengths = None }
                use net = networkOf s PerStep
                let x, _ = inputsOf s
                let stack, theta = stackOf net
                let y, finals = net.Forward(Step, x, net.ZeroState s.Case.Batch)
                let states = Recurrence.unroll stack theta x (torch.zeros([| int64 s.Case.Batch; int64 stack.StateSize |], dtype = torch.float64))
                let hTop = Recurrence.outputs stack states // [T; B; H_L]
                close $"outputs, {s}" 1e-12 y (net.ApplyReadout hTop)
                for l in 0 .. finals.Length - 1 do
                    close $"layer {l} final state, {s}" 1e-12 finals[l] (Stack.layerState stack l states[-1L]))
        ]

        testList "two paths, one network" [
            netProperty "fused = step: outputs, final states and gradients, every fused-capable stack" (fusable |> List.map Some) false (fun s ->
                use _ = torch.NewDisposeScope()
                let s = { s with Kinds = List.replicate s.Kinds.Length s.Kinds.Head } // one family: a libtorch module
                use net = networkOf s PerStep
                Expect.isTrue net.HasFusedPath $"fused-capable: {s}"
                let x, y = inputsOf s
                let T, B = x.shape[0], x.shape[1]
                let mask = maskOf T B s.Lengths
                let lengths = s.Lengths |> Option.toArray |> Array.tryHead
                let run path = net.Forward(path, x, net.ZeroState s.Case.Batch, ?lengths = lengths)
                let ys, fs = run Step
                let yf, ff = run Fused
                close $"outputs, {s}" 1e-12 (yf * mask) (ys * mask)
                Array.iteri2 (fun k a b -> close $"final state {k}, {s}" 1e-12 a b) ff fs
                let batch = { Inputs = x; Lengths = s.Lengths; Targets = y; TargetLengths = None }
                close $"gradients, {s}" 1e-10 (gradientOf net Fused batch) (gradientOf net Step batch))
        ]

        testList "a padded batch gives exactly what each row alone gives" [
            netProperty "outputs, final states and gradients — stacked, bidirectional, any cell" (None :: (builtIn |> List.map Some)) true (fun s ->
                use _ = torch.NewDisposeScope()
                let lengths = defaultArg s.Lengths (Array.create s.Case.Batch (int64 s.Case.Steps))
                let s = { s with Lengths = Some lengths }
                use net = networkOf s PerStep
                let x, y = inputsOf s
                let paths = if net.HasFusedPath then [ Step; Fused ] else [ Step ]
                for path in paths do
                    let yp, fp = net.Forward(path, x, net.ZeroState s.Case.Batch, lengths = lengths)
                    let gPadded = gradientOf net path { Inputs = x; Lengths = Some lengths; Targets = y; TargetLengths = None }
                    let total = float (Array.sum lengths)
                    let mutable gAlone = torch.zeros_like gPadded
                    for b in 0 .. s.Case.Batch - 1 do
                        let n = lengths[b]
                        let xb, yb = x.narrow(1L, int64 b, 1L).narrow(0L, 0L, n), y.narrow(1L, int64 b, 1L).narrow(0L, 0L, n)
                        let ya, fa = net.Forward(path, xb, net.ZeroState 1)
                        close $"{path}: row {b} outputs, {s}" 1e-12 (yp.narrow(1L, int64 b, 1L).narrow(0L, 0L, n)) ya
                        Array.iteri2 (fun k (p: torch.Tensor) a -> close $"{path}: row {b} final state {k}, {s}" 1e-12 (p.narrow(0L, int64 b, 1L)) a) fp fa
                        // The padded loss is the mean over all real steps: row b's mean loss weighs n_b / Σ n.
                        gAlone <- gAlone + gradientOf net path { Inputs = xb; Lengths = None; Targets = yb; TargetLengths = None } * (float n / total)
                    close $"{path}: gradients, {s}" 1e-10 gPadded gAlone)
            test "the backward direction starts at each row's own last element, not at the padding" {
                use _ = torch.NewDisposeScope()
                let cell = Cells.Lstm.create 3 4
                use net = new Network({ Input = InputLayer.Vectors 3; Layers = [ Layer.bidirectional cell ]; Dropout = 0.0; Head = PerStep; Output = 1; Loss = MeanSquared }, torch.float64, 5UL)
                let x = torch.randn([| 6L; 2L; 3L |], dtype = torch.float64, generator = generator 5)
                let lengths = [| 6L; 4L |]
                let padded = x.clone ()
                padded.narrow(0L, 4L, 2L).narrow(1L, 1L, 1L).fill_ (100.0.ToScalar()) |> ignore // garbage in the padding
                let _, finals = net.Forward(Step, padded, net.ZeroState 2, lengths = lengths)
                // Row 1 read backwards: x[3], x[2], x[1], x[0].
                let thetaRev = net.LayerParameters(0, true)
                let row = x.narrow(1L, 1L, 1L).narrow(0L, 0L, 4L).flip([| 0L |])
                let states = Recurrence.unroll cell thetaRev row (torch.zeros([| 1L; 8L |], dtype = torch.float64))
                close "the backward final state of row 1" 1e-12 (finals[1].narrow(0L, 1L, 1L)) states[-1L]
                // The lecture's identity holds for that direction as for any cell run over its inputs.
                let r = Verify.identity cell { Theta = thetaRev.detach (); Inputs = row; InitialState = torch.zeros([| 1L; 8L |], dtype = torch.float64); Regime = Moderate }
                Expect.isLessThanOrEqual r.WorstError exact "the identity, backward direction"
            }
        ]

        testList "the five shapes" [
            let vectors = InputLayer.Vectors 3
            let lstm i = Cells.Lstm.create i 5
            let net head output loss layers = new Network({ Input = vectors; Layers = layers; Dropout = 0.0; Head = head; Output = output; Loss = loss }, torch.float64, 9UL)
            let x = torch.randn([| 5L; 3L; 3L |], dtype = torch.float64, generator = generator 9)
            yield test "many-to-one (last): the state after each row's own last element; padding never read" {
                use _ = torch.NewDisposeScope()
                use n = net (ManyToOne Last) 4 CrossEntropy [ Layer.recurrent (lstm 3) ]
                let lengths = [| 5L; 2L; 4L |]
                let p1 = Heads.predict n Step x (Some lengths) None
                let garbage = x.clone ()
                garbage.narrow(0L, 2L, 3L).narrow(1L, 1L, 1L).fill_ ((-7.0).ToScalar()) |> ignore
                let p2 = Heads.predict n Step garbage (Some lengths) None
                Expect.sequenceEqual (p2.Values.data<int64>().ToArray()) (p1.Values.data<int64>().ToArray()) "padding changes nothing"
                let alone = [| for b in 0 .. 2 -> (Heads.predict n Step (x.narrow(1L, int64 b, 1L).narrow(0L, 0L, lengths[b])) None None).Values.item<int64> () |]
                Expect.sequenceEqual (p1.Values.data<int64>().ToArray()) alone "each row as if alone"
            }
            for pooling in [ Mean; Max ] do
                yield test $"many-to-one ({pooling}): pooled over real steps only" {
                    use _ = torch.NewDisposeScope()
                    use n = net (ManyToOne pooling) 2 MeanSquared [ Layer.bidirectionalWith Sum (lstm 3) ]
                    let lengths = [| 3L; 5L; 1L |]
                    let garbage = x.clone ()
                    garbage.narrow(0L, 3L, 2L).narrow(1L, 0L, 1L).fill_ (50.0.ToScalar()) |> ignore
                    let a = (Heads.predict n Step x (Some lengths) None).Values
                    let b = (Heads.predict n Step garbage (Some lengths) None).Values
                    close "padding changes nothing" 0.0 b a
                    let row0 = (Heads.predict n Step (x.narrow(1L, 0L, 1L).narrow(0L, 0L, 3L)) None None).Values
                    close "row 0 as if alone" 1e-12 (a.narrow(0L, 0L, 1L)) row0
                }
            yield test "one-to-one: one step of the recurrence from s_0 = 0, then the readout" {
                use _ = torch.NewDisposeScope()
                use n = net OneToOne 2 MeanSquared [ Layer.recurrent (lstm 3) ]
                let v = x[0L] // [B; I]
                let cell = n.Cells[0]
                let _, s1 = Cell.step cell (n.LayerParameters 0) v (torch.zeros([| 3L; 10L |], dtype = torch.float64))
                close "y = g(h_1)" 1e-12 (Heads.predict n Step v None None).Values (n.ApplyReadout(Cell.output cell s1))
            }
            for vectorAs in [ InputAtEachStep; InitialState ] do
                yield test $"one-to-many ({vectorAs}): T outputs from one vector, loss over real target steps" {
                    use _ = torch.NewDisposeScope()
                    use n = net (OneToMany vectorAs) 4 CrossEntropy [ Layer.recurrent (lstm 3); Layer.recurrent (lstm 5) ]
                    let v = x[0L]
                    let p = Heads.predict n Step v None (Some 7)
                    Expect.sequenceEqual p.Values.shape [| 7L; 3L |] "[T; B] classes"
                    let targets = torch.tensor([| for i in 0L .. 20L -> i % 4L |]).reshape(7L, 3L)
                    let full, _ = Heads.loss n Step { Inputs = v; Lengths = None; Targets = targets; TargetLengths = None } None None false
                    let cut, _ = Heads.loss n Step { Inputs = v; Lengths = None; Targets = targets; TargetLengths = Some [| 7L; 2L; 5L |] } None None false
                    Expect.isFalse ((full - cut).abs().item<float> () < 1e-12) "the target lengths matter"
                    Expect.throwsT<ArgumentException> (fun () -> Heads.predict n Step v None None |> ignore) "steps are required"
                }
            yield test "encoder–decoder: teacher forcing in the loss, greedy decoding to Eos" {
                use _ = torch.NewDisposeScope()
                let decoder = { Input = Embedding(6, 4); Layers = [ Layer.recurrent (Cells.Gru.create Cells.PyTorch 4 7) ]; Bridge = Projection; Bos = 0; Eos = 1; MaxLength = 9; Attention = None; TeacherForcing = 1.0; ReverseSource = false }
                use n = new Network({ Input = OneHot 5; Layers = [ Layer.bidirectional (Cells.Lstm.create 5 5) ]; Dropout = 0.0; Head = EncoderDecoder decoder; Output = 6; Loss = CrossEntropy }, torch.float64, 2UL)
                let source = torch.tensor([| 1L; 2L; 3L; 4L; 0L; 2L; 3L; 1L |]).reshape(4L, 2L)
                let targets = torch.tensor([| 2L; 3L; 4L; 5L; 1L; 1L; 0L; 0L |]).reshape(4L, 2L)
                let batch = { Inputs = source; Lengths = Some [| 4L; 3L |]; Targets = targets; TargetLengths = Some [| 4L; 2L |] }
                let loss, _ = Heads.loss n Step batch None None false
                Expect.isTrue (Double.IsFinite(loss.item<float> ())) "a finite loss"
                let p = Heads.predict n Step source (Some [| 4L; 3L |]) None
                let ids = p.Values.data<int64>().ToArray()
                let T = int p.Values.shape[0]
                for b in 0 .. 1 do
                    let len = int p.Lengths.Value[b]
                    Expect.isLessThanOrEqual len 9 "at most MaxLength"
                    if len < T || (len = T && ids[(len - 1) * 2 + b] = 1L) then
                        Expect.equal ids[(len - 1) * 2 + b] 1L $"row {b} ends with Eos at its length"
                let m = Heads.evaluate n Step batch
                Expect.isTrue (m.Accuracy >= 0.0 && m.Accuracy <= 1.0 && m.ExactMatch >= 0.0 && m.ExactMatch <= 1.0) "metrics in [0, 1]"
            }
            yield test "a Copy bridge needs equal encoder and decoder states" {
                let decoder = { Input = OneHot 6; Layers = [ Layer.recurrent (Cells.Gru.create Cells.PyTorch 6 7) ]; Bridge = Copy; Bos = 0; Eos = 1; MaxLength = 9; Attention = None; TeacherForcing = 1.0; ReverseSource = false }
                let e = Expect.throwsC (fun () -> new Network({ Input = OneHot 5; Layers = [ Layer.recurrent (Cells.Lstm.create 5 5) ]; Dropout = 0.0; Head = EncoderDecoder decoder; Output = 6; Loss = CrossEntropy }, torch.float64, 2UL) |> ignore) id
                Expect.stringContains e.Message "Bridge.Projection" "names the remedy"
            }
        ]

        testList "dropout between layers, as PyTorch: only in training, never after the last layer" [
            test "training runs differ, evaluation is deterministic and equal on both paths" {
                use _ = torch.NewDisposeScope()
                let spec = { CharModel.specWithDropout 0.5 { Kind = Lstm; VocabularySize = 6; HiddenSize = 8; Layers = 3 } with Dropout = 0.5 }
                use n = new Network(spec, torch.float64, 3UL)
                let ids = torch.tensor([| 0L; 1L; 2L; 3L; 4L; 5L; 1L; 2L |]).reshape(4L, 2L)
                let run path training = fst (n.Forward(path, ids, n.ZeroState 2, training = training))
                close "evaluation: step = fused" 1e-12 (run Fused false) (run Step false)
                close "evaluation is deterministic" 0.0 (run Step false) (run Step false)
                Expect.isGreaterThan (Tensors.relativeError (run Step true) (run Step false)) 1e-6 "training drops units"
                let one = new Network({ spec with Layers = [ spec.Layers.Head ] }, torch.float64, 3UL)
                use _ = one
                close "a single layer has nothing to drop" 0.0 (fst (one.Forward(Step, ids, one.ZeroState 2, training = true))) (fst (one.Forward(Step, ids, one.ZeroState 2)))
            }
        ]

        testList "bad input names the argument, what was expected and what arrived" [
            let n () = new Network(CharModel.spec { Kind = Lstm; VocabularySize = 4; HiddenSize = 3; Layers = 1 }, torch.float64, 1UL)
            let ids = torch.tensor([| 0L; 1L; 2L; 3L |]).reshape(2L, 2L)
            let expectArg (argument: string) (fragment: string) (f: unit -> unit) =
                let e = Expect.throwsC f id
                match e with
                | :? ArgumentException as a ->
                    Expect.equal a.ParamName argument $"names {argument}: {a.Message}"
                    Expect.stringContains a.Message fragment "says what was expected"
                | other -> failtest $"expected ArgumentException, got {other.GetType().Name}: {other.Message}"
            yield test "lengths: one per row, each in [1, T]" {
                use net = n ()
                expectArg "lengths" "one length per row" (fun () -> net.Forward(Step, ids, net.ZeroState 2, lengths = [| 1L |]) |> ignore)
                expectArg "lengths" "row 1 has 3" (fun () -> net.Forward(Step, ids, net.ZeroState 2, lengths = [| 1L; 3L |]) |> ignore)
                expectArg "lengths" "row 0 has 0" (fun () -> net.Forward(Step, ids, net.ZeroState 2, lengths = [| 0L; 2L |]) |> ignore)
            }
            yield test "token ids outside the vocabulary, vectors to a token network" {
                use net = n ()
                expectArg "inputs" "[0, 3]" (fun () -> net.Forward(Step, ids + 1L, net.ZeroState 2) |> ignore)
                expectArg "inputs" "int64 token ids" (fun () -> net.Forward(Step, torch.zeros([| 2L; 2L; 4L |], dtype = torch.float64), net.ZeroState 2) |> ignore)
            }
            yield test "targets of the wrong shape or out of range" {
                use net = n ()
                expectArg "batch.Targets" "[2; 2]" (fun () -> Heads.loss net Step { Inputs = ids; Lengths = None; Targets = torch.zeros([| 3L |], dtype = torch.int64); TargetLengths = None } None None false |> ignore)
                expectArg "batch.Targets" "[0, 3]" (fun () -> Heads.loss net Step { Inputs = ids; Lengths = None; Targets = ids * 2L; TargetLengths = None } None None false |> ignore)
            }
            yield test "layers whose sizes do not chain" {
                expectArg "spec" "layer 1 ('gru-pytorch') expects inputs of width 5, but layer 0 gives 6"
                    (fun () -> new Network({ Input = InputLayer.Vectors 3; Layers = [ Layer.bidirectional (Cells.Lstm.create 3 3); Layer.recurrent (Cells.Gru.create Cells.PyTorch 5 2) ]; Dropout = 0.0; Head = PerStep; Output = 1; Loss = MeanSquared }, torch.float64, 1UL) |> ignore)
            }
            yield test "truncated BPTT over a bidirectional layer, and a fused path that does not exist" {
                use net = new Network({ Input = OneHot 4; Layers = [ Layer.bidirectional (Cells.Lstm.create 4 3) ]; Dropout = 0.0; Head = PerStep; Output = 4; Loss = CrossEntropy }, torch.float64, 1UL)
                let ids = Array.init 200 (fun i -> int64 (i % 4))
                expectArg "Strategy" "bidirectional" (fun () -> new Trainer(net, ids, { TrainingConfig.Default with Strategy = Truncated 4; Batch = 2; SequenceLength = 8 }) |> ignore)
                use gl = new Network(CharModel.spec { Kind = GruLecture; VocabularySize = 4; HiddenSize = 3; Layers = 1 }, torch.float64, 1UL)
                expectArg "Path" "step path" (fun () -> new Trainer(gl, ids, { TrainingConfig.Default with Path = Some Fused; Batch = 2; SequenceLength = 8 }) |> ignore)
            }
            yield test "a user's transition that returns the wrong shape is named, with both shapes" {
                let layout = ParameterLayout [ "W", [ 4L; 3L ] ]
                let bad = Cell.custom "bad-cell" 3 4 4 layout (fun theta x _ -> Tensors.linear (layout.View(theta, "W")) x |> fun y -> y.narrow(1L, 0L, 2L))
                let e = Expect.throwsC (fun () -> Recurrence.unroll bad (torch.zeros([| 12L |])) (torch.zeros([| 2L; 5L; 3L |])) (torch.zeros([| 5L; 4L |])) |> ignore) id
                Expect.equal (e :?> ArgumentException).ParamName "transition" "names the function"
                Expect.stringContains e.Message "'bad-cell'" "names the cell"
                Expect.stringContains e.Message "[5; 2]" "what arrived"
                Expect.stringContains e.Message "[5; 4]" "what was expected"
                let wrong = mgu 3 4 |> Cell.withJacobians (fun _ x _ -> { State = torch.zeros([| x.shape[0]; 4L; 3L |]); Parameters = torch.zeros([| x.shape[0]; 4L; 64L |]) })
                let e = Expect.throwsC (fun () -> Cell.jacobians wrong (torch.zeros([| 64L |])) (torch.zeros([| 2L; 3L |])) (torch.zeros([| 2L; 4L |])) |> ignore) id
                Expect.stringContains e.Message "c_t" "names the Jacobian"
            }
        ]

        testList "a user-defined cell trains, checkpoints, resumes, samples and exports like an LSTM" [
            yield test "an MGU character model end to end" {
                use _ = torch.NewDisposeScope()
                let corpus = Corpus.split 0.9 (String.replicate 40 "the minimal gated unit learns this line. ")
                let V = corpus.Vocabulary.Size
                let spec = CharModel.ofLayers V (Layer.stack 2 Forward V (fun w -> mgu w 24)) 0.1
                use net = new Network(spec, torch.float32, 5UL)
                Expect.equal net.DefaultPath Step "a user's cell runs its own equations"
                let config = { TrainingConfig.Default with Strategy = Randomized 6.0; Batch = 4; SequenceLength = 16; LearningRate = 1e-2 }
                use trainer = new Trainer(net, corpus.Train, config)
                Expect.equal trainer.Path Step "the automatic path runs randomized truncation"
                let first = [ for _ in 1 .. 10 -> trainer.Step().Loss ] |> List.average
                for _ in 1 .. 150 do trainer.Step() |> ignore
                let last = [ for _ in 1 .. 10 -> trainer.Step().Loss ] |> List.average
                Expect.isLessThan last (0.6 * first) $"the loss falls: {first:F3} → {last:F3}"
                let dir = Directory.CreateTempSubdirectory "seqnets-mgu-"
                try
                    CellCatalog.register "mgu" mgu
                    let path = Path.Combine(dir.FullName, "mgu.ckpt")
                    Checkpoint.save path trainer (Some corpus.Vocabulary)
                    let straight = [ for _ in 1 .. 5 -> trainer.Step().Loss ]
                    let c = Checkpoint.load path
                    use back = c.Network
                    use resumed = Checkpoint.resumeOnText c corpus.Train
                    let again = [ for _ in 1 .. 5 -> resumed.Step().Loss ]
                    Expect.sequenceEqual again straight "the resumed run continues exactly"
                    let options = { SamplingOptions.Default with Seed = 4UL }
                    let sample = Sampling.generate back corpus.Vocabulary "the " 60 options
                    Expect.equal sample.Length 60 "samples"
                    Expect.equal (Sampling.generate back corpus.Vocabulary "the " 60 options) sample "seeded"
                    let pt = Path.Combine(dir.FullName, "mgu.pt")
                    Interop.exportNetwork back pt
                    let keys = (Interop.readStateDict pt).Keys |> Set.ofSeq
                    Expect.isTrue (keys.Contains "rnn.l0.W_f" && keys.Contains "rnn.l1.U_h" && keys.Contains "out.weight") $"the cell's own block names: {keys}"
                    use imported = Interop.importNetwork spec pt
                    close "exported and imported again" 0.0 imported.Parameters back.Parameters
                finally dir.Delete true
            }
        ]

        testList "PyTorch's 2-layer bidirectional stacks over a padded batch (pack_padded_sequence)" [
            for name, kind in [ "bilstm2_packed", Lstm; "bigru2_packed", GruPyTorch ] ->
                test $"{name}: outputs and final states within 1e-6 on both paths" {
                    use _ = torch.NewDisposeScope()
                    let dir = fixturesDir "torch"
                    let io = Interop.readStateDict (Path.Combine(dir, name + ".io.pt"))
                    let layers = Layer.stack 2 (Bidirectional Concat) 3 (fun w -> CellKind.cell kind w 5)
                    use net = new Network({ Input = InputLayer.Vectors 3; Layers = layers; Dropout = 0.0; Head = PerStep; Output = 1; Loss = MeanSquared }, torch.float32, 0UL)
                    Interop.importRecurrentLayers net (Path.Combine(dir, name + ".pt"))
                    let lengths = io["lengths"].data<int64>().ToArray()
                    let H = 5L
                    let states =
                        [| for k in 0L .. 3L ->
                               if kind = Lstm then torch.cat([| io["h0"][k]; io["c0"][k] |], 1L) else io["h0"][k] |]
                    for path in [ Step; Fused ] do
                        let top, finals = net.RunBody(net.Encoder, path, VectorInput io["x"], states, None, Some lengths, false)
                        let mask = (torch.arange(6L).unsqueeze(1L).lt (torch.tensor(lengths).unsqueeze 0L)).unsqueeze(-1L).to_type torch.float32
                        let err = ((top * mask) - io["y"]).abs().max().item<float32> ()
                        Expect.isLessThanOrEqual err 1e-6f $"{path}: outputs"
                        for k in 0 .. 3 do
                            let h = finals[k].narrow(1L, 0L, H)
                            Expect.isLessThanOrEqual ((h - io["hn"][int64 k]).abs().max().item<float32> ()) 1e-6f $"{path}: h_n[{k}]"
                            if kind = Lstm then
                                Expect.isLessThanOrEqual ((finals[k].narrow(1L, H, H) - io["cn"][int64 k]).abs().max().item<float32> ()) 1e-6f $"{path}: c_n[{k}]"
                }
        ]
    ]
