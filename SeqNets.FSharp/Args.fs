/// Argument checks at the boundary of the F# face. Every failure is an ArgumentException whose
/// message names the argument, what was expected and what arrived.
namespace SeqNets.FSharp

open System
open TorchSharp
open SeqNets

[<RequireQualifiedAccess>]
module internal Args =
    let shapeText (t: Tensor) = "[" + String.Join("; ", t.shape) + "]"

    let fail (name: string) (message: string) : 'a = raise (ArgumentException(message, name))

    let notNull (name: string) (value: obj) =
        if isNull value then raise (ArgumentNullException(name, $"{name}: expected a value, but got null."))

    let positive (name: string) (value: int) =
        if value <= 0 then fail name $"{name}: expected a positive number, but got {value}."

    /// A float32 or float64 tensor.
    let floating (name: string) (t: Tensor) =
        notNull name t
        if t.dtype <> torch.float32 && t.dtype <> torch.float64 then
            fail name $"{name}: expected a float32 or float64 tensor, but got dtype {t.dtype}."

    /// A tensor holding exactly one value (shape [] or [1], [1; 1], …).
    let scalar (name: string) (t: Tensor) =
        if t.numel () <> 1L then
            fail name $"{name}: expected a single value (a scalar tensor), but got shape {shapeText t}."

    /// The same shape as a reference tensor, described by what the reference is.
    let sameShape (name: string) (what: string) (reference: Tensor) (t: Tensor) =
        if t.shape <> reference.shape then
            fail name $"{name}: expected shape {shapeText reference} ({what}), but got {shapeText t}."

    let sameDtype (name: string) (what: string) (reference: Tensor) (t: Tensor) =
        if t.dtype <> reference.dtype then
            fail name $"{name}: expected dtype {reference.dtype} ({what}), but got {t.dtype}."
