/// Readable one-line summaries of tensors for F# Interactive and logs. Register one with
/// `fsi.AddPrinter Show.tensor` in a script to print every tensor this way.
namespace SeqNets.FSharp

open System
open System.Globalization
open TorchSharp
open SeqNets

/// How much of a tensor a summary shows.
type ShowOptions =
    { /// How many leading values (in row-major order) to print.
      Values: int
      /// The .NET format of each value, e.g. "g4" or "F3".
      Format: string }

[<RequireQualifiedAccess>]
module Show =
    /// Six values with four significant digits.
    [<CompiledName("Defaults")>]
    let defaults = { Values = 6; Format = "g4" }

    let private number (format: string) (x: float) = (x + 0.0).ToString(format, CultureInfo.InvariantCulture) // −0 prints as 0

    /// A dtype as PyTorch spells it: float64, float32, int64, bool, …
    [<CompiledName("Dtype")>]
    let dtype (d: torch.ScalarType) : string = (string d).ToLowerInvariant()

    /// A one-line summary: shape, dtype, the first opts.Values values and, when some are left
    /// out, the smallest and largest value; e.g. `[2; 3] float64 = [0.5, -1, 2, …] (6 values, min -1, max 3)`
    /// or `[] float64 = 0.25` for a scalar.
    [<CompiledName("TensorWith")>]
    let tensorWith (opts: ShowOptions) (t: Tensor) : string =
        Args.notNull (nameof t) t
        if opts.Values < 0 then
            Args.fail (nameof opts) $"opts: expected Values >= 0, but got {opts.Values}."
        use _ = torch.no_grad ()
        let shape = Args.shapeText t
        let grad = if t.requires_grad then ", requires grad" else ""
        let n = t.numel ()
        if n = 0L then $"{shape} {dtype t.dtype} = [] (empty{grad})"
        else
            use flat = t.detach().reshape(-1L).to_type(torch.float64).cpu ()
            let k = min n (int64 opts.Values)
            let shown =
                if k = 0L then [||]
                else (use head = flat.narrow(0L, 0L, k) in head.data<float>().ToArray())
            let text = String.Join(", ", shown |> Array.map (number opts.Format))
            if t.dim () = 0L && k = 1L then $"{shape} {dtype t.dtype} = {text}{grad}"
            elif k = n then $"{shape} {dtype t.dtype} = [{text}]{grad}"
            else
                let lo = (use m = flat.min () in m.item<float> ())
                let hi = (use m = flat.max () in m.item<float> ())
                let sep = if k = 0L then "" else ", "
                $"{shape} {dtype t.dtype} = [{text}{sep}…] ({n} values, min {number opts.Format lo}, max {number opts.Format hi}{grad})"

    /// A one-line summary with the default options (see Show.tensorWith).
    [<CompiledName("Tensor")>]
    let tensor (t: Tensor) : string = tensorWith defaults t
