/// Argument checks at the library's boundary. Every failure is an ArgumentException whose
/// message names the argument, what was expected and what arrived.
namespace SeqNets

open System
open TorchSharp

[<RequireQualifiedAccess>]
module internal Check =
    let shapeText (t: torch.Tensor) = "[" + String.Join("; ", t.shape) + "]"

    let fail (name: string) (message: string) : 'a = raise (ArgumentException(message, name))

    let positive (name: string) (value: int) =
        if value <= 0 then fail name $"{name}: expected a positive size, but got {value}."

    let notNull (name: string) (value: obj) =
        if isNull value then raise (ArgumentNullException(name, $"{name}: expected a value, but got null."))

    let floating (name: string) (t: torch.Tensor) =
        if t.dtype <> torch.float32 && t.dtype <> torch.float64 then
            fail name $"{name}: expected a float32 or float64 tensor, but got dtype {t.dtype}."

    let dims (name: string) (legend: string) (n: int) (t: torch.Tensor) =
        if int (t.dim ()) <> n then
            fail name $"{name}: expected a {legend} tensor ({n} dimensions), but got shape {shapeText t}."

    let size (name: string) (legend: string) (axis: int) (axisName: string) (expected: int64) (t: torch.Tensor) =
        if t.shape[axis] <> expected then
            fail name $"{name}: expected a {legend} tensor with {axisName} = {expected}, but got shape {shapeText t}."

    let sameDtype (name: string) (reference: torch.Tensor) (t: torch.Tensor) =
        if t.dtype <> reference.dtype then
            fail name $"{name}: expected dtype {reference.dtype} to match the parameters, but got {t.dtype}."

    let finite (name: string) (t: torch.Tensor) =
        let ok =
            use _ = torch.no_grad ()
            use f = t.isfinite().all()
            f.item<bool> ()
        if not ok then
            use _ = torch.no_grad ()
            use nan = t.isnan().sum()
            use inf = t.isinf().sum()
            fail name $"{name}: expected finite values, but found {nan.item<int64> ()} NaN and {inf.item<int64> ()} infinite entries."

    let nonEmptyTime (name: string) (t: torch.Tensor) =
        if t.shape[0] = 0L then fail name $"{name}: expected at least one time step (T >= 1), but got T = 0 (shape {shapeText t})."
