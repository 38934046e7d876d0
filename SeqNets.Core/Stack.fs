/// A stack of cells is itself a cell. Layer l reads the output of layer l − 1 at the same step:
///
///   s_1,t = f_1(x_t, s_1,t−1),   s_l,t = f_l(h_l−1,t, s_l,t−1),   h_l,t = the first H_l entries of s_l,t
///
/// Its state is the layers' states concatenated, top layer first, s_t = [s_L,t; …; s_1,t], so that its
/// output — the first H_L entries, as for every cell — is the top layer's h. Its θ is the layers' θ in
/// order, bottom first, with blocks named l0.weight_ih, l0.weight_hh, …, l1.weight_ih, …
///
/// Its Jacobians come from the layers' own by the chain rule, not from autodiff. With E_l = ∂f_l/∂x
/// (the layer's input Jacobian), A_l = ∂s_l,t/∂s_t−1 and B_l = ∂s_l,t/∂θ:
///   A_1 = [c_1 in layer 1's columns],      A_l = E_l · A_l−1[h rows] + [c_l in layer l's columns]
///   B_1 = [b_1 in θ_1's columns],          B_l = E_l · B_l−1[h rows] + [b_l in θ_l's columns]
/// and c_t, b_t are the A_l, B_l stacked top first. Then the identity, every BPTT route and truncation
/// apply to stacks with no code of their own.
/// Legend: B batch, S state, P parameters, H hidden, I input, L layers.
namespace SeqNets

open System
open TorchSharp

