/// PyTorch interop: a cell's θ or a whole CharModel as a PyTorch state dict, in the `.pt` files
/// that `torch.save(module.state_dict(), path)` writes and `torch.load(path)` reads (the zip format
/// of PyTorch ≥ 1.6), through TorchSharp.PyBridge.
///
///   one layer    nn.RNN / nn.GRU / nn.LSTM(I, H)   weight_ih_l0 [G·H; I]  weight_hh_l0 [G·H; H]
///                                                   bias_ih_l0 [G·H]       bias_hh_l0 [G·H]
///   CharModel    rnn = nn.RNN / nn.GRU / nn.LSTM(V, H, L), out = nn.Linear(H, V)
///                rnn.<block>_l<k> for k = 0 … L−1 (input V for k = 0, H after), out.weight [V; H], out.bias [V]
///
/// with G = 1 (Elman), 3 (GRU, gates r, z, n) or 4 (LSTM, gates i, f, g, o): SeqNets' θ already
/// has PyTorch's blocks and gate order, so moving a model is a relabelling, value for value.
/// Legend: I input, H hidden, G gates, V vocabulary, L layers.
namespace SeqNets

open System
open System.Collections
open System.Collections.Generic
open System.IO
open TorchSharp
open TorchSharp.PyBridge

/// A PyTorch state dict file that does not fit what was asked of it: the file, the key at fault
/// (null when the problem is the file as a whole) and the problem, with what was expected and what
/// arrived.
type StateDictException(path: string, key: string, problem: string, inner: exn) =
    inherit ArgumentException(
        (if isNull key then $"state dict '{path}': {problem}" else $"state dict '{path}', key '{key}': {problem}"),
        "path", inner)
    new(path, key, problem) = StateDictException(path, key, problem, null)
    /// The file.
    member _.Path = path
    /// The key at fault, or null when the problem concerns the file as a whole.
    member _.Key = key
    /// What is wrong.
    member _.Problem = problem

/// CRC-32 (ISO-HDLC, the zip format's: reflected polynomial 0xEDB88320, initial and final XOR
/// 0xFFFFFFFF).
[<RequireQualifiedAccess>]
module internal Crc32 =
    let private table =
        Array.init 256 (fun n ->
            let mutable c = uint32 n
            for _ in 1 .. 8 do c <- if c &&& 1u <> 0u then 0xEDB88320u ^^^ (c >>> 1) else c >>> 1
            c)

    /// The CRC-32 of everything a stream has left, and the number of bytes read.
    let ofStream (s: Stream) : uint32 * int64 =
        let buffer = Array.zeroCreate<byte> 65536
        let mutable crc = 0xFFFFFFFFu
        let mutable total = 0L
        let mutable n = s.Read(buffer, 0, buffer.Length)
        while n > 0 do
            for i in 0 .. n - 1 do
                crc <- table[int ((crc ^^^ uint32 buffer[i]) &&& 0xFFu)] ^^^ (crc >>> 8)
            total <- total + int64 n
            n <- s.Read(buffer, 0, buffer.Length)
        crc ^^^ 0xFFFFFFFFu, total

    /// The CRC-32 of bytes.
    let ofBytes (bytes: byte[]) = fst (ofStream (new MemoryStream(bytes, false)))

