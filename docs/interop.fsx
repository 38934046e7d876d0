(**
# PyTorch interop

`SeqNets.Interop` moves parameters between SeqNets and PyTorch as **state dicts** in `.pt` files: the files
`torch.save(module.state_dict(), path)` writes and `torch.load(path)` reads. It covers the cells with a
PyTorch module — Elman (tanh, ReLU) as `nn.RNN`, the PyTorch-form GRU as `nn.GRU`, the LSTM as `nn.LSTM` —
one layer at a time or as a whole `CharModel`. Nothing is reordered or transposed on the way: a cell's
$\theta$ already consists of PyTorch's blocks `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh` with PyTorch's
gate order, so a file's values become $\theta$'s values one for one, and back.

| function | does |
| --- | --- |
| `Interop.exportCell cell θ path` | writes $\theta$ $[P]$ as the state dict of a one-layer `nn.RNN` / `nn.GRU` / `nn.LSTM`$(I, H)$, in $\theta$'s dtype |
| `Interop.importCell cell path` | reads such a file into a fresh $\theta$ $[P]$ in the file's dtype (float32 or float64) |
| `Interop.exportModel model path` | writes a `CharModel` as the state dict of PyTorch's `CharModel(nn.Module)` below |
| `Interop.importModel kind path` | reads such a file into a new `CharModel` of `kind`; $V$, $H$, $L$ and the dtype come from the file |
| `Interop.readStateDict path` | every tensor of a `.pt` state dict, by key (the caller disposes them) |
| `Interop.writeStateDict path entries` | named tensors, in order, as a `.pt` state dict |

Files are written atomically (a temporary file next to the target, then renamed over it), so an
interrupted export leaves the previous file intact.

## Key layout

$G$ is the number of gate blocks: 1 for Elman, 3 for the GRU (rows $r, z, n$), 4 for the LSTM (rows
$i, f, g, o$). $I$ input, $H$ hidden, $V$ vocabulary, $L$ layers, $k = 0 \dots L-1$.

| key | shape | SeqNets |
| --- | --- | --- |
| **one layer** (`nn.RNN` / `nn.GRU` / `nn.LSTM`$(I, H)$) | | `cell.Layout.View(θ, …)` |
| `weight_ih_l0` | $[GH; I]$ | `weight_ih` |
| `weight_hh_l0` | $[GH; H]$ | `weight_hh` |
| `bias_ih_l0` | $[GH]$ | `bias_ih` |
| `bias_hh_l0` | $[GH]$ | `bias_hh` |
| **`CharModel`** (`self.rnn`, `self.out`) | | `model.Parameters` = $[\theta_1; \dots; \theta_L; w_o]$ |
| `rnn.weight_ih_l`$k$ | $[GH; V]$ for $k = 0$, $[GH; H]$ after | `weight_ih` of `model.LayerParameters k` |
| `rnn.weight_hh_l`$k$ | $[GH; H]$ | `weight_hh` of layer $k$ |
| `rnn.bias_ih_l`$k$, `rnn.bias_hh_l`$k$ | $[GH]$ | `bias_ih`, `bias_hh` of layer $k$ |
| `out.weight` | $[V; H]$ | `readout.weight`: `model.View "readout.weight"` |
| `out.bias` | $[V]$ | `readout.bias`: `model.View "readout.bias"` |

The prefixes are `Interop.RecurrentPrefix` (`"rnn."`) and `Interop.OutputPrefix` (`"out."`): the names of the
Python module's attributes. The PyTorch side of a `CharModel` is the class of `bench/peer_charlm.py`:

```python
class CharModel(nn.Module):
    def __init__(self, vocab, hidden, layers):
        super().__init__()
        self.vocab = vocab
        self.rnn = nn.LSTM(vocab, hidden, layers)    # or nn.GRU, nn.RNN(..., nonlinearity="tanh" / "relu")
        self.out = nn.Linear(hidden, vocab)

    def forward(self, ids, state):                   # ids: [T; B]
        x = F.one_hot(ids, self.vocab).float()       # [T; B; V]
        h, state = self.rnn(x, state)
        return self.out(h), state
```

States are not part of a state dict. SeqNets keeps one flat state per layer, $s$ $[B; S]$; PyTorch stacks the
layers: `h` $[L; B; H]$ (and `c` for the LSTM). For layer $k$, $s_k$ = `h[k]` (Elman, GRU) or
`torch.cat([h[k], c[k]], 1)` (LSTM, $s = [h; c]$).

## From PyTorch to SeqNets

```python
torch.save(model.state_dict(), "charlm.pt")         # the zip format (PyTorch ≥ 1.6 writes it by default)
```

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

/// Whether `f` raises the exception 'e with a message containing `text`.
let raises<'e when 'e :> exn> (text: string) (f: unit -> unit) =
    try f (); false with :? 'e as e -> e.Message.Contains text

// The files the page reads, written by PyTorch: the fixtures, in a folder of their own.
let fixtures = System.IO.Path.Combine(__SOURCE_DIRECTORY__, "..", "tests", "fixtures", "torch")
let fixture name = System.IO.Path.Combine(fixtures, name)
let folder = System.IO.Directory.CreateTempSubdirectory "seqnets-interop-doc-"
System.IO.File.Copy(fixture "charmodel_lstm.pt", System.IO.Path.Combine(folder.FullName, "charlm.pt"))
System.IO.File.Copy(fixture "lstm.pt", System.IO.Path.Combine(folder.FullName, "lstm.pt"))
System.Environment.CurrentDirectory <- folder.FullName
(**
*)
open TorchSharp
open SeqNets

let model = Interop.importModel Lstm "charlm.pt"    // V, H, L and the dtype from the file
printfn "%s" (model.Describe ())
let ids = torch.tensor([| 0L; 3L; 1L; 2L |]).view(2L, 2L)                  // [T; B]
let logits, states = model.Forward(model.DefaultPath, ids, model.ZeroState 2) // [T; B; V], L × [B; S]

let cell = Cells.Lstm.create 3 5                     // one layer: nn.LSTM(3, 5)
let theta = Interop.importCell cell "lstm.pt"        // θ: [P], P = 200
(*** hide ***)
check "V, H, L from the file" (CharModel.tryConfig model = Some { Kind = Lstm; VocabularySize = 7; HiddenSize = 6; Layers = 2 })
check "logits [T; B; V], one state [B; S] per layer"
    (logits.shape = [| 2L; 2L; 7L |] && states.Length = 2 && states |> Array.forall (fun s -> s.shape = [| 2L; 12L |]))
check "θ: [P], P = 200, float32 like the file" (theta.shape = [| 200L |] && theta.dtype = torch.float32)
// The imported model computes what PyTorch computed, on both paths.
let io = Interop.readStateDict (fixture "charmodel_lstm.io.pt")
let layerStates = [| for k in 0L .. 1L -> torch.cat([| io["h0"][k]; io["c0"][k] |], 1L) |]   // s_k = [h[k]; c[k]]
for path in [ Step; Fused ] do
    let pyLogits, _ = model.Forward(path, io["ids"], layerStates)
    check $"{path} path: PyTorch's logits to 1e-6" ((pyLogits - io["logits"]).abs().max().item<float32> () <= 1e-6f)
let oneLayer = Interop.readStateDict (fixture "lstm.io.pt")
let ysLstm = Recurrence.outputs cell (Recurrence.unroll cell theta oneLayer["x"] (torch.cat([| oneLayer["h0"][0L]; oneLayer["c0"][0L] |], 1L)))
check "one layer: PyTorch's outputs to 1e-6" ((ysLstm - oneLayer["y"]).abs().max().item<float32> () <= 1e-6f)
let before = model.Parameters.detach().clone()
(**
*)
(**

The kind is an argument because a state dict does not record it: `nn.RNN` with tanh and with ReLU have the
same keys and shapes, and only $G$ tells a GRU's rows from an LSTM's.

## From SeqNets to PyTorch

*)
Interop.exportModel model "charlm.pt"
Interop.exportCell cell theta "lstm.pt"
(*** hide ***)
let again = Interop.importModel Lstm "charlm.pt"
check "a model exported and imported again is the same" (Tensors.relativeError again.Parameters before = 0.0)
check "a cell exported and imported again is the same" (Tensors.relativeError (Interop.importCell cell "lstm.pt") theta = 0.0)
(**
*)
(**

```python
model = CharModel(vocab=V, hidden=H, layers=L)
model.load_state_dict(torch.load("charlm.pt"))       # strict: every key, every shape
lstm = nn.LSTM(3, 5)
lstm.load_state_dict(torch.load("lstm.pt", weights_only=True))  # tensors only, no code: also fine
```

A float64 SeqNets model exports float64 tensors; `load_state_dict` copies them into the module's own dtype
(float32 unless the module was made with `.double()` first). TorchSharp loads the same files with TorchSharp.PyBridge's `module.load_py(path)`.

## Errors

A file that does not fit raises `StateDictException` (an `ArgumentException`) with the file (`Path`), the
key at fault (`Key`, null when the file as a whole is wrong) and the problem, saying what was expected and
what arrived:

* a missing key, with the keys the file has (and a hint when the file is a model read as one layer, or the
  other way round);
* a key no block takes (a second layer in a one-layer file, `_reverse` keys of a bidirectional layer,
  `weight_hr` of an LSTM with `proj_size`);
* a shape other than the cell's or model's, e.g. `expected shape [20; 3], but got [15; 3]` for a GRU file read
  as an LSTM;
* a dtype other than float32 or float64, or parameters of mixed dtypes;
* a file in PyTorch's legacy (pre-1.6) pickle format — re-save it with
  `torch.save(sd, path, _use_new_zipfile_serialization=True)` — and files that are not `.pt` archives at all.

The GRU in the lecture's form (`gru-lecture`) and the multiplicative RNN have no PyTorch module; exporting
or importing them raises `ArgumentException` saying so (PyTorch's `nn.GRU` applies the reset gate after
$U_n h_{t-1} + b_{hn}$, the lecture's form before $U_n$).

*)
(*** hide ***)
check "a GRU file read as an LSTM: the shapes in the message"
    (raises<StateDictException> "expected shape [20; 3], but got [15; 3]" (fun () -> Interop.importCell (Cells.Lstm.create 3 5) (fixture "gru.pt") |> ignore))
check "a StateDictException is an ArgumentException" (typeof<System.ArgumentException>.IsAssignableFrom typeof<StateDictException>)
check "the legacy format is refused" (raises<StateDictException> "" (fun () -> Interop.importCell (Cells.Elman.create Cells.Tanh 3 5) (fixture "legacy_format.pt") |> ignore))
let lectureGru = Cells.Gru.create Cells.Lecture 3 5
check "the lecture-form GRU has no PyTorch module"
    (raises<System.ArgumentException> "" (fun () -> Interop.exportCell lectureGru (Cell.initParameters lectureGru torch.float32 (new torch.Generator(1UL))) "gru.pt"))
(**
*)
(**
## How it reads and writes `.pt` files

Through [TorchSharp.PyBridge](https://github.com/shaltielshmid/TorchSharp.PyBridge) 1.4.4
(`PyTorchPickler.PickleStateDict`, `PyTorchUnpickler.UnpickleStateDict`), which works with TorchSharp
0.107.0. It reads the zip format that `torch.save` has written by default since PyTorch 1.6, including the
`OrderedDict` with `_metadata` that `module.state_dict()` returns; it does not read the legacy format, hence
the error above. It writes a zip archive that PyTorch 1.13's `torch.load` reads, with and without
`weights_only=True`. Its writer stores a tensor's bytes together with the tensor's storage offset and strides,
so SeqNets exports a contiguous copy of each block, never a view into the flat parameters.

## The fixtures

`tests/fixtures/torch/` holds small files written by PyTorch 1.13 with fixed seeds, float32:

| files | module | sizes |
| --- | --- | --- |
| `rnn_tanh.pt`, `rnn_tanh.io.pt` | `nn.RNN(3, 5, nonlinearity="tanh")` | $T = 7$, $B = 2$, $I = 3$, $H = 5$ |
| `rnn_relu.pt`, `rnn_relu.io.pt` | `nn.RNN(3, 5, nonlinearity="relu")` | same |
| `gru.pt`, `gru.io.pt` | `nn.GRU(3, 5)` | same |
| `lstm.pt`, `lstm.io.pt` | `nn.LSTM(3, 5)` | same |
| `charmodel_lstm.pt`, `charmodel_lstm.io.pt` | `CharModel` with `nn.LSTM(7, 6, 2)`, `nn.Linear(6, 7)` | $T = 5$, $B = 3$, $V = 7$, $H = 6$, $L = 2$ |
| `legacy_format.pt` | `nn.RNN(3, 5)` saved in the legacy format | for the error test |

Each `*.pt` is the module's `state_dict()`; each `*.io.pt` is a dict of tensors: the input (`x` $[T;B;I]$ or
`ids` $[T;B]$), the initial state (`h0`, `c0` $[L;B;H]$) and PyTorch's results (`y` $[T;B;H]$ or `logits`
$[T;B;V]$, `hn`, `cn`). The tests (`tests/SeqNets.Tests/Interop.Tests.fs`) import each state dict, run
`Recurrence.unroll` or `CharModel.Forward` on both the step and fused paths, and require PyTorch's results to
within $10^{-6}$. Regenerate the fixtures with Debian's PyTorch and OpenBLAS:

```sh
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 tools/make_torch_fixture.py
```

The zip-format files come out byte for byte the same on every run; the legacy-format file does not (that
format embeds object ids), which changes nothing in the tests. The same script checks that a file written by
SeqNets loads into the matching PyTorch module with strict keys and shapes:

```sh
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 tools/make_torch_fixture.py \
    --check lstm.pt --kind lstm                      # one layer
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 tools/make_torch_fixture.py \
    --check charlm.pt --kind lstm --model            # a CharModel, prints the first logits
```

Run the interop tests alone with
`dotnet run --project tests/SeqNets.Tests -c Release -- --filter-test-list Interop`.

## From C#

C# callers use `RecurrentNetwork.ExportPyTorch(path)` / `RecurrentNetwork.ImportPyTorch(cell, path, options)`
for one layer and `CharLanguageModel.ExportPyTorch(path)` / `CharLanguageModel.ImportPyTorch(path, corpus, kind)`
for whole character models; file problems raise `SeqNetsStateDictException` (with `Path`, `Key` and
`Problem`). See [getting-started-csharp.md](getting-started-csharp.md#pytorch-interop).
*)
(*** hide ***)
(again :> System.IDisposable).Dispose ()
(model :> System.IDisposable).Dispose ()
System.Environment.CurrentDirectory <- __SOURCE_DIRECTORY__
folder.Delete true
