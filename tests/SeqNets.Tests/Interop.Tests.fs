/// PyTorch interop: PyTorch's own state dicts and outputs (tests/fixtures/torch, written by
/// tools/make_torch_fixture.py with PyTorch 1.13) reproduced by SeqNets, exact round trips, files
/// that TorchSharp's modules load, and clear errors for files that do not fit.
/// Legend: T time, B batch, I input, H hidden, V vocabulary, L layers.
module SeqNets.Tests.InteropTests

open System
open System.IO
open Expecto
open TorchSharp
open TorchSharp.PyBridge
open SeqNets
open SeqNets.Tests.Common

/// tests/fixtures/torch.
let private fixtures = lazy (fixturesDir "torch")

let private fixture name = Path.Combine(fixtures.Value, name)

let private withDir (f: string -> unit) =
    let d = Directory.CreateTempSubdirectory "seqnets-interop-"
    try f d.FullName finally d.Delete true

/// PyTorch's float32 results against ours: max |difference| ≤ 1e-6.
let private float32Tolerance = 1e-6

let private within (what: string) (tol: float) (actual: torch.Tensor) (expected: torch.Tensor) =
    Expect.sequenceEqual actual.shape expected.shape $"{what}: shapes"
    Expect.equal actual.dtype expected.dtype $"{what}: dtypes"
    let d = Tensors.maxAbs (actual - expected)
    if not (d <= tol) then failtest $"{what}: max |difference| {d:E3} > {tol:E1}"

let private exactlyEqual (what: string) (actual: torch.Tensor) (expected: torch.Tensor) =
    Expect.sequenceEqual actual.shape expected.shape $"{what}: shapes"
    Expect.equal actual.dtype expected.dtype $"{what}: dtypes"
    Expect.isTrue (actual.eq(expected).all().item<bool> ()) $"{what}: values differ"

/// The fixtures' one-layer sizes (tools/make_torch_fixture.py): T = 7, B = 2, I = 3, H = 5.
let private I, H = 3, 5

let private pytorchCells =
    [ "rnn_tanh", "elman-tanh", (fun () -> Cells.Elman.create Cells.Tanh I H)
      "rnn_relu", "elman-relu", (fun () -> Cells.Elman.create Cells.Relu I H)
      "gru", "gru-pytorch", (fun () -> Cells.Gru.create Cells.PyTorch I H)
      "lstm", "lstm", (fun () -> Cells.Lstm.create I H) ]

let private pytorchKinds = [ ElmanTanh; ElmanRelu; GruPyTorch; Lstm ]

/// Expects a StateDictException naming the file, the key (None: the file as a whole) and the problem.
let private expectStateDict (path: string) (key: string option) (fragments: string list) (f: unit -> unit) =
    let e = Expect.throwsC f id
    match e with
    | :? StateDictException as s ->
        Expect.equal s.Path path "names the file"
        Expect.stringContains s.Message path "the message names the file"
        match key with
        | Some k ->
            Expect.equal s.Key k "names the key"
            Expect.stringContains s.Message $"'{k}'" "the message names the key"
        | None -> Expect.isNull s.Key "the file as a whole"
        for fragment in fragments do Expect.stringContains s.Problem fragment "names the problem"
    | other -> failtest $"expected StateDictException, got {other.GetType().Name}: {other.Message}"

/// Expects an ArgumentException (not a file problem) whose message holds every fragment.
let private expectArgument (fragments: string list) (f: unit -> unit) =
    let e = Expect.throwsC f id
    match e with
    | :? StateDictException as s -> failtest $"expected a plain ArgumentException, got StateDictException: {s.Message}"
    | :? ArgumentException as a -> for fragment in fragments do Expect.stringContains a.Message fragment "names the problem"
    | other -> failtest $"expected ArgumentException, got {other.GetType().Name}: {other.Message}"

/// A TorchSharp module with PyTorch's CharModel names: self.rnn = nn.LSTM(V, H, L), self.out = nn.Linear(H, V).
type private TorchCharModel(V: int64, H: int64, L: int64) as this =
    inherit torch.nn.Module<torch.Tensor, torch.Tensor>("CharModel")
    let rnn = torch.nn.LSTM(V, H, L)
    let out = torch.nn.Linear(H, V)
    do this.RegisterComponents()
    /// Logits [T; B; V] of one-hot ids [T; B] from a zero state.
    override _.forward(ids: torch.Tensor) =
        let x = torch.nn.functional.one_hot(ids, V).to_type torch.float32 // [T; B; V]
        let struct (h, _, _) = rnn.forward(x, Nullable()) // [T; B; H]
        out.forward h

