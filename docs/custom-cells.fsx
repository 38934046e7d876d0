(**
# Your own cell, first-class

A cell you write is a citizen like the built-in LSTM: it unrolls, is verified by the closed form, stacks,
trains under every BPTT strategy, checkpoints, resumes, samples and exports — through the same functions.
This page does all of it with the minimal gated unit (MGU, Zhou et al. 2016), a GRU with one gate:

$$
f_t = \sigma(W_f x_t + U_f h_{t-1} + b_f), \qquad
\tilde h_t = \tanh(W_h x_t + U_h (f_t \odot h_{t-1}) + b_h), \qquad
h_t = (1 - f_t) \odot h_{t-1} + f_t \odot \tilde h_t .
$$

The C# version of this page: [custom-cells-csharp.md](custom-cells-csharp.md).
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
## Define it

A layout names the blocks of $\theta$; the transition is a function of $(\theta, x_t, h_{t-1})$ over a batch.
`Tensors.linear` takes $W$ as $[G;K]$ or, one copy per row, $[B;G;K]$ — so the same function accepts $\theta$
as $[B;P]$ too, which `Cell.withRowParameters` declares: autodiff then computes every row's parameter
Jacobian in one backward pass (20–80× faster for verification).
*)
open TorchSharp
open SeqNets

let mgu (inputSize: int) (hiddenSize: int) =
    let I, H = int64 inputSize, int64 hiddenSize
    let layout = ParameterLayout [ "W_f", [ H; I ]; "U_f", [ H; H ]; "b_f", [ H ]
                                   "W_h", [ H; I ]; "U_h", [ H; H ]; "b_h", [ H ] ]
    Cell.custom "mgu" inputSize hiddenSize hiddenSize layout (fun theta x h ->
        let v name = layout.View(theta, name)
        let f = (Tensors.linear (v "W_f") x + Tensors.linear (v "U_f") h + v "b_f").sigmoid ()        // [B; H]
        let hTilde = (Tensors.linear (v "W_h") x + Tensors.linear (v "U_h") (f * h) + v "b_h").tanh ()  // [B; H]
        (1.0 - f) * h + f * hTilde)
    |> Cell.withRowParameters
(**
A transition that returns the wrong shape is named at once — the cell, the function, what was expected
and what arrived — rather than as a native error deep inside the unroll.

## Verify it by the closed form

Without hand-derived Jacobians the closed form takes autodiff's **local** $c_t = \partial f / \partial h_{t-1}$ and
$b_t = \partial f / \partial \theta$ of each step (`Bptt.localJacobians`); the recurrence $a_t = b_t + c_t a_{t-1}$,
the closed-form sum $\sum_i (\prod_{j=i+1}^{t} c_j) b_i$ and reverse mode through the whole graph must agree:
*)
let cell = mgu 3 5
let case = Verify.randomCase cell torch.float64 Moderate 20 2 (new torch.Generator(1UL))
let identity = Verify.identity cell case
printfn "%O: recurrence vs closed form %.1e, closed form vs reverse mode %.1e" cell identity.RecurrenceVsClosedForm identity.ClosedFormVsAutodiff
(*** hide ***)
check "the MGU passes the identity with autodiff's local Jacobians" (not identity.HandDerived && identity.WorstError < 1e-9)
(**
`Cell.withJacobians` adds hand-derived $c_t$, $b_t$ (checked at every call to be $[B;S;S]$ and $[B;S;P]$) and
`Cell.withInputJacobian` adds $\partial s_t / \partial x_t$, which lets `Stack.create` chain the cell's Jacobians
through a stack.

## Train it on text

`CharModel.ofLayers` makes a next-token network of any layers; `Layer.stack` gives each layer the width
of the one below. Two MGU layers with dropout between them, randomized truncated BPTT (the automatic
path runs it on the cells' equations):
*)
let text = String.replicate 40 "the minimal gated unit keeps one gate. "
let corpus = Corpus.split 0.9 text
let V = corpus.Vocabulary.Size
let net = new Network(CharModel.ofLayers V (Layer.stack 2 Forward V (fun width -> mgu width 32)) 0.1, torch.float32, 1UL)
let trainer = new Trainer(net, corpus.Train, { TrainingConfig.Default with Strategy = Randomized 8.0; Batch = 8; SequenceLength = 16; LearningRate = 1e-2 })
let before = Training.evaluate net trainer.Path corpus.Validation 4 16 8
for _ in 1 .. 250 do trainer.Step () |> ignore
let after = Training.evaluate net trainer.Path corpus.Validation 4 16 8
printfn "%s\nvalidation loss %.3f → %.3f nats/char on the %A path" (net.Describe ()) before after trainer.Path
(*** hide ***)
check "the automatic path for a user's cell and randomized truncation is the step path" (trainer.Path = Step)
check "the MGU learns the text: validation loss below a third of its start" (after < before / 3.0)
(**
## Save, load, resume, sample, export

A checkpoint stores the network's description; a user's cell is rebuilt by name from
`CellCatalog.register` (a checkpoint holding an unregistered cell says which registration it needs):
*)
CellCatalog.register "mgu" mgu
let path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"mgu-{System.Environment.ProcessId}.ckpt")
Checkpoint.save path trainer (Some corpus.Vocabulary)
let saved = Checkpoint.load path
let resumed = Checkpoint.resumeOnText saved corpus.Train                    // the same run, exactly
let sample = Sampling.generate saved.Network corpus.Vocabulary "the " 60 { SamplingOptions.Default with Seed = 2UL }
printfn "the %s" sample
Interop.exportNetwork saved.Network (path + ".pt")                          // rnn.l0.W_f, …, out.weight
(*** hide ***)
let exported = saved.Network.Parameters.detach().clone ()
let next = [ for _ in 1 .. 5 -> trainer.Step().Loss ]
let again = [ for _ in 1 .. 5 -> resumed.Step().Loss ]
check "the resumed run continues exactly" (next = again)
check "sampling is seeded" (Sampling.generate saved.Network corpus.Vocabulary "the " 60 { SamplingOptions.Default with Seed = 2UL } = sample)
let keys = (Interop.readStateDict (path + ".pt")).Keys |> Set.ofSeq
check "the export names the cell's own blocks" (keys.Contains "rnn.l0.W_f" && keys.Contains "rnn.l1.U_h" && keys.Contains "out.weight")
let imported = Interop.importNetwork saved.Network.Spec (path + ".pt")
check "and imports back to the same parameters" (Tensors.relativeError imported.Parameters exported = 0.0)
System.IO.File.Delete path
System.IO.File.Delete(path + ".pt")
printfn "every claim of this page holds"
