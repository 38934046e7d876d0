/// Attention and sequence to sequence: the identity through the attention weights for every score
/// and style, the whole model's gradient by the closed form on the decoder plus backpropagation into
/// the encoder, masked weights, beam search against greedy decoding and an exhaustive oracle, and
/// bad input.
module SeqNets.Tests.AttentionTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open SeqNets
open SeqNets.Tests.Common

let private styles = [ Bahdanau; Luong true; Luong false ]
let private scores = [ Dot; General; Additive 5 ]

/// A random bound decoder case: sizes, an inner cell family, a masked memory.
type AttentionCase =
    { Steps: int; Batch: int; Input: int; Hidden: int; Rows: int; Inner: int; Seed: int }
    override c.ToString() = $"T={c.Steps} B={c.Batch} X={c.Input} H={c.Hidden} N={c.Rows} inner={c.Inner} seed={c.Seed}"

let private attentionCases =
    gen {
        let! t = Gen.choose (1, 6)
        let! b = Gen.choose (1, 2)
        let! x = Gen.choose (2, 3)
        let! h = Gen.choose (3, 4)
        let! n = Gen.choose (1, 5)
        let! inner = Gen.choose (0, 3)
        let! seed = Gen.choose (0, Int32.MaxValue)
        return { Steps = t; Batch = b; Input = x; Hidden = h; Rows = n; Inner = inner; Seed = seed }
    }

let private innerCell (k: int) (input: int) (hidden: int) =
    match k with
    | 0 -> Cells.Lstm.create input hidden
    | 1 -> Cells.Gru.create Cells.PyTorch input hidden
    | 2 -> Cells.Gru.create Cells.Lecture input hidden
    | _ -> Cells.Elman.create Cells.Tanh input hidden

/// The decoder (E = H for dot attention, H + 1 otherwise, so that widths differ), a memory with its
/// last row padded in row 0 when N > 1, θ and a trajectory case.
let private bound style score (c: AttentionCase) =
    let g = generator c.Seed
    let E = match score with Dot -> c.Hidden | _ -> c.Hidden + 1
    let d = Attention.decoder style score c.Input E (fun i -> innerCell c.Inner i c.Hidden)
    let memory = torch.randn([| int64 c.Batch; int64 c.Rows; int64 E |], dtype = torch.float64, generator = g)
    let mask = torch.ones([| int64 c.Batch; int64 c.Rows |], dtype = torch.ScalarType.Bool)
    if c.Rows > 1 then mask[0L, int64 (c.Rows - 1)] <- torch.tensor(false)
    let cell = Attention.bind d memory (Some mask)
    let theta = Attention.initParameters d torch.float64 g
    let xs = torch.randn([| int64 c.Steps; int64 c.Batch; int64 c.Input |], dtype = torch.float64, generator = g)
    let s0 = torch.randn([| int64 c.Batch; int64 cell.StateSize |], dtype = torch.float64, generator = g) * 0.5
    d, memory, mask, cell, theta, xs, s0

/// ∂ next / ∂ wrt for every state entry of a step, by autodiff: [B; S; |wrt row|].
let private autodiffJacobian (next: torch.Tensor) (wrt: torch.Tensor) =
    let B = next.shape[0]
    torch.stack(
        [| for i in 0L .. next.shape[1] - 1L ->
               match Autodiff.gradWith true false [ next.select(1L, i).sum () ] [ wrt ] None with
               | [ g ] -> g.reshape(B, -1L)
               | _ -> failwith "unreachable" |], 1L)

let private attentionProperty name body =
    testPropertyWithConfig config name (Prop.forAll (Arb.fromGen attentionCases) body)

/// A small float64 encoder–decoder over token sequences, with the given attention.
let private seq2seq (attention: (AttentionStyle * Score) option) (layers: int) (seed: uint64) =
    let sv = TokenVocabulary.ofTokens [ "a"; "b"; "c"; "d" ]
    let tv = TokenVocabulary.ofTokens [ "x"; "y" ]
    let config =
        { Seq2SeqConfig.Create(sv, tv) with
            Embedding = 3; Hidden = 4; Layers = layers; Attention = attention; MaxLength = 6 }
    sv, tv, new Network(Seq2Seq.spec config, torch.float64, seed)