[<Tests>]
let tests =
    testList "Interop" [
        testList "PyTorch's state dicts reproduce PyTorch's outputs" [
            for file, name, make in pytorchCells ->
                test $"{file}.pt into {name}: unroll = PyTorch within 1e-6 (float32)" {
                    use _ = torch.NewDisposeScope()
                    let cell = make ()
                    let theta = Interop.importCell cell (fixture $"{file}.pt")
                    Expect.equal theta.dtype torch.float32 "the file's dtype"
                    Expect.sequenceEqual theta.shape [| int64 cell.ParameterCount |] "θ: [P]"
                    let io = Interop.readStateDict (fixture $"{file}.io.pt")
                    let xs, y = io["x"], io["y"] // [T; B; I], [T; B; H]
                    let h0, hn = io["h0"].squeeze 0L, io["hn"].squeeze 0L // [B; H]
                    let s0 = if name = "lstm" then torch.cat([| h0; io["c0"].squeeze 0L |], 1L) else h0 // [B; S]
                    let states = Recurrence.unroll cell theta xs s0 // [T+1; B; S]
                    within "outputs h_1 … h_T" float32Tolerance (Recurrence.outputs cell states) y
                    let last = states[states.shape[0] - 1L] // [B; S]
                    within "final h_T" float32Tolerance (Cell.output cell last) hn
                    if name = "lstm" then
                        let cn = io["cn"].squeeze 0L // [B; H]
                        within "final c_T" float32Tolerance (last.narrow(1L, int64 H, int64 H)) cn
                }

            for path in [ Step; Fused ] ->
                test $"charmodel_lstm.pt into a CharModel: {path} path logits = PyTorch within 1e-6 (float32)" {
                    use _ = torch.NewDisposeScope()
                    use model = Interop.importModel Lstm (fixture "charmodel_lstm.pt")
                    Expect.equal (CharModel.tryConfig model) (Some { Kind = Lstm; VocabularySize = 7; HiddenSize = 6; Layers = 2 }) "V, H and L from the shapes"
                    Expect.equal model.DType torch.float32 "the file's dtype"
                    let io = Interop.readStateDict (fixture "charmodel_lstm.io.pt")
                    let h0, c0 = io["h0"], io["c0"] // [L; B; H]
                    let states = Array.init 2 (fun l -> torch.cat([| h0[l]; c0[l] |], 1L)) // L × [B; 2H]
                    use _ = torch.no_grad ()
                    let logits, finals = model.Forward(path, io["ids"], states) // [T; B; V]
                    let expected, hn, cn = io["logits"], io["hn"], io["cn"] // [T; B; V], [L; B; H], [L; B; H]
                    within "logits" float32Tolerance logits expected
                    for l in 0 .. 1 do
                        within $"layer {l} final h" float32Tolerance (finals[l].narrow(1L, 0L, 6L)) hn[l]
                        within $"layer {l} final c" float32Tolerance (finals[l].narrow(1L, 6L, 6L)) cn[l]
                }
        ]

        testList "export then import is exact" [
            for _, name, make in pytorchCells do
                for dtype in [ torch.float32; torch.float64 ] ->
                    test $"{name} θ, {dtype}" {
                        withDir (fun dir ->
                            use _ = torch.NewDisposeScope()
                            let cell = make ()
                            let theta = Cell.initParameters cell dtype (generator 7)
                            let path = Path.Combine(dir, "cell.pt")
                            Interop.exportCell cell theta path
                            exactlyEqual "θ" (Interop.importCell cell path) theta
                            let keys = Interop.readStateDict path |> Seq.map _.Key |> Set.ofSeq
                            Expect.equal keys (set [ "weight_ih_l0"; "weight_hh_l0"; "bias_ih_l0"; "bias_hh_l0" ]) "PyTorch's keys")
                    }

            for kind in pytorchKinds ->
                test $"a {kind} CharModel (V = 7, H = 6, L = 3)" {
                    withDir (fun dir ->
                        let config = { Kind = kind; VocabularySize = 7; HiddenSize = 6; Layers = 3 }
                        use model = SeqNets.CharModel.create config torch.float64 21UL
                        let path = Path.Combine(dir, "model.pt")
                        Interop.exportModel model path
                        use back = Interop.importModel kind path
                        Expect.equal (CharModel.tryConfig back) (Some config) "config"
                        exactlyEqual "parameters" (back.Parameters.detach ()) (model.Parameters.detach ()))
                }

            yield test "PyTorch's file, re-exported by SeqNets, holds the same tensors" {
                withDir (fun dir ->
                    use _ = torch.NewDisposeScope()
                    use model = Interop.importModel Lstm (fixture "charmodel_lstm.pt")
                    let path = Path.Combine(dir, "again.pt")
                    Interop.exportModel model path
                    let theirs, ours = Interop.readStateDict (fixture "charmodel_lstm.pt"), Interop.readStateDict path
                    Expect.equal (Set.ofSeq ours.Keys) (Set.ofSeq theirs.Keys) "keys"
                    for KeyValue(k, t) in theirs do exactlyEqual k (ours.Item k) t)
            }

            yield test "export overwrites an existing, longer file" {
                withDir (fun dir ->
                    use _ = torch.NewDisposeScope()
                    let path = Path.Combine(dir, "cell.pt")
                    File.WriteAllBytes(path, Array.create 100_000 0x41uy)
                    let cell = Cells.Gru.create Cells.PyTorch I H
                    let theta = Cell.initParameters cell torch.float32 (generator 8)
                    Interop.exportCell cell theta path
                    exactlyEqual "θ" (Interop.importCell cell path) theta)
            }
        ]

        testList "TorchSharp's modules load SeqNets' files" [
            test "nn.LSTM.load_py of an exported cell runs like Recurrence.unroll" {
                withDir (fun dir ->
                    use _ = torch.NewDisposeScope()
                    let cell = Cells.Lstm.create I H
                    let theta = Cell.initParameters cell torch.float64 (generator 9)
                    let path = Path.Combine(dir, "lstm.pt")
                    Interop.exportCell cell theta path
                    use lstm = torch.nn.LSTM(int64 I, int64 H, dtype = Nullable<torch.ScalarType> torch.float64)
                    lstm.load_py(path, strict = true) |> ignore
                    let xs = torch.randn([| 4L; 2L; int64 I |], dtype = torch.float64, generator = generator 10) // [T; B; I]
                    let s0 = torch.randn([| 2L; 2L * int64 H |], dtype = torch.float64, generator = generator 11) // [B; 2H]
                    let h0, c0 = s0.narrow(1L, 0L, int64 H).unsqueeze 0L, s0.narrow(1L, int64 H, int64 H).unsqueeze 0L
                    use _ = torch.no_grad ()
                    let struct (y, _, _) = lstm.forward(xs, Nullable<struct (torch.Tensor * torch.Tensor)>(struct (h0, c0)))
                    let ours = Recurrence.outputs cell (Recurrence.unroll cell theta xs s0)
                    close "nn.LSTM vs unroll" 1e-12 ours y)
            }

            test "a TorchSharp CharModel (rnn, out) loads an exported model strictly and runs like it" {
                withDir (fun dir ->
                    use _ = torch.NewDisposeScope()
                    use model = SeqNets.CharModel.create { Kind = Lstm; VocabularySize = 7; HiddenSize = 6; Layers = 2 } torch.float32 5UL
                    let path = Path.Combine(dir, "model.pt")
                    Interop.exportModel model path
                    use theirs = new TorchCharModel(7L, 6L, 2L)
                    theirs.load_py(path, strict = true) |> ignore
                    let ids = torch.randint(7L, [| 5L; 3L |], generator = generator 12) // [T; B]
                    use _ = torch.no_grad ()
                    let ours, _ = model.Forward(Step, ids, model.ZeroState 3)
                    within "logits" float32Tolerance ours (theirs.forward ids))
            }
        ]

        testList "clear errors" [
            test "cells without a PyTorch module: the lecture's GRU and the multiplicative RNN" {
                use _ = torch.NewDisposeScope()
                let lecture = Cells.Gru.create Cells.Lecture I H
                expectArgument [ "gru-lecture"; "reset gate" ] (fun () -> Interop.importCell lecture (fixture "gru.pt") |> ignore)
                expectArgument [ "gru-lecture" ] (fun () -> Interop.exportCell lecture (Cell.initParameters lecture torch.float32 (generator 1)) "unused.pt")
                let mrnn = Cells.MultiplicativeRnn.create I H 4
                expectArgument [ mrnn.Name; "no PyTorch module" ] (fun () -> Interop.importCell mrnn (fixture "rnn_tanh.pt") |> ignore)
            }

            test "CharModels of kinds without a PyTorch module" {
                for kind in [ GruLecture; MultiplicativeRnn 3 ] do
                    use model = SeqNets.CharModel.create { Kind = kind; VocabularySize = 7; HiddenSize = 6; Layers = 1 } torch.float32 1UL
                    expectArgument [ string kind; "PyTorch-form" ] (fun () -> Interop.exportModel model "unused.pt")
                    expectArgument [ string kind; "PyTorch-form" ] (fun () -> Interop.importModel kind (fixture "charmodel_lstm.pt") |> ignore)
            }

            test "another layer's file: shape named with expected and actual" {
                let path = fixture "gru.pt"
                expectStateDict path (Some "weight_ih_l0") [ "[20; 3]"; "[15; 3]" ] (fun () -> Interop.importCell (Cells.Lstm.create I H) path |> ignore)
            }

            test "other sizes: shape named with expected and actual" {
                let path = fixture "lstm.pt"
                expectStateDict path (Some "weight_ih_l0") [ "[16; 3]"; "[20; 3]" ] (fun () -> Interop.importCell (Cells.Lstm.create I 4) path |> ignore)
                expectStateDict path (Some "weight_ih_l0") [ "[20; 4]"; "[20; 3]" ] (fun () -> Interop.importCell (Cells.Lstm.create 4 H) path |> ignore)
            }

            test "a CharModel file into a cell: the missing key and the keys the file has" {
                let path = fixture "charmodel_lstm.pt"
                expectStateDict path (Some "weight_ih_l0") [ "missing"; "'rnn.weight_ih_l0'"; "Interop.importModel" ] (fun () -> Interop.importCell (Cells.Lstm.create 7 6) path |> ignore)
            }

            test "a layer file into a CharModel: the missing key" {
                let path = fixture "lstm.pt"
                expectStateDict path (Some "rnn.weight_ih_l0") [ "missing"; "weight_ih_l0"; "Interop.importCell" ] (fun () -> Interop.importModel Lstm path |> ignore)
            }

            test "an LSTM model read as a GRU model: the shape that does not fit" {
                let path = fixture "charmodel_lstm.pt"
                // 24 rows read as 3 GRU gates give H = 8, so U must be [24; 8]; the file's is [24; 6].
                expectStateDict path (Some "rnn.weight_hh_l0") [ "[24; 8]"; "[24; 6]" ] (fun () -> Interop.importModel GruPyTorch path |> ignore)
            }

            test "extra, wrong-dtype and mixed-dtype keys" {
                withDir (fun dir ->
                    use _ = torch.NewDisposeScope()
                    let cell = Cells.Elman.create Cells.Tanh I H
                    let theta = Cell.initParameters cell torch.float32 (generator 2)
                    let blocks = [ for b in cell.Layout.Blocks -> b.Name + "_l0", cell.Layout.View(theta, b.Name) ]
                    let write name entries =
                        let path = Path.Combine(dir, name)
                        Interop.writeStateDict path entries
                        path
                    let twoLayers = write "two.pt" (blocks @ [ "weight_ih_l1", torch.zeros([| 5L; 5L |]) ])
                    expectStateDict twoLayers (Some "weight_ih_l1") [ "unexpected"; "weight_hh_l0" ] (fun () -> Interop.importCell cell twoLayers |> ignore)
                    let bidirectional = write "bi.pt" (blocks @ [ "weight_ih_l0_reverse", torch.zeros([| 5L; 3L |]) ])
                    expectStateDict bidirectional (Some "weight_ih_l0_reverse") [ "bidirectional" ] (fun () -> Interop.importCell cell bidirectional |> ignore)
                    let ints = write "ints.pt" (blocks |> List.map (fun (k, t) -> k, if k = "bias_hh_l0" then t.to_type torch.int64 else t))
                    expectStateDict ints (Some "bias_hh_l0") [ "float32 or float64"; "Int64" ] (fun () -> Interop.importCell cell ints |> ignore)
                    let mixed = write "mixed.pt" (blocks |> List.map (fun (k, t) -> k, if k = "bias_ih_l0" then t.to_type torch.float64 else t))
                    expectStateDict mixed (Some "bias_ih_l0") [ "Float32"; "Float64" ] (fun () -> Interop.importCell cell mixed |> ignore))
            }

            test "files that are not zip-format state dicts" {
                withDir (fun dir ->
                    let legacy = fixture "legacy_format.pt"
                    expectStateDict legacy None [ "legacy"; "_use_new_zipfile_serialization=True" ] (fun () -> Interop.importCell (Cells.Elman.create Cells.Tanh I H) legacy |> ignore)
                    let text = Path.Combine(dir, "notes.pt")
                    File.WriteAllText(text, "not a tensor file")
                    expectStateDict text None [ "not a PyTorch .pt file" ] (fun () -> Interop.readStateDict text |> ignore)
                    let missing = Path.Combine(dir, "absent.pt")
                    expectStateDict missing None [ "no such file" ] (fun () -> Interop.readStateDict missing |> ignore))
            }

            test "CRC-32 is the zip format's (ISO-HDLC): the check value of \"123456789\" is CBF43926" {
                Expect.equal (Crc32.ofBytes "123456789"B) 0xCBF43926u "check value"
                Expect.equal (Crc32.ofBytes [||]) 0u "empty"
            }

            test "a damaged entry is named with its CRC-32, not read as other weights" {
                withDir (fun dir ->
                    let source = fixture "lstm.pt"
                    let bytes = File.ReadAllBytes source
                    // A bit in the middle of the file: tensor data.
                    let at = bytes.Length / 2
                    bytes[at] <- bytes[at] ^^^ 0x10uy
                    let damaged = Path.Combine(dir, "damaged.pt")
                    File.WriteAllBytes(damaged, bytes)
                    let e = Expect.throwsC (fun () -> Interop.readStateDict damaged |> ignore) id
                    Expect.stringContains e.Message damaged "names the file"
                    Expect.stringContains e.Message "corrupt" "says it is corrupt")
            }

            test "every single-bit flip of a .pt file is an error or reads the very same tensors" {
                withDir (fun dir ->
                    let source = fixture "gru.pt"
                    let original = File.ReadAllBytes source
                    let reference = Interop.readStateDict source
                    let same (d: Collections.Generic.IReadOnlyDictionary<string, torch.Tensor>) =
                        d.Count = reference.Count
                        && reference |> Seq.forall (fun kv ->
                            match d.TryGetValue kv.Key with
                            | true, t -> t.dtype = kv.Value.dtype && t.shape = kv.Value.shape && t.eq(kv.Value).all().item<bool> ()
                            | _ -> false)
                    let path = Path.Combine(dir, "flipped.pt")
                    let mutable errors, harmless = 0, 0
                    // Every byte, one bit each (bit i mod 8 of byte i).
                    for i in 0 .. original.Length - 1 do
                        let b = Array.copy original
                        b[i] <- b[i] ^^^ (1uy <<< (i % 8))
                        File.WriteAllBytes(path, b)
                        match (try Ok(Interop.readStateDict path) with :? StateDictException as e -> Error e.Message) with
                        | Error _ -> errors <- errors + 1
                        | Ok d ->
                            if not (same d) then failtest $"byte {i}, bit {i % 8}: read without an error, but the tensors differ"
                            harmless <- harmless + 1
                            for t in d.Values do t.Dispose()
                    Expect.isGreaterThan errors (original.Length / 2) $"most flips are caught ({errors} errors, {harmless} harmless of {original.Length})")
            }

            test "θ of the wrong size for export: ArgumentException naming theta" {
                let cell = Cells.Lstm.create I H
                expectArgument [ "theta"; $"P = {cell.ParameterCount}" ] (fun () -> Interop.exportCell cell (torch.zeros([| 3L |])) "unused.pt")
            }
        ]
    ]
