/// The flat parameter vector θ ([P]) of a cell, with named views laid out so that the
/// PyTorch-form cells map one to one onto weight_ih, weight_hh, bias_ih and bias_hh.
namespace SeqNets

open System
open TorchSharp

/// One named block of θ: its shape and where it starts.
type ParameterBlock =
    { Name: string
      Shape: int64[]
      Offset: int64 }
    /// Number of scalars in the block (checked: ArgumentException when it does not fit in 64 bits).
    member b.Count = Memory.product $"block '{b.Name}'" b.Shape

/// The named blocks of a flat parameter vector, in order.
type ParameterLayout(blocks: (string * int64 list) list) =
    let blocks =
        blocks
        |> List.scan
            (fun (prev: ParameterBlock option) (name, shape) ->
                if shape |> List.exists (fun d -> d < 0L) then
                    invalidArg "blocks" $"ParameterLayout: expected non-negative sizes, but block '{name}' has shape {shape}."
                let offset = match prev with Some p -> Memory.add "ParameterLayout" p.Offset p.Count | None -> 0L
                Some { Name = name; Shape = Array.ofList shape; Offset = offset })
            None
        |> List.choose id
    let byName = blocks |> List.map (fun b -> b.Name, b) |> dict
    do
        if byName.Count <> blocks.Length then
            invalidArg "blocks" "ParameterLayout: expected distinct block names, but a name repeats."
    // Summed once, checked: a layout whose P does not fit in 64 bits is refused when it is made.
    let count = blocks |> List.fold (fun acc b -> Memory.add "ParameterLayout" acc b.Count) 0L

    /// The blocks in order.
    member _.Blocks = blocks
    /// Total number of parameters P (checked: ArgumentException when it does not fit in 64 bits).
    member _.Count = count
    /// The block called name.
    member _.Block(name: string) =
        match byName.TryGetValue name with
        | true, b -> b
        | _ ->
            let known = String.Join(", ", byName.Keys)
            raise (ArgumentException($"name: expected one of {known}, but got '{name}'.", "name"))

    /// The view of θ named name: θ is [P] (one parameter vector) giving the block's shape, or
    /// [R; P] (one copy per row) giving [R; shape].
    member l.View(theta: torch.Tensor, name: string) : torch.Tensor =
        let b = l.Block name
        if theta.dim () = 1L then theta.narrow(0L, b.Offset, b.Count).view b.Shape
        else theta.narrow(1L, b.Offset, b.Count).view (Array.append [| theta.shape[0] |] b.Shape)

    /// PyTorch's layout of one recurrent layer with `gates` blocks of H rows (1 for nn.RNN, 3 for
    /// nn.GRU, 4 for nn.LSTM): weight_ih [gH; I], weight_hh [gH; H], bias_ih [gH], bias_hh [gH].
    static member Recurrent(gates: int, inputSize: int, hiddenSize: int) =
        let G = Memory.multiply "ParameterLayout.Recurrent" (int64 gates) (int64 hiddenSize)
        ParameterLayout [ "weight_ih", [ G; int64 inputSize ]
                          "weight_hh", [ G; int64 hiddenSize ]
                          "bias_ih", [ G ]
                          "bias_hh", [ G ] ]

    override l.ToString() =
        let parts = blocks |> List.map (fun b -> $"""{b.Name} [{String.Join("; ", b.Shape)}]""")
        $"""P = {l.Count}: {String.Join(", ", parts)}"""