[<RequireQualifiedAccess>]
module Stack =
    /// Where layer l's state sits in the stack's state (top first): its offset and width.
    let stateSpan (cell: Cell) (layer: int) : int64 * int64 =
        let layers = Array.ofList cell.Components
        if layers.Length = 0 then Check.fail "cell" $"cell: expected a stack (Stack.create), but '{cell.Name}' is a single cell."
        if layer < 0 || layer >= layers.Length then
            Check.fail "layer" $"layer: expected 0 <= layer < {layers.Length}, but got {layer}."
        let above = layers[layer + 1 ..] |> Array.sumBy (fun c -> int64 c.StateSize)
        above, int64 layers[layer].StateSize

    /// Layer l's state s_l ([.., S_l]) inside a stack's state ([.., S]).
    [<CompiledName("LayerState")>]
    let layerState (cell: Cell) (layer: int) (s: Tensor) : Tensor =
        let offset, width = stateSpan cell layer
        s.narrow(-1L, offset, width)

    /// Layer l's θ_l inside a stack's θ ([P] or [R; P]).
    [<CompiledName("LayerParameters")>]
    let layerParameters (cell: Cell) (layer: int) (theta: Tensor) : Tensor =
        let layers = Array.ofList cell.Components
        if layer < 0 || layer >= layers.Length then
            Check.fail "layer" $"layer: expected 0 <= layer < {layers.Length}, but got {layer}."
        let offset = layers[.. layer - 1] |> Array.sumBy (fun c -> int64 c.ParameterCount)
        theta.narrow(-1L, offset, int64 layers[layer].ParameterCount)

    /// The cell of layers stacked bottom first (at least one); layer l's input size must be layer
    /// l − 1's hidden size. The stack has hand-derived Jacobians when every layer has them and every
    /// layer above the first has an input Jacobian (all built-in cells do).
    [<CompiledName("Create")>]
    let create (layers: Cell list) : Cell =
        Native.ensure ()
        Check.notNull (nameof layers) layers
        if layers.IsEmpty then Check.fail "layers" "layers: expected at least one cell, but got none."
        let cells = Array.ofList layers
        cells |> Array.iteri (fun l c -> Check.notNull $"layers[{l}]" c)
        for l in 1 .. cells.Length - 1 do
            if cells[l].InputSize <> cells[l - 1].HiddenSize then
                Check.fail "layers"
                    $"layers: layer {l} ('{cells[l].Name}') reads layer {l - 1}'s output h of width {cells[l - 1].HiddenSize}, but its input size is {cells[l].InputSize}."
        let L = cells.Length
        let S = cells |> Array.sumBy (fun c -> c.StateSize)
        let P = cells |> Array.sumBy (fun c -> int64 c.ParameterCount)
        let thetaOffset = Array.scan (fun acc (c: Cell) -> acc + int64 c.ParameterCount) 0L cells // bottom first
        // Top first: layer l's state starts after the states of the layers above it.
        let stateOffset = Array.init L (fun l -> cells[l + 1 ..] |> Array.sumBy (fun c -> int64 c.StateSize))
        let thetaOf l (theta: Tensor) = theta.narrow(-1L, thetaOffset[l], int64 cells[l].ParameterCount)
        let stateOf l (s: Tensor) = s.narrow(-1L, stateOffset[l], int64 cells[l].StateSize)
        let layout =
            ParameterLayout
                [ for l in 0 .. L - 1 do
                      for b in cells[l].Layout.Blocks -> $"l{l}.{b.Name}", List.ofArray b.Shape ]

        /// Steps layers from..L−1 given the first one's input, returning the new layer states bottom first.
        let stepFrom (steps: (Tensor -> Tensor -> Tensor)[]) (first: int) (input: Tensor) (s: Tensor) =
            let next = Array.zeroCreate L
            let mutable x = input
            for l in first .. L - 1 do
                let sl = steps[l] x (stateOf l s) // [B; S_l]
                next[l] <- sl
                x <- Cell.output cells[l] sl // [B; H_l]
            next

        let transition (theta: Tensor) =
            let steps = cells |> Array.mapi (fun l c -> c.Transition (thetaOf l theta))
            fun (x: Tensor) (s: Tensor) ->
                let next = stepFrom steps 0 x s
                torch.cat(Array.rev next, -1L) // [B; S], top first

        let projection, projected =
            match cells[0].InputProjection, cells[0].ProjectedTransition with
            | Some project, Some projected0 ->
                let project theta x = project (thetaOf 0 theta) x
                let projected (theta: Tensor) =
                    let first = projected0 (thetaOf 0 theta)
                    let steps = cells |> Array.mapi (fun l c -> if l = 0 then first else c.Transition (thetaOf l theta))
                    fun (px: Tensor) (s: Tensor) ->
                        let s0 = first px (stateOf 0 s) // [B; S_1]
                        let next = if L = 1 then [| s0 |] else stepFrom steps 1 (Cell.output cells[0] s0) s
                        next[0] <- s0
                        torch.cat(Array.rev next, -1L)
                Some project, Some projected
            | _ -> None, None

        let hasJacobians =
            cells |> Array.forall (fun c -> c.Jacobians.IsSome)
            && cells |> Array.indexed |> Array.forall (fun (l, c) -> l = 0 || c.InputJacobian.IsSome)

        /// The layers' inputs at this step: x for layer 1, h_l−1,t above (the forward pass once).
        let layerInputs (theta: Tensor) (x: Tensor) (s: Tensor) =
            let inputs = Array.zeroCreate L
            let mutable input = x
            for l in 0 .. L - 1 do
                inputs[l] <- input
                if l + 1 < L then input <- Cell.output cells[l] (cells[l].Transition (thetaOf l theta) input (stateOf l s))
            inputs

        let jacobians (theta: Tensor) (x: Tensor) (s: Tensor) : StepJacobians =
            let B = x.shape[0]
            let inputs = layerInputs theta x s
            let A = Array.zeroCreate L // ∂s_l,t/∂s_{t−1}: [B; S_l; S]
            let Bt = Array.zeroCreate L // ∂s_l,t/∂θ: [B; S_l; P]
            for l in 0 .. L - 1 do
                let c = cells[l]
                let Sl = int64 c.StateSize
                let j = c.Jacobians.Value (thetaOf l theta) inputs[l] (stateOf l s)
                let a = torch.zeros([| B; Sl; int64 S |], dtype = x.dtype)
                a.narrow(2L, stateOffset[l], Sl).copy_ j.State |> ignore
                let b = torch.zeros([| B; Sl; P |], dtype = x.dtype)
                b.narrow(2L, thetaOffset[l], int64 c.ParameterCount).copy_ j.Parameters |> ignore
                if l = 0 then
                    A[l] <- a
                    Bt[l] <- b
                else
                    let E = c.InputJacobian.Value (thetaOf l theta) inputs[l] (stateOf l s) // [B; S_l; H_l−1]
                    let H = int64 cells[l - 1].HiddenSize
                    A[l] <- a + E.matmulChecked (A[l - 1].narrow(1L, 0L, H))
                    Bt[l] <- b + E.matmulChecked (Bt[l - 1].narrow(1L, 0L, H))
            { State = torch.cat(Array.rev A, 1L) // [B; S; S], rows top first
              Parameters = torch.cat(Array.rev Bt, 1L) } // [B; S; P]

        let hasInputJacobian = cells |> Array.forall (fun c -> c.InputJacobian.IsSome)
        let inputJacobian (theta: Tensor) (x: Tensor) (s: Tensor) =
            let inputs = layerInputs theta x s
            let E = Array.zeroCreate L // ∂s_l,t/∂x_t: [B; S_l; I]
            for l in 0 .. L - 1 do
                let e = cells[l].InputJacobian.Value (thetaOf l theta) inputs[l] (stateOf l s)
                E[l] <- if l = 0 then e else e.matmulChecked (E[l - 1].narrow(1L, 0L, int64 cells[l - 1].HiddenSize))
            torch.cat(Array.rev E, 1L) // [B; S; I]

        let name = "stack(" + String.Join(", ", cells |> Array.map _.Name) + ")"
        { Name = name
          InputSize = cells[0].InputSize
          HiddenSize = cells[L - 1].HiddenSize
          StateSize = S
          Layout = layout
          Transition = transition
          InputProjection = projection
          ProjectedTransition = projected
          Jacobians = (if hasJacobians then Some jacobians else None)
          InputJacobian = (if hasInputJacobian then Some inputJacobian else None)
          StructuredJacobians = None
          RowParameters = cells |> Array.forall _.RowParameters
          InitScale = cells[0].InitScale
          Components = layers
          Equations = String.Join("  |  ", cells |> Array.mapi (fun l c -> $"layer {l}: {c.Equations}")) }
