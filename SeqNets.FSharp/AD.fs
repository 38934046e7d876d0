/// Derivatives of tensor functions f : x ↦ f(x), in the spirit of DiffSharp's dsharp.grad,
/// dsharp.jacobian, dsharp.jvp and dsharp.vjp, over SeqNets.Autodiff's safe reverse mode.
///
///   grad f x      = ∇f(x)                    f scalar-valued; shaped like x
///   gradv f x v   = ∇f(x) · v                f scalar-valued; a scalar
///   jacobian f x  = J = ∂f/∂x                [shape of f(x) @ shape of x]
///   vjp f x v     = vᵀ J                     v shaped like f(x); result shaped like x
///   jvp f x v     = J v                      v shaped like x; result shaped like f(x)
///   diff f x      = f'(x)                    x and f(x) single values
///   hessian f x   = ∇²f(x)                   f scalar-valued; [shape of x @ shape of x]
///
/// Every helper differentiates at a fresh copy of x (so x itself is never touched and may or may
/// not require grad), runs f with gradients enabled, returns detached results, and gives zeros
/// where f does not depend on x instead of the native abort of TorchSharp's autograd.grad.
/// The J v product uses the double-backward trick: with g(u) = Jᵀu (linear in a dummy u),
/// ∂⟨g(u), v⟩/∂u = J v.
namespace SeqNets.FSharp

open TorchSharp
open SeqNets