[<Tests>]
let tests =
    testList "Attention" [
        testList "the identity through the attention weights (c_t, b_t hand-derived; ≥ 100 cases each)" [
            for style in styles do
                for score in scores ->
                    attentionProperty $"{style}, {score}" (fun c ->
                        use _ = torch.NewDisposeScope()
                        let _, _, _, cell, theta, xs, s0 = bound style score c
                        let r = Verify.identity cell { Theta = theta; Inputs = xs; InitialState = s0; Regime = Moderate }
                        Expect.isTrue r.HandDerived "hand-derived"
                        if not (r.WorstError <= exact) then failtest $"{cell.Name}, {c}: worst relative error {r.WorstError:E3}")
        ]

        testList "the memory's and the input's Jacobians equal autodiff's" [
            for style in styles do
                for score in scores ->
                    attentionProperty $"{style}, {score}" (fun c ->
                        use _ = torch.NewDisposeScope()
                        let d, memory, mask, cell, theta, xs, s0 = bound style score c
                        let x = xs[0L]
                        let hand = Attention.memoryJacobian d memory (Some mask) theta x s0
                        let m = memory.detach().requires_grad_ true
                        let viaMemory = autodiffJacobian ((Attention.bind d m (Some mask)).Transition theta x s0) m
                        close $"∂s/∂M, {c}" exact hand viaMemory
                        let xLeaf = x.detach().requires_grad_ true
                        close $"∂s/∂x, {c}" exact (cell.InputJacobian.Value theta x s0) (autodiffJacobian (cell.Transition theta xLeaf s0) xLeaf))
        ]

        test "padded source positions get zero weight and the weights sum to one" {
            use _ = torch.NewDisposeScope()
            let c = { Steps = 1; Batch = 2; Input = 2; Hidden = 3; Rows = 5; Inner = 0; Seed = 4 }
            for score in scores do
                let d, memory, _, _, theta, _, _ = bound Bahdanau score c
                let mask = torch.tensor([| true; true; false; false; false; true; true; true; true; false |]).reshape(2L, 5L)
                let q = torch.randn([| 2L; 3L |], dtype = torch.float64)
                let alpha = Attention.weights d theta memory (Some mask) q
                Expect.equal (alpha.masked_select(mask.logical_not()).abs().max().item<float> ()) 0.0 $"{score}: zero at padding"
                close $"{score}: rows sum to 1" 1e-12 (alpha.sum(1L)) (torch.ones([| 2L |], dtype = torch.float64))
        }

        testList "∂L/∂θ of the whole model by the closed form on the decoder and backpropagation into the encoder" [
            for style in styles do
                for score in [ General; Additive 3 ] ->
                    test $"{style}, {score}: = autograd (1e-9) and = central differences" {
                        use _ = torch.NewDisposeScope()
                        let sv, tv, net = seq2seq (Some(style, score)) 1 5UL
                        use _ = net
                        let batch = Seq2Seq.batch sv tv 6 [ [ "a"; "b"; "c" ], [ "x"; "y" ]; [ "d"; "a" ], [ "y"; "y" ]; [ "c"; "c"; "b"; "a" ], [ "x"; "x" ] ]
                        let batch = { batch with TargetLengths = None } // every target 3 long (two tokens and <eos>)
                        let autograd = (Training.gradient net Step batch None None |> ignore; net.Parameters.grad.detach().clone ())
                        net.Parameters.grad.zero_ () |> ignore
                        // The encoder, the bridge and the decoder's inputs, attached to the parameters.
                        let d = match net.Spec.Head with EncoderDecoder d -> d | _ -> failwith "unreachable"
                        let body = net.Decoder.Value
                        let ad = body.Attention.Value
                        let B = batch.Inputs.shape[1]
                        let top, finals = net.RunBody(net.Encoder, Step, TokenInput batch.Inputs, net.ZeroState(int B), None, batch.Lengths, false)
                        let memory = top.transpose(0L, 1L).contiguous () // [B; N; E]
                        let mask = torch.arange(batch.Inputs.shape[0]).unsqueeze(0L).lt (torch.tensor(batch.Lengths.Value).unsqueeze 1L)
                        let s0 = Heads.attentionStart net d ad finals
                        let T = batch.Targets.shape[0]
                        let shifted = torch.cat([| torch.full([| 1L; B |], TokenVocabulary.Bos.ToScalar(), dtype = torch.int64); batch.Targets.narrow(0L, 0L, T - 1L) |], 0L)
                        let xs = net.ApplyInput(body, TokenInput shifted) // [T; B; X]
                        // The closed form over the decoder's trajectory, on detached copies.
                        let unit = body.Units[0][0]
                        let thetaD = (net.UnitParameters unit).detach ()
                        let memoryD, s0D, xsD = memory.detach (), s0.detach (), xs.detach ()
                        let cell = Attention.bind ad memoryD (Some mask)
                        let states = Recurrence.unroll cell thetaD xsD s0D // [T+1; B; S]
                        let j = Bptt.jacobians cell thetaD xsD states
                        let a = Bptt.byRecurrence j // [T; B; S; P_dec]
                        // ∂L/∂s_t of the readout and the loss alone (no time in it), and the readout's own gradient.
                        let statesLeaf = states.narrow(0L, 1L, T).detach().requires_grad_ true
                        let y = net.ApplyReadout(Cell.output cell statesLeaf)
                        let L = Training.crossEntropy y batch.Targets
                        L.backward ()
                        let ds = statesLeaf.grad // [T; B; S]
                        let gDecoder = torch.einsum("tbs,tbsp->p", ds, a)
                        let gs0 = torch.einsum("tbs,tbsr->br", ds, Bptt.initialStateSensitivity j)
                        // ∂L/∂M: the memory's Jacobians through the same recurrence.
                        let mutable aM = torch.zeros([| B; int64 cell.StateSize; memory.shape[1] * memory.shape[2] |], dtype = torch.float64)
                        let mutable gM = torch.zeros([| B; memory.shape[1] * memory.shape[2] |], dtype = torch.float64)
                        for t in 0L .. T - 1L do
                            aM <- Attention.memoryJacobian ad memoryD (Some mask) thetaD xsD[t] states[t] + j.State[t].matmul aM
                            gM <- gM + torch.einsum("bs,bsq->bq", ds[t], aM)
                        // ∂L/∂x_t by the reverse sweep λ_t = ∂ℓ/∂s_t + λ_{t+1} c_{t+1}.
                        let gx = Array.zeroCreate (int T)
                        let mutable lambda = torch.zeros_like ds[0L]
                        for t in T - 1L .. -1L .. 0L do
                            lambda <- ds[t] + (if t + 1L < T then torch.einsum("bs,bsr->br", lambda, j.State[t + 1L]) else torch.zeros_like lambda)
                            gx[int t] <- torch.einsum("bs,bsx->bx", lambda, cell.InputJacobian.Value thetaD xsD[t] states[t])
                        // Backpropagate into the encoder, the bridge and the embeddings.
                        torch.autograd.backward([| memory; s0; xs |], [| gM.reshape(memory.shape); gs0; torch.stack(gx, 0L) |])
                        let closed = net.Parameters.grad.clone ()
                        let u = unit
                        closed.narrow(0L, u.Offset, int64 u.Cell.ParameterCount).add_ gDecoder |> ignore
                        close $"{style}, {score}: closed form + backprop vs autograd" exact closed autograd
                        // Central differences on a few coordinates of every part.
                        let lossAt () = (use _ = torch.no_grad () in (fst (Heads.loss net Step batch None None false)).item<float> ())
                        let setAt (k: int64) (value: float) =
                            use _ = torch.no_grad ()
                            net.Parameters[k] <- torch.tensor(value, dtype = torch.float64)
                        let P = net.ParameterCount
                        for k in [ 0L; P / 7L; P / 3L; P / 2L; u.Offset + 1L; P - 3L ] do
                            let h = 1e-6
                            let v = net.Parameters[k].item<float> ()
                            setAt k (v + h)
                            let up = lossAt ()
                            setAt k (v - h)
                            let down = lossAt ()
                            setAt k v
                            let fd = (up - down) / (2.0 * h)
                            let g = closed[k].item<float> ()
                            Expect.isLessThan (abs (fd - g)) (1e-6 * (1.0 + abs g)) $"coordinate {k}: finite difference {fd:E6}, closed form {g:E6}"
                    }
        ]

        testList "beam search" [
            yield test "beam width 1 is greedy decoding exactly" {
                use _ = torch.NewDisposeScope()
                for attention in [ None; Some(Bahdanau, Additive 3); Some(Luong true, General) ] do
                    let sv, tv, net = seq2seq attention 2 11UL
                    use _ = net
                    let sources = [ [ "a"; "b" ]; [ "c"; "d"; "a"; "b" ]; [ "d" ] ]
                    let b = Seq2Seq.batch sv tv 6 [ for s in sources -> s, [] ]
                    let greedy = Heads.predict net Step b.Inputs b.Lengths None
                    let beams = Heads.beam net Step b.Inputs b.Lengths { BeamOptions.Default with Width = 1; NBest = 1 }
                    for r in 0 .. sources.Length - 1 do
                        let n = int greedy.Lengths.Value[r]
                        let g = (greedy.Values.select(1L, int64 r).data<int64>().ToArray())[.. n - 1]
                        let best = beams[r][0]
                        Expect.sequenceEqual best.Tokens g $"{attention}, row {r}: the same tokens"
            }
            for normalization, alpha in [ NoNormalization, 0.0; Gnmt, 0.6; Power, 1.0 ] do
                yield test $"a wide beam finds the exhaustive search's best hypothesis ({normalization}, α = {alpha})" {
                    use _ = torch.NewDisposeScope()
                    let sv, tv, net = seq2seq (Some(Luong true, General)) 1 (uint64 (3 + int alpha * 10))
                    use _ = net
                    let V, L = int64 tv.Size, 3
                    let source = [ "b"; "a"; "d" ]
                    let options = { Width = 40; NBest = 5; Alpha = alpha; Normalization = normalization; MaxLength = Some L }
                    // The oracle: every token sequence ending in <eos> of length ≤ L, scored teacher-forced.
                    let rec sequences n = if n = 0 then [ [] ] else [ for s in sequences (n - 1) do for v in 0L .. V - 1L -> s @ [ v ] ]
                    let candidates = [ for n in 0 .. L - 1 do for s in sequences n -> s @ [ TokenVocabulary.Eos ] ]
                    let src = TokenVocabulary.encode sv source
                    let scored =
                        [ for y in candidates ->
                              let batch =
                                  { Inputs = torch.tensor(src).reshape(-1L, 1L); Lengths = None
                                    Targets = torch.tensor(Array.ofList y).reshape(-1L, 1L); TargetLengths = None }
                              let l = (use _ = torch.no_grad () in (fst (Heads.loss net Step batch None None false)).item<float> ())
                              let logp = -l * float y.Length
                              Array.ofList y, Heads.normalized options logp y.Length ]
                    let bestTokens, bestScore = scored |> List.maxBy snd
                    let found = (Heads.beam net Step (torch.tensor(src).reshape(-1L, 1L)) None options)[0]
                    Expect.sequenceEqual found[0].Tokens bestTokens "the oracle's best hypothesis"
                    Expect.floatClose { absolute = 1e-9; relative = 1e-9 } found[0].Score bestScore "its score"
                    let distinct = found |> Array.map (fun h -> String.Join(",", h.Tokens)) |> Array.distinct
                    Expect.equal distinct.Length found.Length "no hypothesis returned twice"
                    Expect.isTrue (found |> Array.forall (fun h -> h.Finished && h.Tokens[h.Tokens.Length - 1] = TokenVocabulary.Eos)) "finished hypotheses end in <eos>"
                    Expect.isTrue (found |> Array.pairwise |> Array.forall (fun (a, b) -> a.Score >= b.Score)) "best first"
                }
            yield test "attention weights come with every decoded step" {
                use _ = torch.NewDisposeScope()
                let sv, tv, net = seq2seq (Some(Bahdanau, Additive 3)) 1 2UL
                use _ = net
                let out = Seq2Seq.translate net sv tv [ [ "a"; "b"; "c" ]; [ "d" ] ]
                for (tokens, weights), n in List.zip out [ 3; 1 ] do
                    Expect.equal weights.Length (min 6 (tokens.Length + 1)) "one row per output token (with <eos>)"
                    for row in weights do
                        Expect.equal row.Length n "one weight per source token"
                        Expect.floatClose Accuracy.high (Array.sum row) 1.0 "weights sum to one"
                let beams = Heads.beam net Step (Seq2Seq.batch sv tv 6 [ [ "a"; "b"; "c" ], [] ]).Inputs None BeamOptions.Default
                Expect.isTrue (beams[0] |> Array.forall (fun h -> h.Attention.Length = h.Tokens.Length)) "beam hypotheses carry their weights"
            }
        ]

        testList "bad input names the argument, what was expected and what arrived" [
            let expectArg (argument: string) (fragment: string) (f: unit -> unit) =
                let e = Expect.throwsC f id
                match e with
                | :? ArgumentException as a ->
                    Expect.equal a.ParamName argument $"names {argument}: {a.Message}"
                    Expect.stringContains a.Message fragment "says what"
                | other -> failtest $"expected ArgumentException, got {other.GetType().Name}: {other.Message}"
            let sv, tv, net = seq2seq (Some(Luong true, General)) 1 1UL
            yield test "an unknown token, an empty source, a target longer than the decoder's limit" {
                expectArg "tokens" "'z' at position 1" (fun () -> Seq2Seq.batch sv tv 6 [ [ "a"; "z" ], [ "x" ] ] |> ignore)
                expectArg "pairs" "non-empty source" (fun () -> Seq2Seq.batch sv tv 6 [ [], [ "x" ] ] |> ignore)
                expectArg "pairs" "at most 5 tokens" (fun () -> Seq2Seq.batch sv tv 6 [ [ "a" ], List.replicate 6 "x" ] |> ignore)
                let long = Seq2Seq.batch sv tv 20 [ [ "a" ], List.replicate 8 "x" ]
                expectArg "batch.Targets" "MaxLength = 6" (fun () -> Heads.loss net Step long None None false |> ignore)
            }
            yield test "a beam width below one" {
                let b = Seq2Seq.batch sv tv 6 [ [ "a" ], [] ]
                expectArg "options" "Width of at least 1" (fun () -> Heads.beam net Step b.Inputs b.Lengths { BeamOptions.Default with Width = 0 } |> ignore)
            }
            yield test "dot attention over states of different widths, and a decoder layer of the wrong width" {
                expectArg "score" "must equal the memory width" (fun () -> Attention.decoder Bahdanau Dot 3 5 (fun i -> Cells.Lstm.create i 4) |> ignore)
                let dec = { Input = Embedding(5, 3); Layers = [ Layer.recurrent (Cells.Lstm.create 3 4) ]; Bridge = Projection; Bos = 1; Eos = 2; MaxLength = 6
                            Attention = Some(Bahdanau, General); TeacherForcing = 1.0; ReverseSource = false }
                expectArg "spec" "3 + 8 wide" (fun () ->
                    new Network({ Input = Embedding(6, 3); Layers = [ Layer.bidirectional (Cells.Lstm.create 3 4) ]; Dropout = 0.0; Head = EncoderDecoder dec; Output = 5; Loss = CrossEntropy }, torch.float64, 1UL) |> ignore)
            }
        ]
    ]
