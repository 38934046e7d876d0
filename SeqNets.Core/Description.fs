/// A network's spec as JSON: what a checkpoint stores so that the file names what it holds and can
/// rebuild it. Cells are stored by name, sizes and parameter layout; built-in cells are rebuilt by
/// name, user-defined ones through CellCatalog.register.
namespace SeqNets

open System
open System.Text.Json.Nodes

[<RequireQualifiedAccess>]
module Description =
    let private inv = Globalization.CultureInfo.InvariantCulture

    let private obj (pairs: (string * JsonNode) list) =
        let o = JsonObject()
        for k, v in pairs do o[k] <- v
        o :> JsonNode

    let private num (n: int) = JsonValue.Create n :> JsonNode
    let private str (s: string) = JsonValue.Create s :> JsonNode

    let private input (i: InputLayer) =
        match i with
        | InputLayer.Vectors w -> obj [ "kind", str "vectors"; "width", num w ]
        | OneHot v -> obj [ "kind", str "one-hot"; "vocabulary", num v ]
        | Embedding(v, e) -> obj [ "kind", str "embedding"; "vocabulary", num v; "width", num e ]
        | InputLayer.Dense(i, e) -> obj [ "kind", str "dense"; "inputSize", num i; "width", num e ]

    let private cell (c: Cell) =
        let factors = c.Layout.Blocks |> List.tryFind (fun b -> b.Name = "W_fx") |> Option.map (fun b -> int b.Shape[0])
        obj [ "name", str c.Name
              "inputSize", num c.InputSize
              "hiddenSize", num c.HiddenSize
              "stateSize", num c.StateSize
              if c.Name = "mrnn" && factors.IsSome then "factors", num factors.Value
              "layout", str (string c.Layout)
              "equations", str c.Equations ]

    let private direction (d: Direction) =
        match d with
        | Forward -> "forward"
        | Bidirectional Concat -> "bidirectional"
        | Bidirectional Sum -> "bidirectional-sum"

    let private layers (ls: RecurrentLayer list) =
        let a = JsonArray()
        for l in ls do a.Add(obj [ "cell", cell l.Cell; "direction", str (direction l.Direction) ])
        a :> JsonNode

    let private head (h: Head) =
        match h with
        | PerStep -> obj [ "kind", str "per-step" ]
        | ManyToOne p -> obj [ "kind", str "many-to-one"; "pooling", str ((string p).ToLowerInvariant()) ]
        | OneToMany v -> obj [ "kind", str "one-to-many"; "vector", str (match v with InitialState -> "initial-state" | InputAtEachStep -> "input-at-each-step") ]
        | OneToOne -> obj [ "kind", str "one-to-one" ]
        | EncoderDecoder d ->
            obj [ "kind", str "encoder-decoder"
                  "input", input d.Input
                  "layers", layers d.Layers
                  "bridge", str (match d.Bridge with Copy -> "copy" | Projection -> "projection")
                  "bos", num d.Bos
                  "eos", num d.Eos
                  "maxLength", num d.MaxLength
                  match d.Attention with
                  | Some(style, score) ->
                      "attention", obj [ "style", str (match style with Bahdanau -> "bahdanau" | Luong true -> "luong-feeding" | Luong false -> "luong")
                                         "score", str (match score with Dot -> "dot" | General -> "general" | Additive _ -> "additive")
                                         match score with Additive a -> "width", num a | _ -> () ]
                  | None -> ()
                  "teacherForcing", (JsonValue.Create d.TeacherForcing :> JsonNode)
                  "reverseSource", (JsonValue.Create d.ReverseSource :> JsonNode) ]

    /// The spec as a JSON object.
    [<CompiledName("ToJson")>]
    let toJson (spec: NetworkSpec) : JsonNode =
        obj [ "input", input spec.Input
              "layers", layers spec.Layers
              "dropout", (JsonValue.Create spec.Dropout :> JsonNode)
              "head", head spec.Head
              "output", num spec.Output
              "loss", str (match spec.Loss with CrossEntropy -> "cross-entropy" | MeanSquared -> "mean-squared") ]

    /// The problem with a description that cannot be rebuilt.
    exception DescriptionError of string

    let private fail message = raise (DescriptionError message)

    let private field (o: JsonNode) (k: string) =
        match o with
        | :? JsonObject as jo when jo.ContainsKey k && not (isNull jo[k]) -> jo[k]
        | _ -> fail $"the description lacks '{k}'"

    let private getInt (o: JsonNode) k =
        try (field o k).GetValue<int>() with :? DescriptionError -> reraise () | _ -> fail $"'{k}' is not an integer"

    let private getStr (o: JsonNode) k =
        try (field o k).GetValue<string>() with :? DescriptionError -> reraise () | _ -> fail $"'{k}' is not a string"

    let private positive (what: string) (n: int) = if n < 1 then fail $"{what} is {n}, not a positive size" else n

    let private readInput (o: JsonNode) =
        match getStr o "kind" with
        | "vectors" -> InputLayer.Vectors(positive "the input width" (getInt o "width"))
        | "one-hot" -> OneHot(positive "the vocabulary" (getInt o "vocabulary"))
        | "embedding" -> Embedding(positive "the vocabulary" (getInt o "vocabulary"), positive "the embedding width" (getInt o "width"))
        | "dense" -> InputLayer.Dense(positive "the input size" (getInt o "inputSize"), positive "the input width" (getInt o "width"))
        | other -> fail $"unknown input layer '{other}'"

    let private readCell (o: JsonNode) =
        let name = getStr o "name"
        let I, H, S = positive "a cell's input size" (getInt o "inputSize"), positive "a cell's hidden size" (getInt o "hiddenSize"), getInt o "stateSize"
        let factors = match o with :? JsonObject as jo when jo.ContainsKey "factors" -> Some(getInt o "factors") | _ -> None
        let layout = getStr o "layout"
        match CellCatalog.tryBuild name I H factors with
        | None ->
            fail $"it holds the user-defined cell '{name}' (I = {I}, H = {H}, S = {S}, {layout}); register it with CellCatalog.register \"{name}\" before loading"
        | Some c ->
            if c.StateSize <> S || string c.Layout <> layout then
                fail $"its cell '{name}' has S = {S} and {layout}, but the cell this program builds under that name has S = {c.StateSize} and {c.Layout}"
            c

    let private readDirection (s: string) =
        match s with
        | "forward" -> Forward
        | "bidirectional" -> Bidirectional Concat
        | "bidirectional-sum" -> Bidirectional Sum
        | other -> fail $"unknown direction '{other}'"

    let private readLayers (o: JsonNode) (maxLayers: int64) =
        match o with
        | :? JsonArray as a ->
            if int64 a.Count > maxLayers then fail $"it claims {a.Count} layers, more than its {maxLayers} parameters could hold"
            [ for l in a -> { Cell = readCell (field l "cell"); Direction = readDirection (getStr l "direction") } ]
        | _ -> fail "'layers' is not a list"

    let private readHead (o: JsonNode) maxLayers =
        match getStr o "kind" with
        | "per-step" -> PerStep
        | "many-to-one" ->
            ManyToOne(
                match getStr o "pooling" with
                | "last" -> Last
                | "mean" -> Mean
                | "max" -> Max
                | other -> fail $"unknown pooling '{other}'")
        | "one-to-many" ->
            OneToMany(
                match getStr o "vector" with
                | "initial-state" -> InitialState
                | "input-at-each-step" -> InputAtEachStep
                | other -> fail $"unknown one-to-many mode '{other}'")
        | "one-to-one" -> OneToOne
        | "encoder-decoder" ->
            EncoderDecoder
                { Input = readInput (field o "input")
                  Layers = readLayers (field o "layers") maxLayers
                  Bridge = (match getStr o "bridge" with "copy" -> Copy | "projection" -> Projection | other -> fail $"unknown bridge '{other}'")
                  Bos = getInt o "bos"
                  Eos = getInt o "eos"
                  MaxLength = getInt o "maxLength"
                  Attention =
                    match o with
                    | :? JsonObject as jo when jo.ContainsKey "attention" ->
                        let a = field o "attention"
                        let style =
                            match getStr a "style" with
                            | "bahdanau" -> Bahdanau
                            | "luong-feeding" -> Luong true
                            | "luong" -> Luong false
                            | other -> fail $"unknown attention style '{other}'"
                        let score =
                            match getStr a "score" with
                            | "dot" -> Dot
                            | "general" -> General
                            | "additive" -> Additive(positive "the additive attention width" (getInt a "width"))
                            | other -> fail $"unknown attention score '{other}'"
                        Some(style, score)
                    | _ -> None
                  TeacherForcing = (try (field o "teacherForcing").GetValue<float>() with :? DescriptionError -> reraise () | _ -> fail "'teacherForcing' is not a number")
                  ReverseSource = (try (field o "reverseSource").GetValue<bool>() with :? DescriptionError -> reraise () | _ -> fail "'reverseSource' is not a boolean") }
        | other -> fail $"unknown head '{other}'"

    /// Rebuilds a spec from its JSON; maxLayers bounds the layer count before any cell is built.
    /// DescriptionError says what is wrong.
    let internal ofJson (o: JsonNode) (maxLayers: int64) : NetworkSpec =
        let spec =
            { Input = readInput (field o "input")
              Layers = readLayers (field o "layers") maxLayers
              Dropout = (try (field o "dropout").GetValue<float>() with :? DescriptionError -> reraise () | _ -> fail "'dropout' is not a number")
              Head = readHead (field o "head") maxLayers
              Output = positive "the output width" (getInt o "output")
              Loss =
                match getStr o "loss" with
                | "cross-entropy" -> CrossEntropy
                | "mean-squared" -> MeanSquared
                | other -> fail $"unknown loss '{other}'" }
        try NetworkSpec.validate spec with :? ArgumentException as e -> fail $"its network is inconsistent: {e.Message}"
        spec

    /// The number of parameters a spec's network has, computed without allocating it.
    let internal parameterCount (spec: NetworkSpec) : int64 =
        let inputCount i = InputLayer.blocks i |> List.sumBy (fun (_, shape) -> List.fold (*) 1L shape)
        let layersCount (ls: RecurrentLayer list) = ls |> List.sumBy (fun l -> int64 l.Directions * int64 l.Cell.ParameterCount)
        let states (ls: RecurrentLayer list) = ls |> List.sumBy (fun l -> int64 l.Directions * int64 l.Cell.StateSize)
        let bridge =
            match spec.Head with
            | OneToMany InitialState -> states spec.Layers * (int64 (InputLayer.width spec.Input) + 1L)
            | EncoderDecoder d when d.Bridge = Projection ->
                let top = List.last spec.Layers
                let z = int64 top.Directions * int64 top.Cell.StateSize
                states d.Layers * (z + 1L)
            | _ -> 0L
        let attention (d: Decoder) =
            match d.Attention with
            | None -> 0L
            | Some(style, score) ->
                let H, E = int64 (List.last d.Layers).Cell.HiddenSize, int64 (List.last spec.Layers).OutputWidth
                let scoreCount = match score with Dot -> 0L | General -> H * E | Additive a -> int64 a * (H + E + 1L)
                scoreCount + (match style with Luong _ -> H * (E + H) | Bahdanau -> 0L)
        let decoder = match spec.Head with EncoderDecoder d -> inputCount d.Input + layersCount d.Layers + attention d | _ -> 0L
        inputCount spec.Input + layersCount spec.Layers + bridge + decoder
        + int64 spec.Output * int64 (NetworkSpec.topWidth spec) + int64 spec.Output