[<RequireQualifiedAccess>]
module AD =
    let private leaf (x: Tensor) = x.detach().clone().requires_grad_ true

    /// A fresh leaf copy of x and f at it, with gradients enabled.
    let private evaluate (f: Tensor -> Tensor) (x: Tensor) =
        Args.notNull (nameof f) f
        Args.floating (nameof x) x
        SeqNets.Native.ensure ()
        let xl = leaf x
        let y = f xl
        if isNull y then Args.fail (nameof f) "f: expected a function returning a tensor, but it returned null."
        Args.floating "f x" y
        xl, y

    let private scalarOutput (y: Tensor) =
        if y.numel () <> 1L then
            Args.fail "f" $"f: expected a scalar-valued function (one output value), but f x has shape {Args.shapeText y}."

    let private direction (name: string) (what: string) (reference: Tensor) (v: Tensor) =
        Args.floating name v
        Args.sameShape name what reference v
        Args.sameDtype name what reference v

    /// First-order reverse mode: Σ ⟨g, y⟩ differentiated at xl, keeping the graph for more calls.
    let private backward (y: Tensor) (xl: Tensor) (g: Tensor option) =
        Autodiff.gradWith true false [ y ] [ xl ] (g |> Option.map List.singleton) |> List.head

    /// The gradient ∇f(x) of a scalar-valued f, shaped like x.
    [<CompiledName("Grad")>]
    let grad (f: Tensor -> Tensor) (x: Tensor) : Tensor =
        use _ = torch.enable_grad ()
        let xl, y = evaluate f x
        scalarOutput y
        if not y.requires_grad then torch.zeros_like x
        else (backward (y.reshape [||]) xl None).detach ()

    /// The directional derivative ∇f(x) · v of a scalar-valued f along v (shaped like x): a scalar.
    [<CompiledName("GradV")>]
    let gradv (f: Tensor -> Tensor) (x: Tensor) (v: Tensor) : Tensor =
        Args.floating (nameof x) x
        direction (nameof v) "the shape of x" x v
        (grad f x * v).sum ()

    /// The vector-Jacobian product vᵀ J of f at x, for v shaped like f(x); shaped like x.
    [<CompiledName("Vjp")>]
    let vjp (f: Tensor -> Tensor) (x: Tensor) (v: Tensor) : Tensor =
        use _ = torch.enable_grad ()
        let xl, y = evaluate f x
        direction (nameof v) "the shape of f x" y v
        if not y.requires_grad then torch.zeros_like x
        else (backward y xl (Some v)).detach ()

    /// Jᵀu for a dummy u that requires grad, with its graph (for the double-backward trick), or
    /// None when f does not depend on x.
    let private transposedProduct (xl: Tensor) (y: Tensor) =
        if not y.requires_grad then None
        else
            let u = torch.zeros_like(y).requires_grad_ true
            let g = Autodiff.gradWith true true [ y ] [ xl ] (Some [ u ]) |> List.head // Jᵀu: shaped like x
            if g.requires_grad then Some(u, g) else None // g constant in u means J = 0

    /// The Jacobian-vector product J v of f at x, for v shaped like x; shaped like f(x).
    [<CompiledName("Jvp")>]
    let jvp (f: Tensor -> Tensor) (x: Tensor) (v: Tensor) : Tensor =
        use _ = torch.enable_grad ()
        let xl, y = evaluate f x
        direction (nameof v) "the shape of x" x v
        match transposedProduct xl y with
        | None -> torch.zeros_like y
        | Some(u, g) -> (Autodiff.gradWith true false [ g ] [ u ] (Some [ v ]) |> List.head).detach ()

    /// The Jacobian ∂f/∂x, shaped [shape of f(x) @ shape of x]: entry (i…, j…) is ∂f_i/∂x_j.
    /// Built row by row (one reverse pass per output) when f has no more outputs than inputs, and
    /// column by column (one J e_j per input) otherwise.
    [<CompiledName("Jacobian")>]
    let jacobian (f: Tensor -> Tensor) (x: Tensor) : Tensor =
        use _ = torch.enable_grad ()
        let xl, y = evaluate f x
        let m, n = y.numel (), x.numel ()
        let shape = Array.append y.shape x.shape
        if not y.requires_grad || m = 0L || n = 0L then torch.zeros(shape, dtype = x.dtype)
        elif m <= n then
            let flat = y.reshape -1L // [m]
            let rows = [| for i in 0L .. m - 1L -> (backward flat[i] xl None).detach().reshape -1L |] // m × [n]
            torch.stack(rows, 0L).reshape shape // [m; n]
        else
            match transposedProduct xl y with
            | None -> torch.zeros(shape, dtype = x.dtype)
            | Some(u, g) ->
                let flat = g.reshape -1L // Jᵀu: [n]
                let cols = [| for j in 0L .. n - 1L -> (Autodiff.gradWith true false [ flat[j] ] [ u ] None |> List.head).detach().reshape -1L |] // n × [m]
                torch.stack(cols, 1L).reshape shape // [m; n]

    /// The derivative f'(x) of a function from one value to one value, as a tensor shaped like x.
    [<CompiledName("Diff")>]
    let diff (f: Tensor -> Tensor) (x: Tensor) : Tensor =
        Args.floating (nameof x) x
        Args.scalar (nameof x) x
        grad f x

    /// The Hessian ∇²f(x) of a scalar-valued f, shaped [shape of x @ shape of x]: one reverse pass
    /// through the gradient's graph per entry of x.
    [<CompiledName("Hessian")>]
    let hessian (f: Tensor -> Tensor) (x: Tensor) : Tensor =
        use _ = torch.enable_grad ()
        let xl, y = evaluate f x
        scalarOutput y
        let n = x.numel ()
        let shape = Array.append x.shape x.shape
        if not y.requires_grad || n = 0L then torch.zeros(shape, dtype = x.dtype)
        else
            let g = Autodiff.gradWith true true [ y.reshape [||] ] [ xl ] None |> List.head // ∇f with its graph
            if not g.requires_grad then torch.zeros(shape, dtype = x.dtype) // f linear in x
            else
                let flat = g.reshape -1L // [n]
                let rows = [| for i in 0L .. n - 1L -> (backward flat[i] xl None).detach().reshape -1L |] // n × [n]
                torch.stack(rows, 0L).reshape shape // [n; n]