[<RequireQualifiedAccess>]
module Interop =
    /// The prefix of the recurrent layers' keys in a CharModel state dict (`self.rnn`).
    [<Literal>]
    let RecurrentPrefix = "rnn."

    /// The prefix of the output layer's keys in a CharModel state dict (`self.out`).
    [<Literal>]
    let OutputPrefix = "out."

    /// The PyTorch module of a cell name and its number of gate blocks G, or why it has none.
    let private counterpart (name: string) : Result<string * int, string> =
        match name with
        | "elman-tanh" -> Ok("nn.RNN(nonlinearity='tanh')", 1)
        | "elman-relu" -> Ok("nn.RNN(nonlinearity='relu')", 1)
        | "gru-pytorch" -> Ok("nn.GRU", 3)
        | "lstm" -> Ok("nn.LSTM", 4)
        | "gru-lecture" ->
            Error "the lecture's GRU applies the reset gate before U_n (U_n (r ⊙ h)), PyTorch's nn.GRU after it (r ⊙ (U_n h + b_hn)), so no PyTorch module computes it; use gru (Cells.Gru.create PyTorch)"
        | n when n.StartsWith "mrnn" -> Error "the multiplicative RNN has no PyTorch module"
        | n -> Error $"'{n}' is not one of PyTorch's recurrent layers"

    let private supported = "elman-tanh, elman-relu, gru-pytorch (CellKind gru) or lstm"

    /// The cell's PyTorch module name; ArgumentException for a cell PyTorch has no module for.
    let private requireCounterpart (argument: string) (cell: Cell) =
        match counterpart cell.Name with
        | Error why -> Check.fail argument $"{argument}: expected a PyTorch-form cell ({supported}), but got '{cell.Name}': {why}."
        | Ok(moduleName, gates) ->
            // A user-defined cell may borrow a built-in name; its layout must still be PyTorch's.
            let G, H, I = int64 gates, int64 cell.HiddenSize, int64 cell.InputSize
            let expected = [ "weight_ih", [| G * H; I |]; "weight_hh", [| G * H; H |]; "bias_ih", [| G * H |]; "bias_hh", [| G * H |] ]
            let actual = cell.Layout.Blocks |> List.map (fun b -> b.Name, b.Shape)
            if actual <> expected then
                Check.fail argument $"{argument}: expected the layout of {moduleName} ({cell.InputSize}, {cell.HiddenSize}), but '{cell.Name}' has {cell.Layout}."
            moduleName

    let private shapeText (shape: int64[]) = "[" + String.Join("; ", shape) + "]"

    let private keyList (keys: seq<string>) =
        let keys = Seq.sort keys |> List.ofSeq
        let shown = keys |> List.truncate 12
        String.Join(", ", shown) + (if keys.Length > shown.Length then $", … ({keys.Length} keys)" else "")

    /// A tensor as the file should hold it: detached, on the CPU, contiguous and in storage of its
    /// own (the writer stores a tensor's bytes with its storage offset, so a view must not go out).
    let private owned (t: torch.Tensor) = t.detach().cpu().contiguous().clone()

    /// Writes the named tensors, in order, as a PyTorch state dict: into a temporary file next to
    /// path, then renamed over it.
    let private write (path: string) (entries: (string * torch.Tensor) list) =
        let full = Path.GetFullPath path
        let dir = Path.GetDirectoryName full
        Directory.CreateDirectory dir |> ignore
        let temp = Path.Combine(dir, $".{Path.GetFileName full}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp")
        try
            use scope = torch.NewDisposeScope()
            let dict = Specialized.OrderedDictionary() // insertion order is the file's key order
            for key, t in entries do dict.Add(key, owned t)
            (use fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write)
             PyTorchPickler.PickleStateDict(fs, dict, true)
             fs.Flush true)
            File.Move(temp, full, true)
        finally
            if File.Exists temp then File.Delete temp

    /// Reads every tensor of a state dict file; StateDictException for a file that is not one.
    let private read (path: string) : Dictionary<string, torch.Tensor> =
        let fail problem = raise (StateDictException(path, null, problem))
        if not (File.Exists path) then fail "no such file"
        let head =
            use fs = File.OpenRead path
            let b = Array.zeroCreate<byte> 4
            let n = fs.Read(b, 0, 4)
            b[.. n - 1]
        match head with
        | [| 0x50uy; 0x4Buy; 0x03uy; 0x04uy |] -> ()
        | h when h.Length >= 2 && h[0] = 0x80uy ->
            fail "written in PyTorch's legacy (pre-1.6) pickle format, which cannot be read here; re-save it with torch.save(state_dict, path, _use_new_zipfile_serialization=True)"
        | _ -> fail "not a PyTorch .pt file: expected a zip archive (torch.save's format since PyTorch 1.6), but the file does not start with one"
        // The zip records a CRC-32 of every entry; the reader below does not look at it, so a damaged
        // file would be read as different weights. Check every entry first.
        (try
            use fs = File.OpenRead path
            use zip = new Compression.ZipArchive(fs, Compression.ZipArchiveMode.Read)
            for entry in zip.Entries do
                use s = entry.Open()
                let crc, length = Crc32.ofStream s
                if length <> entry.Length then
                    fail $"corrupt: the zip entry '{entry.FullName}' holds {length} bytes, but the zip records {entry.Length}"
                if crc <> entry.Crc32 then
                    fail $"corrupt: the zip entry '{entry.FullName}' does not match its CRC-32 (recorded {entry.Crc32:X8}, computed {crc:X8}): the file was damaged after it was written"
         with
         | :? StateDictException -> reraise ()
         | e -> fail $"corrupt: cannot be read as a zip archive ({e.GetType().Name}: {e.Message})")
        let table =
            try
                use fs = File.OpenRead path
                PyTorchUnpickler.UnpickleStateDict(fs, false, false)
            with e ->
                fail $"cannot be read as a PyTorch state dict; save one with torch.save(module.state_dict(), path) ({e.GetType().Name}: {e.Message})"
        if isNull table then fail "holds no dictionary of tensors"
        let d = Dictionary<string, torch.Tensor>()
        for entry in Seq.cast<DictionaryEntry> table do
            match entry.Key, entry.Value with
            | (:? string as k), (:? torch.Tensor as t) -> d[k] <- t
            | k, _ -> fail $"expected a dictionary of named tensors, but entry '{k}' is not a tensor"
        d

    /// Takes the tensor called key, checking its shape and that its dtype is float32 or float64
    /// and the same as the file's other parameters.
    let private take (path: string) (d: Dictionary<string, torch.Tensor>) (dtype: torch.ScalarType option ref) (key: string) (shape: int64[]) =
        let fail problem = raise (StateDictException(path, key, problem))
        match d.TryGetValue key with
        | false, _ ->
            // The same key under a prefix, e.g. a CharModel's rnn.weight_ih_l0 read as one layer.
            let hint =
                match d.Keys |> Seq.filter (fun k -> k.EndsWith("." + key)) |> Seq.sort |> Seq.tryHead with
                | Some k -> $" (it holds '{k}': a model's state dict, not one layer's; see Interop.importModel)"
                | None -> ""
            fail $"missing: expected a tensor of shape {shapeText shape}, but the file has only {keyList d.Keys}{hint}"
        | true, t ->
            if t.dtype <> torch.float32 && t.dtype <> torch.float64 then
                fail $"expected dtype float32 or float64, but got {t.dtype}"
            match dtype.Value with
            | Some dt when dt <> t.dtype -> fail $"expected dtype {dt} like the other parameters, but got {t.dtype}"
            | _ -> dtype.Value <- Some t.dtype
            if t.shape <> shape then fail $"expected shape {shapeText shape}, but got {shapeText t.shape}"
            d.Remove key |> ignore
            t

    /// Fails on the keys no block has taken.
    let private noneLeft (path: string) (d: Dictionary<string, torch.Tensor>) (expected: string list) =
        if d.Count > 0 then
            let key = Seq.min d.Keys
            let hint =
                if key.Contains "_reverse" then " (a bidirectional layer: build the network with Layer.bidirectional and use Interop.importNetwork)"
                elif key.StartsWith "weight_hr" || key.Contains ".weight_hr" then " (an LSTM with proj_size > 0, which SeqNets does not have)"
                else ""
            let keys = String.Join(", ", expected)
            raise (StateDictException(path, key, $"unexpected{hint}: expected only the keys {keys}"))

    /// The blocks of one layer's θ, as layout says, from the keys prefix + block + suffix.
    let private takeLayer path d dtype (layout: ParameterLayout) (prefix: string) (suffix: string) =
        [ for b in layout.Blocks -> take path d dtype (prefix + b.Name + suffix) b.Shape ]

    let private flat (blocks: torch.Tensor list) = torch.cat([| for t in blocks -> t.reshape(-1L) |], 0L)

    /// Every tensor of a PyTorch `.pt` state dict file (zip format), by key. The caller owns
    /// (disposes) the tensors. StateDictException for a missing, legacy-format or unreadable file.
    [<CompiledName("ReadStateDict")>]
    let readStateDict (path: string) : IReadOnlyDictionary<string, torch.Tensor> =
        Check.notNull "path" path
        Native.ensure ()
        read path

    /// Writes named tensors, in the given order, as a state dict that `torch.load(path)` reads
    /// (zip format); the file is replaced atomically.
    [<CompiledName("WriteStateDict")>]
    let writeStateDict (path: string) (entries: seq<string * torch.Tensor>) =
        Check.notNull "path" path
        Check.notNull "entries" entries
        Native.ensure ()
        let entries = List.ofSeq entries
        for key, t in entries do
            if String.IsNullOrEmpty key then Check.fail "entries" "entries: expected a non-empty key for every tensor, but got an empty one."
            Check.notNull ("entries[" + key + "]") t
        match entries |> List.countBy fst |> List.tryFind (fun (_, n) -> n > 1) with
        | Some(key, _) -> Check.fail "entries" $"entries: expected distinct keys, but '{key}' repeats."
        | None -> ()
        write path entries

    /// Writes θ ([P]) of a PyTorch-form cell as the state dict of the one-layer PyTorch module
    /// (nn.RNN, nn.GRU or nn.LSTM with input I and hidden H): weight_ih_l0, weight_hh_l0,
    /// bias_ih_l0, bias_hh_l0, in θ's dtype. ArgumentException for a cell without a PyTorch module.
    [<CompiledName("ExportCell")>]
    let exportCell (cell: Cell) (theta: torch.Tensor) (path: string) =
        Check.notNull "cell" cell
        Check.notNull "path" path
        requireCounterpart "cell" cell |> ignore
        Cell.checkTheta cell "theta" theta
        write path [ for b in cell.Layout.Blocks -> b.Name + "_l0", cell.Layout.View(theta, b.Name) ]

    /// Reads the state dict of a one-layer nn.RNN, nn.GRU or nn.LSTM into a fresh θ ([P]) of the
    /// cell, in the file's dtype (float32 or float64). Every key must be present with the cell's
    /// shape and no other key may be: StateDictException names the file, the key, what was
    /// expected and what arrived.
    [<CompiledName("ImportCell")>]
    let importCell (cell: Cell) (path: string) : torch.Tensor =
        Check.notNull "cell" cell
        Check.notNull "path" path
        Native.ensure ()
        requireCounterpart "cell" cell |> ignore
        use _ = torch.NewDisposeScope()
        let d = read path
        let blocks = takeLayer path d (ref None) cell.Layout "" "_l0"
        noneLeft path d [ for b in cell.Layout.Blocks -> b.Name + "_l0" ]
        (flat blocks).MoveToOuterDisposeScope()

    let private requireKind (argument: string) (kind: CellKind) =
        if not (CellKind.hasFusedPath kind) then
            let why = match counterpart (string (CellKind.cell kind 1 1).Name) with Error w -> w | Ok _ -> ""
            Check.fail argument $"{argument}: expected a model of a PyTorch-form kind (elman-tanh, elman-relu, gru, lstm), but got {kind}: {why}."

    /// The state-dict keys of one body's blocks and the views of θ they read and write, in θ's order:
    ///   embedding.weight (nn.Embedding) or input.weight, input.bias (nn.Linear);
    ///   rnn.weight_ih_l<k>[_reverse] … for the layers of a PyTorch-form cell (nn.RNN / nn.GRU / nn.LSTM's own names);
    ///   rnn.l<k>[_reverse].<block> for any other cell (the cell's own block names).
    let private bodyEntries (net: Network) (prefix: string) (bodyPrefix: string) (input: InputLayer) (layers: RecurrentLayer list) =
        [ match input with
          | Embedding _ -> yield prefix + "embedding.weight", net.View(bodyPrefix + "input.weight")
          | InputLayer.Dense _ ->
              yield prefix + "input.weight", net.View(bodyPrefix + "input.weight")
              yield prefix + "input.bias", net.View(bodyPrefix + "input.bias")
          | _ -> ()
          for k, layer in List.indexed layers do
              for reverse in (if layer.Directions = 2 then [ false; true ] else [ false ]) do
                  let suffix = if reverse then "_reverse" else ""
                  let unitPrefix = if reverse then $"{bodyPrefix}l{k}.reverse." else $"{bodyPrefix}l{k}."
                  let pytorch = (counterpart layer.Cell.Name |> Result.isOk) && (CellKind.ofCell layer.Cell).IsSome
                  for b in layer.Cell.Layout.Blocks do
                      let key = if pytorch then $"{prefix}{RecurrentPrefix}{b.Name}_l{k}{suffix}" else $"{prefix}{RecurrentPrefix}l{k}{suffix}.{b.Name}"
                      yield key, net.View(unitPrefix + b.Name) ]

    /// Every key of a network's state dict with the view of θ it holds, in θ's order.
    let private networkEntries (net: Network) =
        let spec = net.Spec
        [ yield! bodyEntries net "" "" spec.Input spec.Layers
          for b in net.Layout.Blocks do
              if b.Name.StartsWith "bridge." then yield b.Name, net.View b.Name
          match spec.Head with
          | EncoderDecoder d -> yield! bodyEntries net "decoder." "decoder." d.Input d.Layers
          | _ -> ()
          for b in net.Readout.Layout.Blocks -> OutputPrefix + b.Name, net.View("readout." + b.Name) ]

    /// Writes any network's parameters as a PyTorch state dict, under PyTorch's own names where a
    /// layer is one of PyTorch's modules: embedding.weight, rnn.weight_ih_l0, rnn.weight_hh_l0_reverse, …,
    /// out.weight, out.bias; a user-defined cell's blocks as rnn.l<k>.<block>; a decoder's under decoder..
    [<CompiledName("ExportNetwork")>]
    let exportNetwork (network: Network) (path: string) =
        Check.notNull "network" network
        Check.notNull "path" path
        write path (networkEntries network)

    /// Reads a state dict written by exportNetwork (or by PyTorch for a module with the same keys)
    /// into a new network of the spec, in the file's dtype. Every key must be present with its
    /// block's shape and no other key may be: StateDictException names the file, the key, what was
    /// expected and what arrived.
    [<CompiledName("ImportNetwork")>]
    let importNetwork (spec: NetworkSpec) (path: string) : Network =
        Check.notNull "path" path
        NetworkSpec.validate spec
        Native.ensure ()
        let d = read path
        try
            let dtype =
                match d.Values |> Seq.tryHead with
                | Some t when t.dtype = torch.float32 || t.dtype = torch.float64 -> t.dtype
                | Some t -> raise (StateDictException(path, null, $"expected float32 or float64 tensors, but got {t.dtype}"))
                | None -> raise (StateDictException(path, null, "holds no tensors"))
            let network = new Network(spec, dtype, 0UL)
            try
                let entries = networkEntries network
                let seen = ref None
                use _ = torch.no_grad ()
                for key, view in entries do
                    let t = take path d seen key view.shape
                    view.copy_ t |> ignore
                noneLeft path d (entries |> List.map fst)
                network
            with _ ->
                (network :> IDisposable).Dispose()
                reraise ()
        finally
            for t in d.Values do t.Dispose()

    /// Writes a character model as the state dict of the PyTorch module `CharModel(nn.Module)` with
    /// `self.rnn = nn.RNN / nn.GRU / nn.LSTM(V, H, L)` and `self.out = nn.Linear(H, V)`:
    /// rnn.weight_ih_l0 … rnn.bias_hh_l(L−1), out.weight, out.bias. ArgumentException for a network
    /// that is not such a model, or whose cells PyTorch has no module for (the lecture's GRU, the
    /// multiplicative RNN): exportNetwork writes those.
    [<CompiledName("ExportModel")>]
    let exportModel (model: Network) (path: string) =
        Check.notNull "model" model
        Check.notNull "path" path
        match CharModel.tryConfig model with
        | Some config -> requireKind "model" config.Kind
        | None -> Check.fail "model" $"model: expected a character model (one-hot input, layers of one built-in family), but got {model.Describe()}; use Interop.exportNetwork."
        exportNetwork model path

    /// Reads the state dict of a PyTorch `CharModel(nn.Module)` (rnn.*, out.*; see exportModel)
    /// into a new character model of the given kind, in the file's dtype; V, H and L are read from
    /// the shapes and the count of layers. The kind is not recorded in a state dict (nn.RNN's tanh and
    /// ReLU have the same keys), so it is given. StateDictException names the file, the key, what
    /// was expected and what arrived; ArgumentException for a kind PyTorch has no module for.
    [<CompiledName("ImportModel")>]
    let importModel (kind: CellKind) (path: string) : Network =
        Check.notNull "path" path
        requireKind "kind" kind
        Native.ensure ()
        let config =
            let d = read path
            try
                let first = RecurrentPrefix + "weight_ih_l0"
                let G = match counterpart (CellKind.cell kind 1 1).Name with Ok(_, g) -> int64 g | Error _ -> 1L
                let V, H =
                    match d.TryGetValue first with
                    | true, w when w.dim () = 2L && w.shape[0] % G = 0L && w.shape[0] > 0L && w.shape[1] > 0L -> w.shape[1], w.shape[0] / G
                    | true, w ->
                        raise (StateDictException(path, first, $"expected a [{G}·H; V] weight for {kind} (rows a positive multiple of {G}), but got shape {shapeText w.shape}"))
                    | false, _ ->
                        let hint = if d.ContainsKey "weight_ih_l0" then " (a single layer's state dict; see Interop.importCell)" else ""
                        raise (StateDictException(path, first, $"missing: expected the first recurrent layer of a CharModel (self.rnn, self.out), but the file has only {keyList d.Keys}{hint}"))
                if d.Keys |> Seq.exists (fun k -> k.EndsWith "_reverse") then
                    let key = d.Keys |> Seq.filter (fun k -> k.EndsWith "_reverse") |> Seq.min
                    raise (StateDictException(path, key, "unexpected: a bidirectional layer, which a character model does not have (a network with Layer.bidirectional imports it: Interop.importNetwork)"))
                let L = Seq.initInfinite id |> Seq.takeWhile (fun k -> d.ContainsKey $"{RecurrentPrefix}weight_ih_l{k}") |> Seq.length
                { Kind = kind; VocabularySize = int V; HiddenSize = int H; Layers = L }
            finally
                for t in d.Values do t.Dispose()
        importNetwork (CharModel.spec config) path

    /// Reads the state dict of a bare PyTorch nn.RNN / nn.GRU / nn.LSTM — several layers, one
    /// direction or both (weight_ih_l0, …, bias_hh_l1_reverse) — into the recurrent layers of an
    /// existing network, in place, in the network's dtype. The network's layers must be the same
    /// PyTorch-form cells with the same sizes and directions; every key must be present with its
    /// block's shape and no other key may be. StateDictException names the file and the key.
    [<CompiledName("ImportRecurrentLayers")>]
    let importRecurrentLayers (network: Network) (path: string) =
        Check.notNull "network" network
        Check.notNull "path" path
        Native.ensure ()
        let entries =
            bodyEntries network "" "" network.Spec.Input network.Spec.Layers
            |> List.filter (fun (key, _) -> key.StartsWith RecurrentPrefix)
            |> List.map (fun (key, view) -> key.Substring RecurrentPrefix.Length, view)
        match entries |> List.tryFind (fun (key, _) -> key.StartsWith "l") with
        | Some(key, _) ->
            Check.fail "network" $"network: a bare PyTorch module holds only nn.RNN / nn.GRU / nn.LSTM layers, but this network's layer block '{key}' belongs to a cell PyTorch has no module for."
        | None -> ()
        let d = read path
        try
            let seen = ref None
            use _ = torch.no_grad ()
            for key, view in entries do
                let t = take path d seen key view.shape
                view.copy_ (t.to_type view.dtype) |> ignore
            noneLeft path d (entries |> List.map fst)
        finally
            for t in d.Values do t.Dispose()
