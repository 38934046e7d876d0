(**
# Networks from layers

A network is an input layer, recurrent layers over **any** cell — built-in or your own — stacked, one
direction or both, dropout between them, a head (one of the lecture's five shapes) and a readout
$y = g(h) = V h + c$ with its loss. All of it is data (`NetworkSpec`); a `Network` holds the parameters
as **one flat tensor** with a named view per layer, runs the layers either by the cells' own equations
(`Step`) or through libtorch's fused `nn.RNN` / `nn.GRU` / `nn.LSTM` over views of the same tensor
(`Fused`), and trains, checkpoints, samples and exports through the same functions whatever its cells.

| layer | F# | what it reads | parameters |
| --- | --- | --- | --- |
| vectors | `InputLayer.Vectors I` | $[T;B;I]$ floats | none |
| one-hot | `OneHot V` | token ids $[T;B]$ | none |
| embedding | `Embedding(V, E)` | token ids | `input.weight` $[V;E]$ (as `nn.Embedding`) |
| dense | `InputLayer.Dense(I, E)` | $[T;B;I]$ floats | `input.weight` $[E;I]$, `input.bias` $[E]$ (as `nn.Linear`) |
| recurrent | `Layer.recurrent cell` | the layer below | `l0.weight_ih`, … (the cell's own blocks) |
| bidirectional | `Layer.bidirectional cell`, `Layer.bidirectionalWith Sum cell` | the layer below, both ways | `l0.…` and `l0.reverse.…` |
| readout | `Output = O` | the top layer (or the head's pooling) | `readout.weight` $[O;W]$, `readout.bias` $[O]$ |

| head | shape | inputs | targets |
| --- | --- | --- | --- |
| `PerStep` | (5) synced many-to-many; the character model | $[T;B]$ ids or $[T;B;I]$ | $[T;B]$ classes or $[T;B;O]$ |
| `ManyToOne Last` / `Mean` / `Max` | (3) many-to-one | as above | $[B]$ or $[B;O]$ |
| `OneToOne` | (1) one-to-one | $[B;I]$ | $[B]$ or $[B;O]$ |
| `OneToMany InitialState` / `InputAtEachStep` | (2) one-to-many | $[B;I]$ | $[T;B]$ or $[T;B;O]$ |
| `EncoderDecoder decoder` | (4) many-to-many | source $[S;B]$ | target ids $[T;B]$ ending in `Eos` |

Every head has a loss (`Heads.loss`), predictions (`Heads.predict`) and metrics (`Heads.evaluate`: loss,
accuracy, exact match, mean absolute error), and every one of them skips padding.
*)
(*** hide ***)
#r "../SeqNets.FSharp/bin/Release/net10.0/TorchSharp.dll"
#r "../SeqNets.FSharp/bin/Release/net10.0/SeqNets.Core.dll"
SeqNets.Native.ensure ()

/// Stops the script with exit code 1 when a claim of the page does not hold.
let check (claim: string) (holds: bool) =
    if not holds then
        eprintfn "FAILED: %s" claim
        exit 1
(**
## A stacked bidirectional network over padded sentences

Two bidirectional GRU layers over embedded tokens, classifying each row from its pooled states:
*)
open TorchSharp
open SeqNets

let spec =
    { Input = Embedding(20, 8)                                                        // 20 tokens → 8 wide
      Layers = Layer.stack 2 (Bidirectional Concat) 8 (fun width -> Cells.Gru.create Cells.PyTorch width 16)
      Dropout = 0.2                                                                   // between the layers, in training
      Head = ManyToOne Last
      Output = 3
      Loss = CrossEntropy }
let net = new Network(spec, torch.float32, 1UL)
printfn "%s" (net.Describe ())
// embedding 20 → 8 → gru-pytorch 16 bidirectional → gru-pytorch 16 bidirectional → many-to-one (last state) → readout 3; 7,555 parameters
(*** hide ***)
check "the description names every layer" (net.Describe().Contains "gru-pytorch 16 bidirectional → gru-pytorch 16 bidirectional")
check "two bidirectional GRU layers match one nn.GRU(8, 16, 2, bidirectional=True): the fused path applies" net.HasFusedPath
check "the flat parameter count is the sum of the blocks" (net.ParameterCount = net.Layout.Count)
(**
A batch of three sentences of lengths 5, 2 and 4, padded to $T = 5$. The backward direction of each row
starts at the row's **own** last token, not at the padding (the packed-sequence mistake); the final state
of each direction is the row's own; padded outputs are zero. So a padded batch gives exactly what each row
gives alone:
*)
let ids = torch.tensor([| 3L; 7L; 1L; 9L; 2L; 4L; 5L; 0L; 6L; 8L; 0L; 2L; 11L; 0L; 0L |]).reshape(5L, 3L)  // [T; B], 0 = padding
let lengths = [| 5L; 2L; 4L |]
let batch = Heads.predict net Step ids (Some lengths) None
let alone = [| for b in 0 .. 2 -> Heads.predict net Step (ids.narrow(1L, int64 b, 1L).narrow(0L, 0L, lengths[b])) None None |]
(*** hide ***)
let rowsAgree =
    alone |> Array.mapi (fun b p -> p.Values.item<int64> () = batch.Values[int64 b].item<int64> ()) |> Array.forall id
check "the padded batch predicts what each row alone predicts" rowsAgree
let fused = Heads.predict net Fused ids (Some lengths) None
check "and the fused path (pack_padded_sequence) predicts the same" (fused.Values.eq(batch.Values).all().item<bool> ())
(**
The two paths are one network: the fused module's weights are views of `net.Parameters`, and a test
checks identical outputs, final states and gradients on both for every fused-capable stack (several
layers, one direction or both, padded or not). Layers libtorch has no kernel for — the lecture's GRU,
the multiplicative RNN, your own cells, a `Sum` merge, mixed families — run on the step path. Every
network of built-in cells (any mix, merge or lengths) also runs on the derived path (`Derived`: the same
unroll with the hand-derived backward pass, see [training.md](training.md)); a test checks it against the
step path the same way.

## A stack of cells is a cell

For analysis a stack is itself a cell (`Stack.create`): its state is the layers' states concatenated (top
layer first, so that its output is the top layer's $h$ as for every cell), its $\theta$ the layers' in order.
Its $c_t$ and $b_t$ come from the layers' own by the chain rule — layer $l$ at time $t$ reads layer
$l-1$'s *current* state, through each cell's input Jacobian $\partial s_t / \partial x_t$ — so the lecture's
identity, every BPTT route and truncation apply to stacks unchanged:
*)
let stack = Stack.create [ Cells.Lstm.create 3 5; Cells.Gru.create Cells.Lecture 5 4; Cells.Elman.create Cells.Tanh 4 6 ]
let case = Verify.randomCase stack torch.float64 Moderate 12 2 (new torch.Generator(3UL))
let result = Verify.identity stack case
printfn "%O: worst relative disagreement %.1e (hand-derived: %b)" stack result.WorstError result.HandDerived
(*** hide ***)
check "a mixed stack passes the identity with chain-rule Jacobians" (result.HandDerived && result.WorstError < 1e-9)
check "the stack's state is the layers' states concatenated" (stack.StateSize = 10 + 4 + 6)
(**
## Training any network

`Trainer` takes any network and any source of batches: `TextStreams` (B streams over one text, the
state carried from batch to batch) or `GeneratedBatches` (batch $k$ made by a function of $k$). Full,
truncated and randomized BPTT, clipping and the optimizers apply as to the character model; where a
strategy cannot apply, the trainer says which and why (truncation inside a bidirectional layer, or in a
one-to-many head). Here the many-to-one network above learns whether a row holds token 7:
*)
let makeBatch (k: int) =
    let g = new torch.Generator(uint64 (100 + k))
    let x = torch.randint(1L, 20L, [| 6L; 16L |], generator = g)                       // [T; B]
    let lengths = Array.init 16 (fun b -> int64 (2 + (k + b) % 5))
    let real = torch.arange(6L).unsqueeze(1L).lt (torch.tensor(lengths).unsqueeze 0L) // [T; B]
    let x = torch.where(real, x, torch.zeros_like x)
    let y = (x.eq(7L.ToScalar()).logical_and real).any(0L).to_type torch.int64       // [B]: does the row hold a 7?
    { Inputs = x; Lengths = Some lengths; Targets = y; TargetLengths = None }
let trainer = new Trainer(net, GeneratedBatches(1000, 16, makeBatch), { TrainingConfig.Default with Strategy = Full; LearningRate = 1e-2 })
for _ in 1 .. 300 do trainer.Step () |> ignore
let heldOut = Heads.evaluate net net.DefaultPath (makeBatch 5000)
printfn "held-out accuracy %.2f" heldOut.Accuracy
(*** hide ***)
check "the network learns the task (held-out accuracy at least 0.9)" (heldOut.Accuracy >= 0.9)
(**
Checkpoints store the network's description (`Description.toJson`), so a file names what it holds and
`Checkpoint.load` rebuilds it; a user-defined cell is rebuilt by name once registered with
`CellCatalog.register`. `Interop.exportNetwork` writes any network as a PyTorch state dict under PyTorch's
own names (`rnn.weight_ih_l1_reverse`, `out.weight`, …; a user's cell under its block names), and
`Interop.importRecurrentLayers` reads a bare `nn.LSTM(…, bidirectional=True)` state dict into a network's
layers. Checkpoints of format 1 (character models of earlier versions) still load and resume.

The character model is one such network: `CharModel.create config dtype seed` is
`new Network(CharModel.spec config, dtype, seed)` — one-hot characters, $L$ layers of one family, a
per-step readout over the vocabulary.

[custom-cells.md](custom-cells.md) takes a user-defined cell through all of it; [tasks.md](tasks.md) shows
the generated tasks, one per shape.
*)
(*** hide ***)
(trainer :> System.IDisposable).Dispose ()
(net :> System.IDisposable).Dispose ()
printfn "every claim of this page holds"
