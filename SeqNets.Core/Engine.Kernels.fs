/// The element-wise halves of the engine's steps (Engine.fs): per step one pass over the rows of
/// the batch, in SIMD vectors (System.Numerics.Vector<T>) with a scalar tail, directly over the
/// tensors' own memory. Each kernel's equations are written once, for a lane that is either a
/// vector of W numbers or one number, and instantiated for float32 and float64.
///
/// Every pointer is the start of one time step's block of a row-major [B; width] buffer; a row's
/// width is named in the comment of its argument. `active` is the mask (null: every row steps);
/// a row that does not step carries its state (s_t = s_{t−1}) and its incoming gradient.
/// In the backward kernels the gradient entering step t is δs_t = w · carry + δh_t, where carry
/// is J_{t+1}ᵀ δs_{t+1} (the state part of the step after, not yet weighted) and δh_t the
/// gradient on the output h_t.
/// Legend: B batch, H hidden, F factors, S state, W lanes per vector.
namespace SeqNets

#nowarn "9" // native pointers into the tensors' memory

open System
open System.Numerics
open System.Runtime.CompilerServices
open Microsoft.FSharp.NativeInterop

[<RequireQualifiedAccess>]
module internal EngineKernels =
    // Lanes: loads and stores of a vector at column k, or of one number.
    let inline vld (p: nativeptr<'T>) (k: int) : Vector<'T> = Vector.Load(NativePtr.add p k)
    let inline vst (p: nativeptr<'T>) (k: int) (v: Vector<'T>) = Vector.Store(v, NativePtr.add p k)
    let inline sld (p: nativeptr<'T>) (k: int) : 'T = NativePtr.get p k
    let inline sst (p: nativeptr<'T>) (k: int) (v: 'T) = NativePtr.set p k v

    /// e^x for vectors, written out so that it is inlined into the kernels (the runtime's
    /// Vector.Exp is a call, run unoptimised until the runtime recompiles it): x = n ln 2 + r with
    /// |r| ≤ ln 2 / 2, e^r by its Taylor series (float32 to r⁷, float64 to r¹³; series error below
    /// 5e-9 and 4e-18), 2^n built in the exponent bits. NaN stays NaN; results below the smallest
    /// normal number are that number's neighbourhood, not 0 (x is clamped to [−87, 88], [−708, 709]).
    let inline vexp32 (x: Vector<float32>) =
        let inline c (v: float32) = Vector<float32>(v)
        let inline fma (a: Vector<float32>) (b: Vector<float32>) (d: Vector<float32>) = Vector.FusedMultiplyAdd(a, b, d) // a·b + d
        let xc = Vector.Min(Vector.Max(x, c (-87.0f)), c 88.0f)
        let n = Vector.Floor(fma xc (c 1.44269504f) (c 0.5f))
        let r = fma n (c 2.12194440e-4f) (fma n (c (-0.693359375f)) xc) // x − n ln 2, ln 2 in two parts
        let p =
            fma (fma (fma (fma (fma (fma (fma (c 0.000198412698f) r (c 0.00138888889f)) r (c 0.00833333333f)) r (c 0.0416666667f))
                 r (c 0.166666667f)) r (c 0.5f)) r (c 1.0f)) r (c 1.0f)
        // n + 2²³ + 127 holds n + 127 in its low mantissa bits; shifted, it is the exponent of 2^n.
        let twoN = Vector.AsVectorSingle(Vector.ShiftLeft(Vector.AsVectorInt32(n + c 8388735.0f), 23))
        Vector.ConditionalSelect(Vector.Equals(x, x), p * twoN, x)

    let inline vexp64 (x: Vector<float>) =
        let inline c (v: float) = Vector<float>(v)
        let inline fma (a: Vector<float>) (b: Vector<float>) (d: Vector<float>) = Vector.FusedMultiplyAdd(a, b, d)
        let xc = Vector.Min(Vector.Max(x, c (-708.0)), c 709.0)
        let n = Vector.Floor(fma xc (c 1.4426950408889634) (c 0.5))
        let r = fma n (c (-1.42860682030941723212E-6)) (fma n (c (-6.93145751953125E-1)) xc)
        let mutable p = c 1.6059043836821613e-10
        p <- fma p r (c 2.0876756987868100e-09)
        p <- fma p r (c 2.5052108385441720e-08)
        p <- fma p r (c 2.7557319223985888e-07)
        p <- fma p r (c 2.7557319223985893e-06)
        p <- fma p r (c 2.4801587301587302e-05)
        p <- fma p r (c 1.9841269841269841e-04)
        p <- fma p r (c 1.3888888888888889e-03)
        p <- fma p r (c 8.3333333333333332e-03)
        p <- fma p r (c 4.1666666666666664e-02)
        p <- fma p r (c 1.6666666666666666e-01)
        p <- fma p r (c 0.5)
        p <- fma p r (c 1.0)
        p <- fma p r (c 1.0)
        let twoN = Vector.AsVectorDouble(Vector.ShiftLeft(Vector.AsVectorInt64(n + c 4503599627371519.0), 52))
        Vector.ConditionalSelect(Vector.Equals(x, x), p * twoN, x)

    /// tanh for vectors, to a few units in the last place: on |x| < τ the Taylor series
    /// x − x³/3 + 2x⁵/15 − … (where 1 − e^{−2|x|} would cancel), beyond it
    /// sign(x) · (1 − z)/(1 + z) with z = e^{−2|x|}. float32: τ = 0.4, terms to x¹³ (series
    /// error 4e-9); float64: τ = 0.25, terms to x²¹ (2e-18).
    let inline vtanh32 (x: Vector<float32>) =
        let inline c (v: float32) = Vector<float32>(v)
        let inline fma (a: Vector<float32>) (b: Vector<float32>) (d: Vector<float32>) = Vector.FusedMultiplyAdd(a, b, d)
        let a = Vector.Abs x
        let z = vexp32 (c (-2.0f) * a)
        let far = (Vector<float32>.One - z) / (Vector<float32>.One + z)
        let q = a * a
        let series =
            a * fma (fma (fma (fma (fma (fma (c 0.00359212804f) q (c (-0.00886323553f))) q (c 0.0218694885f)) q (c (-0.0539682540f)))
                      q (c 0.133333333f)) q (c (-0.333333333f))) q (c 1.0f)
        let r = Vector.ConditionalSelect(Vector.LessThan(a, c 0.4f), series, far)
        Vector.ConditionalSelect(Vector.LessThan(x, Vector<float32>.Zero), -r, r)

    let inline vtanh64 (x: Vector<float>) =
        let inline c (v: float) = Vector<float>(v)
        let inline fma (a: Vector<float>) (b: Vector<float>) (d: Vector<float>) = Vector.FusedMultiplyAdd(a, b, d)
        let a = Vector.Abs x
        let z = vexp64 (c (-2.0) * a)
        let far = (Vector<float>.One - z) / (Vector<float>.One + z)
        let q = a * a
        let mutable p = c 9.691537956929451e-05
        p <- fma p q (c (-0.00023912911424355248))
        p <- fma p q (c 0.000590027440945586)
        p <- fma p q (c (-0.0014558343870513183))
        p <- fma p q (c 0.003592128036572481)
        p <- fma p q (c (-0.008863235529902197))
        p <- fma p q (c 0.021869488536155203)
        p <- fma p q (c (-0.05396825396825397))
        p <- fma p q (c 0.13333333333333333)
        p <- fma p q (c (-0.3333333333333333))
        p <- fma p q (c 1.0)
        let r = Vector.ConditionalSelect(Vector.LessThan(a, c 0.25), a * p, far)
        Vector.ConditionalSelect(Vector.LessThan(x, Vector<float>.Zero), -r, r)

    // The vector functions as calls, for their tests.
    let exp32 (x: Vector<float32>) = vexp32 x
    let exp64 (x: Vector<float>) = vexp64 x
    let tanh32 (x: Vector<float32>) = vtanh32 x
    let tanh64 (x: Vector<float>) = vtanh64 x

    let inline row (p: nativeptr<'T>) (b: int) (width: int) = NativePtr.add p (b * width)
    let inline isActive (active: bool[]) (offset: int) (b: int) = isNull active || active[offset + b]
    let inline span (p: nativeptr<'T>) (n: int) = Span<'T>(NativePtr.toVoidPtr p, n)

    /// A row that does not step: its state part [0, n) of next gets the incoming gradient,
    /// w · carry (+ δh on the first H entries).
    let inline passAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) w (carry: nativeptr<'T>) (dh: nativeptr<'T>) (next: nativeptr<'T>) k =
        st next k (w * ld carry k + ld dh k)

    let inline scaleAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) w (carry: nativeptr<'T>) (next: nativeptr<'T>) k =
        st next k (w * ld carry k)

    /// The incoming gradient of a row that does not step, for a state of width S whose first H
    /// entries are the output: next = w · carry + [δh; 0].
    let inline pass (W: int) (w: 'T) (H: int) (S: int) (carry: nativeptr<'T>) (dh: nativeptr<'T>) (next: nativeptr<'T>) =
        let wv = Vector<'T>(w)
        let mutable k = 0
        while k + W <= H do passAt vld vst wv carry dh next k; k <- k + W
        while k < H do passAt sld sst w carry dh next k; k <- k + 1
        let carryC, nextC = NativePtr.add carry H, NativePtr.add next H
        let C = S - H
        k <- 0
        while k + W <= C do scaleAt vld vst wv carryC nextC k; k <- k + W
        while k < C do scaleAt sld sst w carryC nextC k; k <- k + 1

    // ---------------------------------------------------------------------------------------
    // Elman: h_t = φ(a), a = px + U h_{t−1} (pre = U h_{t−1}).

    let inline elmanForwardAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) ([<InlineIfLambda>] phi)
                              (px: nativeptr<'T>) (pre: nativeptr<'T>) (hNext: nativeptr<'T>) k =
        st hNext k (phi (ld px k + ld pre k))

    /// δa = δh_t ⊙ φ'(a), with φ' from h_t: 1 − h² (tanh) or [h > 0] (ReLU); next = 0.
    let inline elmanBackwardAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) ([<InlineIfLambda>] dphi) w zero
                               (carry: nativeptr<'T>) (dh: nativeptr<'T>) (hNext: nativeptr<'T>) (dpx: nativeptr<'T>) (next: nativeptr<'T>) k =
        let d = w * ld carry k + ld dh k
        st dpx k (dphi (ld hNext k) d)
        st next k zero

    let inline elmanForwardT (relu: bool) ([<InlineIfLambda>] vsg: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] vth: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] ssg: 'T -> 'T) ([<InlineIfLambda>] sth: 'T -> 'T)
                             B H (active: bool[]) offset (px: nativeptr<'T>) (pre: nativeptr<'T>) (hPrev: nativeptr<'T>) (hNext: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        let vtwo, two = vone + vone, one + one
        let vzero, zero = Vector<'T>.Zero, LanguagePrimitives.GenericZero<'T>
        for b in 0 .. B - 1 do
            let hNext = row hNext b H
            if not (isActive active offset b) then (span (row hPrev b H) H).CopyTo(span hNext H)
            else
                let px, pre = row px b H, row pre b H
                let mutable k = 0
                if relu then
                    while k + W <= H do elmanForwardAt vld vst (fun a -> Vector.Max(a, vzero)) px pre hNext k; k <- k + W
                    while k < H do elmanForwardAt sld sst (fun a -> max a zero) px pre hNext k; k <- k + 1
                else
                    while k + W <= H do elmanForwardAt vld vst vth px pre hNext k; k <- k + W
                    while k < H do elmanForwardAt sld sst sth px pre hNext k; k <- k + 1

    let inline elmanBackwardT (relu: bool) B H (active: bool[]) offset (w: 'T)
                              (carry: nativeptr<'T>) (dh: nativeptr<'T>) (hNext: nativeptr<'T>) (dpx: nativeptr<'T>) (next: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        let vzero, zero = Vector<'T>.Zero, LanguagePrimitives.GenericZero<'T>
        let wv = Vector<'T>(w)
        for b in 0 .. B - 1 do
            let carry, dh, hNext, dpx, next = row carry b H, row dh b H, row hNext b H, row dpx b H, row next b H
            if not (isActive active offset b) then
                (span dpx H).Clear()
                pass W w H H carry dh next
            else
                let mutable k = 0
                if relu then
                    while k + W <= H do
                        elmanBackwardAt vld vst (fun h d -> Vector.ConditionalSelect(Vector.GreaterThan(h, vzero), d, vzero)) wv vzero carry dh hNext dpx next k
                        k <- k + W
                    while k < H do elmanBackwardAt sld sst (fun h d -> if h > zero then d else zero) w zero carry dh hNext dpx next k; k <- k + 1
                else
                    while k + W <= H do elmanBackwardAt vld vst (fun h d -> d * (vone - h * h)) wv vzero carry dh hNext dpx next k; k <- k + W
                    while k < H do elmanBackwardAt sld sst (fun h d -> d * (one - h * h)) w zero carry dh hNext dpx next k; k <- k + 1

    // ---------------------------------------------------------------------------------------
    // LSTM: pre-activations px + U h_{t−1} in rows (i, f, g, o); s = [h; c].

    let inline lstmForwardAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) ([<InlineIfLambda>] sg) ([<InlineIfLambda>] th) one H
                             (px: nativeptr<'T>) (pre: nativeptr<'T>) (sPrev: nativeptr<'T>)
                             (gates: nativeptr<'T>) (sNext: nativeptr<'T>) (hs: nativeptr<'T>) k =
        let i = sg (ld px k + ld pre k)
        let f = sg (ld px (H + k) + ld pre (H + k))
        let g = th (ld px (2 * H + k) + ld pre (2 * H + k))
        let o = sg (ld px (3 * H + k) + ld pre (3 * H + k))
        let c = f * ld sPrev (H + k) + i * g // c_t = f ⊙ c_{t−1} + i ⊙ g
        let h = o * th c // h_t = o ⊙ tanh(c_t)
        st gates k i
        st gates (H + k) f
        st gates (2 * H + k) g
        st gates (3 * H + k) o
        st sNext k h
        st sNext (H + k) c
        st hs k h

    /// With δh = w·carry_h + δh_t, δc = w·carry_c and τ = tanh(c_t):
    ///   δc ← δc + δh ⊙ o ⊙ (1 − τ²); δ(pre) = [δc ⊙ g ⊙ i(1−i); δc ⊙ c_{t−1} ⊙ f(1−f); δc ⊙ i ⊙ (1−g²); δh ⊙ τ ⊙ o(1−o)];
    ///   next = [0; δc ⊙ f] (the GEMM adds δ(pre) U to the h part).
    let inline lstmBackwardAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) ([<InlineIfLambda>] th) one zero w H
                              (carry: nativeptr<'T>) (dh: nativeptr<'T>) (gates: nativeptr<'T>) (sPrev: nativeptr<'T>) (sNext: nativeptr<'T>)
                              (dpx: nativeptr<'T>) (next: nativeptr<'T>) k =
        let dhk = w * ld carry k + ld dh k
        let i, f, g, o = ld gates k, ld gates (H + k), ld gates (2 * H + k), ld gates (3 * H + k)
        let tc = th (ld sNext (H + k))
        let dc = w * ld carry (H + k) + dhk * o * (one - tc * tc)
        st dpx k (dc * g * i * (one - i))
        st dpx (H + k) (dc * ld sPrev (H + k) * f * (one - f))
        st dpx (2 * H + k) (dc * i * (one - g * g))
        st dpx (3 * H + k) (dhk * tc * o * (one - o))
        st next k zero
        st next (H + k) (dc * f)

    let inline lstmForwardT ([<InlineIfLambda>] vsg: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] vth: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] ssg: 'T -> 'T) ([<InlineIfLambda>] sth: 'T -> 'T)
                            B H (active: bool[]) offset (px: nativeptr<'T>) (pre: nativeptr<'T>) (sPrev: nativeptr<'T>)
                            (gates: nativeptr<'T>) (sNext: nativeptr<'T>) (hs: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        let vtwo, two = vone + vone, one + one
        for b in 0 .. B - 1 do
            let sPrev, sNext, hs = row sPrev b (2 * H), row sNext b (2 * H), row hs b H
            if not (isActive active offset b) then
                (span sPrev (2 * H)).CopyTo(span sNext (2 * H))
                (span sPrev H).CopyTo(span hs H)
            else
                let px, pre, gates = row px b (4 * H), row pre b (4 * H), row gates b (4 * H)
                let mutable k = 0
                while k + W <= H do lstmForwardAt vld vst vsg vth vone H px pre sPrev gates sNext hs k; k <- k + W
                while k < H do lstmForwardAt sld sst ssg sth one H px pre sPrev gates sNext hs k; k <- k + 1

    let inline lstmBackwardT ([<InlineIfLambda>] vsg: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] vth: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] ssg: 'T -> 'T) ([<InlineIfLambda>] sth: 'T -> 'T)
                             B H (active: bool[]) offset (w: 'T) (carry: nativeptr<'T>) (dh: nativeptr<'T>) (gates: nativeptr<'T>)
                             (sPrev: nativeptr<'T>) (sNext: nativeptr<'T>) (dpx: nativeptr<'T>) (next: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        let vtwo, two = vone + vone, one + one
        let vzero, zero = Vector<'T>.Zero, LanguagePrimitives.GenericZero<'T>
        let wv = Vector<'T>(w)
        for b in 0 .. B - 1 do
            let carry, dh, next, dpx = row carry b (2 * H), row dh b H, row next b (2 * H), row dpx b (4 * H)
            if not (isActive active offset b) then
                (span dpx (4 * H)).Clear()
                pass W w H (2 * H) carry dh next
            else
                let gates, sPrev, sNext = row gates b (4 * H), row sPrev b (2 * H), row sNext b (2 * H)
                let mutable k = 0
                while k + W <= H do lstmBackwardAt vld vst vth vone vzero wv H carry dh gates sPrev sNext dpx next k; k <- k + W
                while k < H do lstmBackwardAt sld sst sth one zero w H carry dh gates sPrev sNext dpx next k; k <- k + 1

    // ---------------------------------------------------------------------------------------
    // GRU, PyTorch's form: gh = U h_{t−1} + b_hh (pre = U h_{t−1}); gates (r, z, n, gh_n).

    let inline gruForwardAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) ([<InlineIfLambda>] sg) ([<InlineIfLambda>] th) one H
                            (px: nativeptr<'T>) (pre: nativeptr<'T>) (bhh: nativeptr<'T>) (hPrev: nativeptr<'T>)
                            (gates: nativeptr<'T>) (hNext: nativeptr<'T>) k =
        let r = sg (ld px k + ld pre k + ld bhh k)
        let z = sg (ld px (H + k) + ld pre (H + k) + ld bhh (H + k))
        let ghn = ld pre (2 * H + k) + ld bhh (2 * H + k) // U_n h + b_hn
        let n = th (ld px (2 * H + k) + r * ghn)
        let h = ld hPrev k
        st gates k r
        st gates (H + k) z
        st gates (2 * H + k) n
        st gates (3 * H + k) ghn
        st hNext k (n + z * (h - n)) // z ⊙ h + (1 − z) ⊙ n

    /// δn = δh ⊙ (1−z) ⊙ (1−n²), δz = δh ⊙ (h−n) ⊙ z(1−z), δr = δn ⊙ gh_n ⊙ r(1−r):
    /// δpx = [δr; δz; δn], δgh = [δr; δz; δn ⊙ r], next = δh ⊙ z. δgh (rows of width 4H) may be the
    /// gates themselves: every gate of column k is read before δgh is written there.
    let inline gruBackwardAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) one w H
                             (carry: nativeptr<'T>) (dh: nativeptr<'T>) (gates: nativeptr<'T>) (hPrev: nativeptr<'T>)
                             (dpx: nativeptr<'T>) (dgh: nativeptr<'T>) (next: nativeptr<'T>) k =
        let d = w * ld carry k + ld dh k
        let r, z, n, ghn = ld gates k, ld gates (H + k), ld gates (2 * H + k), ld gates (3 * H + k)
        let dn = d * (one - z) * (one - n * n)
        let dz = d * (ld hPrev k - n) * z * (one - z)
        let dr = dn * ghn * r * (one - r)
        st dpx k dr
        st dpx (H + k) dz
        st dpx (2 * H + k) dn
        st dgh k dr
        st dgh (H + k) dz
        st dgh (2 * H + k) (dn * r)
        st next k (d * z)

    let inline gruForwardT ([<InlineIfLambda>] vsg: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] vth: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] ssg: 'T -> 'T) ([<InlineIfLambda>] sth: 'T -> 'T)
                           B H (active: bool[]) offset (px: nativeptr<'T>) (pre: nativeptr<'T>) (bhh: nativeptr<'T>) (hPrev: nativeptr<'T>)
                           (gates: nativeptr<'T>) (hNext: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        let vtwo, two = vone + vone, one + one
        for b in 0 .. B - 1 do
            let hPrev, hNext = row hPrev b H, row hNext b H
            if not (isActive active offset b) then (span hPrev H).CopyTo(span hNext H)
            else
                let px, pre, gates = row px b (3 * H), row pre b (3 * H), row gates b (4 * H)
                let mutable k = 0
                while k + W <= H do gruForwardAt vld vst vsg vth vone H px pre bhh hPrev gates hNext k; k <- k + W
                while k < H do gruForwardAt sld sst ssg sth one H px pre bhh hPrev gates hNext k; k <- k + 1

    let inline gruBackwardT B H (active: bool[]) offset (w: 'T) (carry: nativeptr<'T>) (dh: nativeptr<'T>) (gates: nativeptr<'T>)
                            (hPrev: nativeptr<'T>) (dpx: nativeptr<'T>) (dgh: nativeptr<'T>) (next: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        let wv = Vector<'T>(w)
        for b in 0 .. B - 1 do
            let carry, dh, next, dpx, dgh = row carry b H, row dh b H, row next b H, row dpx b (3 * H), row dgh b (4 * H)
            if not (isActive active offset b) then
                (span dpx (3 * H)).Clear()
                (span dgh (3 * H)).Clear()
                pass W w H H carry dh next
            else
                let gates, hPrev = row gates b (4 * H), row hPrev b H
                let mutable k = 0
                while k + W <= H do gruBackwardAt vld vst vone wv H carry dh gates hPrev dpx dgh next k; k <- k + W
                while k < H do gruBackwardAt sld sst one w H carry dh gates hPrev dpx dgh next k; k <- k + 1

    // ---------------------------------------------------------------------------------------
    // GRU, the lecture's form: r, z = σ(px_rz + U_rz h_{t−1}), q = r ⊙ h_{t−1},
    // n = tanh(px_n + U_n q); gates (r, z, n, q). Two GEMMs and two passes per step.

    let inline gruLectureGatesAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) ([<InlineIfLambda>] sg) one H
                                 (px: nativeptr<'T>) (pre: nativeptr<'T>) (hPrev: nativeptr<'T>) (gates: nativeptr<'T>) k =
        let r = sg (ld px k + ld pre k)
        let z = sg (ld px (H + k) + ld pre (H + k))
        st gates k r
        st gates (H + k) z
        st gates (3 * H + k) (r * ld hPrev k)

    let inline gruLectureStateAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) ([<InlineIfLambda>] th) H
                                 (px: nativeptr<'T>) (preN: nativeptr<'T>) (hPrev: nativeptr<'T>) (gates: nativeptr<'T>) (hNext: nativeptr<'T>) k =
        let n = th (ld px (2 * H + k) + ld preN k)
        let z, h = ld gates (H + k), ld hPrev k
        st gates (2 * H + k) n
        st hNext k (n + z * (h - n))

    /// δpx_n = δh ⊙ (1−z) ⊙ (1−n²), δpx_z = δh ⊙ (h−n) ⊙ z(1−z).
    let inline gruLectureBackwardNAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) one w H
                                     (carry: nativeptr<'T>) (dh: nativeptr<'T>) (gates: nativeptr<'T>) (hPrev: nativeptr<'T>) (dpx: nativeptr<'T>) k =
        let d = w * ld carry k + ld dh k
        let z, n = ld gates (H + k), ld gates (2 * H + k)
        st dpx (2 * H + k) (d * (one - z) * (one - n * n))
        st dpx (H + k) (d * (ld hPrev k - n) * z * (one - z))

    /// With δq = U_nᵀ δpx_n: δpx_r = δq ⊙ h ⊙ r(1−r), next = δh ⊙ z + δq ⊙ r.
    let inline gruLectureBackwardRAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) one w H
                                     (carry: nativeptr<'T>) (dh: nativeptr<'T>) (gates: nativeptr<'T>) (hPrev: nativeptr<'T>)
                                     (dq: nativeptr<'T>) (dpx: nativeptr<'T>) (next: nativeptr<'T>) k =
        let d = w * ld carry k + ld dh k
        let r, z, q = ld gates k, ld gates (H + k), ld dq k
        st dpx k (q * ld hPrev k * r * (one - r))
        st next k (d * z + q * r)

    let inline gruLectureGatesT ([<InlineIfLambda>] vsg: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] vth: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] ssg: 'T -> 'T) ([<InlineIfLambda>] sth: 'T -> 'T)
                                B H (px: nativeptr<'T>) (pre: nativeptr<'T>) (hPrev: nativeptr<'T>) (gates: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        for b in 0 .. B - 1 do
            // Every row, stepping or not: q enters the weight gradient's GEMM.
            let px, pre, hPrev, gates = row px b (3 * H), row pre b (2 * H), row hPrev b H, row gates b (4 * H)
            let mutable k = 0
            while k + W <= H do gruLectureGatesAt vld vst vsg vone H px pre hPrev gates k; k <- k + W
            while k < H do gruLectureGatesAt sld sst ssg one H px pre hPrev gates k; k <- k + 1

    let inline gruLectureStateT ([<InlineIfLambda>] vsg: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] vth: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] ssg: 'T -> 'T) ([<InlineIfLambda>] sth: 'T -> 'T)
                                B H (active: bool[]) offset (px: nativeptr<'T>) (preN: nativeptr<'T>) (hPrev: nativeptr<'T>)
                                (gates: nativeptr<'T>) (hNext: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        let vtwo, two = vone + vone, one + one
        for b in 0 .. B - 1 do
            let hPrev, hNext = row hPrev b H, row hNext b H
            if not (isActive active offset b) then (span hPrev H).CopyTo(span hNext H)
            else
                let px, preN, gates = row px b (3 * H), row preN b H, row gates b (4 * H)
                let mutable k = 0
                while k + W <= H do gruLectureStateAt vld vst vth H px preN hPrev gates hNext k; k <- k + W
                while k < H do gruLectureStateAt sld sst sth H px preN hPrev gates hNext k; k <- k + 1

    let inline gruLectureBackwardNT B H (active: bool[]) offset (w: 'T) (carry: nativeptr<'T>) (dh: nativeptr<'T>)
                                    (gates: nativeptr<'T>) (hPrev: nativeptr<'T>) (dpx: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        let wv = Vector<'T>(w)
        for b in 0 .. B - 1 do
            let dpx = row dpx b (3 * H)
            if not (isActive active offset b) then (span dpx (3 * H)).Clear()
            else
                let carry, dh, gates, hPrev = row carry b H, row dh b H, row gates b (4 * H), row hPrev b H
                let mutable k = 0
                while k + W <= H do gruLectureBackwardNAt vld vst vone wv H carry dh gates hPrev dpx k; k <- k + W
                while k < H do gruLectureBackwardNAt sld sst one w H carry dh gates hPrev dpx k; k <- k + 1

    let inline gruLectureBackwardRT B H (active: bool[]) offset (w: 'T) (carry: nativeptr<'T>) (dh: nativeptr<'T>)
                                    (gates: nativeptr<'T>) (hPrev: nativeptr<'T>) (dq: nativeptr<'T>) (dpx: nativeptr<'T>) (next: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        let wv = Vector<'T>(w)
        for b in 0 .. B - 1 do
            let carry, dh, next = row carry b H, row dh b H, row next b H
            if not (isActive active offset b) then pass W w H H carry dh next
            else
                let gates, hPrev, dq, dpx = row gates b (4 * H), row hPrev b H, row dq b H, row dpx b (3 * H)
                let mutable k = 0
                while k + W <= H do gruLectureBackwardRAt vld vst vone wv H carry dh gates hPrev dq dpx next k; k <- k + W
                while k < H do gruLectureBackwardRAt sld sst one w H carry dh gates hPrev dq dpx next k; k <- k + 1

    // ---------------------------------------------------------------------------------------
    // Multiplicative RNN: px = [a0; f] (H + F), u = W_fh h_{t−1}, m = f ⊙ u,
    // h_t = tanh(a0 + W_hf m); gates (u, m).

    let inline mrnnFactorsAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) H F (px: nativeptr<'T>) (u: nativeptr<'T>) (gates: nativeptr<'T>) k =
        let uk = ld u k
        st gates k uk
        st gates (F + k) (ld px (H + k) * uk)

    let inline mrnnStateAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) ([<InlineIfLambda>] th)
                           (px: nativeptr<'T>) (pre: nativeptr<'T>) (hNext: nativeptr<'T>) k =
        st hNext k (th (ld px k + ld pre k))

    /// δa = δh ⊙ (1 − h_t²).
    let inline mrnnBackwardAAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) one w
                               (carry: nativeptr<'T>) (dh: nativeptr<'T>) (hNext: nativeptr<'T>) (dpx: nativeptr<'T>) k =
        let h = ld hNext k
        st dpx k ((w * ld carry k + ld dh k) * (one - h * h))

    /// With δm = W_hfᵀ δa: δf = δm ⊙ u, δu = δm ⊙ f.
    let inline mrnnBackwardBAt ([<InlineIfLambda>] ld) ([<InlineIfLambda>] st) H F
                               (gates: nativeptr<'T>) (px: nativeptr<'T>) (dm: nativeptr<'T>) (dpx: nativeptr<'T>) (du: nativeptr<'T>) k =
        let d = ld dm k
        st dpx (H + k) (d * ld gates k)
        st du k (d * ld px (H + k))

    let inline mrnnFactorsT B H F (px: nativeptr<'T>) (u: nativeptr<'T>) (gates: nativeptr<'T>) =
        let W = Vector<'T>.Count
        for b in 0 .. B - 1 do
            // Every row, stepping or not: m enters the weight gradient's GEMM.
            let px, u, gates = row px b (H + F), row u b F, row gates b (2 * F)
            let mutable k = 0
            while k + W <= F do mrnnFactorsAt vld vst H F px u gates k; k <- k + W
            while k < F do mrnnFactorsAt sld sst H F px u gates k; k <- k + 1

    let inline mrnnStateT ([<InlineIfLambda>] vsg: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] vth: Vector<'T> -> Vector<'T>) ([<InlineIfLambda>] ssg: 'T -> 'T) ([<InlineIfLambda>] sth: 'T -> 'T)
                          B H F (active: bool[]) offset (px: nativeptr<'T>) (pre: nativeptr<'T>) (hPrev: nativeptr<'T>) (hNext: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        let vtwo, two = vone + vone, one + one
        for b in 0 .. B - 1 do
            let hNext = row hNext b H
            if not (isActive active offset b) then (span (row hPrev b H) H).CopyTo(span hNext H)
            else
                let px, pre = row px b (H + F), row pre b H
                let mutable k = 0
                while k + W <= H do mrnnStateAt vld vst vth px pre hNext k; k <- k + W
                while k < H do mrnnStateAt sld sst sth px pre hNext k; k <- k + 1

    let inline mrnnBackwardAT B H F (active: bool[]) offset (w: 'T) (carry: nativeptr<'T>) (dh: nativeptr<'T>) (hNext: nativeptr<'T>) (dpx: nativeptr<'T>) =
        let W = Vector<'T>.Count
        let vone, one = Vector<'T>.One, LanguagePrimitives.GenericOne<'T>
        let wv = Vector<'T>(w)
        for b in 0 .. B - 1 do
            let dpx = row dpx b (H + F)
            if not (isActive active offset b) then (span dpx (H + F)).Clear()
            else
                let carry, dh, hNext = row carry b H, row dh b H, row hNext b H
                let mutable k = 0
                while k + W <= H do mrnnBackwardAAt vld vst vone wv carry dh hNext dpx k; k <- k + W
                while k < H do mrnnBackwardAAt sld sst one w carry dh hNext dpx k; k <- k + 1

    let inline mrnnBackwardBT B H F (active: bool[]) offset (w: 'T) (carry: nativeptr<'T>) (dh: nativeptr<'T>) (gates: nativeptr<'T>)
                              (px: nativeptr<'T>) (dm: nativeptr<'T>) (dpx: nativeptr<'T>) (du: nativeptr<'T>) (next: nativeptr<'T>) =
        let W = Vector<'T>.Count
        for b in 0 .. B - 1 do
            let du, next = row du b F, row next b H
            if not (isActive active offset b) then
                (span du F).Clear()
                pass W w H H (row carry b H) (row dh b H) next
            else
                let gates, px, dm, dpx = row gates b (2 * F), row px b (H + F), row dm b F, row dpx b (H + F)
                let mutable k = 0
                while k + W <= F do mrnnBackwardBAt vld vst H F gates px dm dpx du k; k <- k + W
                while k < F do mrnnBackwardBAt sld sst H F gates px dm dpx du k; k <- k + 1
                (span next H).Clear()

    // ---------------------------------------------------------------------------------------
    // The entry points, one per kernel and dtype (each compiled optimised from its first call),
    // pointers as addresses.

    let inline private p32 (a: nativeint) : nativeptr<float32> = NativePtr.ofNativeInt a
    let inline private p64 (a: nativeint) : nativeptr<float> = NativePtr.ofNativeInt a
    let inline private vsig32 (x: Vector<float32>) = Vector<float32>.One / (Vector<float32>.One + vexp32 (-x))
    let inline private vsig64 (x: Vector<float>) = Vector<float>.One / (Vector<float>.One + vexp64 (-x))
    let inline private ssig32 (x: float32) = 1.0f / (1.0f + MathF.Exp(-x))
    let inline private ssig64 (x: float) = 1.0 / (1.0 + Math.Exp(-x))
    let inline private stanh32 (x: float32) = MathF.Tanh x
    let inline private stanh64 (x: float) = Math.Tanh x

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private elmanForward64 relu B H active offset px pre hPrev hNext =
        elmanForwardT relu vsig64 vtanh64 ssig64 stanh64 B H active offset (p64 px) (p64 pre) (p64 hPrev) (p64 hNext)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private elmanForward32 relu B H active offset px pre hPrev hNext =
        elmanForwardT relu vsig32 vtanh32 ssig32 stanh32 B H active offset (p32 px) (p32 pre) (p32 hPrev) (p32 hNext)

    let elmanForward double relu B H active offset px pre hPrev hNext =
        if double then elmanForward64 relu B H active offset px pre hPrev hNext else elmanForward32 relu B H active offset px pre hPrev hNext

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private elmanBackward64 relu B H active offset (w: float) carry dh hNext dpx next =
        elmanBackwardT relu B H active offset w (p64 carry) (p64 dh) (p64 hNext) (p64 dpx) (p64 next)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private elmanBackward32 relu B H active offset (w: float) carry dh hNext dpx next =
        elmanBackwardT relu B H active offset (float32 w) (p32 carry) (p32 dh) (p32 hNext) (p32 dpx) (p32 next)

    let elmanBackward double relu B H active offset (w: float) carry dh hNext dpx next =
        if double then elmanBackward64 relu B H active offset w carry dh hNext dpx next else elmanBackward32 relu B H active offset w carry dh hNext dpx next

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private lstmForward64 B H active offset px pre sPrev gates sNext hs =
        lstmForwardT vsig64 vtanh64 ssig64 stanh64 B H active offset (p64 px) (p64 pre) (p64 sPrev) (p64 gates) (p64 sNext) (p64 hs)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private lstmForward32 B H active offset px pre sPrev gates sNext hs =
        lstmForwardT vsig32 vtanh32 ssig32 stanh32 B H active offset (p32 px) (p32 pre) (p32 sPrev) (p32 gates) (p32 sNext) (p32 hs)

    let lstmForward double B H active offset px pre sPrev gates sNext hs =
        if double then lstmForward64 B H active offset px pre sPrev gates sNext hs else lstmForward32 B H active offset px pre sPrev gates sNext hs

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private lstmBackward64 B H active offset (w: float) carry dh gates sPrev sNext dpx next =
        lstmBackwardT vsig64 vtanh64 ssig64 stanh64 B H active offset w (p64 carry) (p64 dh) (p64 gates) (p64 sPrev) (p64 sNext) (p64 dpx) (p64 next)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private lstmBackward32 B H active offset (w: float) carry dh gates sPrev sNext dpx next =
        lstmBackwardT vsig32 vtanh32 ssig32 stanh32 B H active offset (float32 w) (p32 carry) (p32 dh) (p32 gates) (p32 sPrev) (p32 sNext) (p32 dpx) (p32 next)

    let lstmBackward double B H active offset (w: float) carry dh gates sPrev sNext dpx next =
        if double then lstmBackward64 B H active offset w carry dh gates sPrev sNext dpx next else lstmBackward32 B H active offset w carry dh gates sPrev sNext dpx next

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruForward64 B H active offset px pre bhh hPrev gates hNext =
        gruForwardT vsig64 vtanh64 ssig64 stanh64 B H active offset (p64 px) (p64 pre) (p64 bhh) (p64 hPrev) (p64 gates) (p64 hNext)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruForward32 B H active offset px pre bhh hPrev gates hNext =
        gruForwardT vsig32 vtanh32 ssig32 stanh32 B H active offset (p32 px) (p32 pre) (p32 bhh) (p32 hPrev) (p32 gates) (p32 hNext)

    let gruForward double B H active offset px pre bhh hPrev gates hNext =
        if double then gruForward64 B H active offset px pre bhh hPrev gates hNext else gruForward32 B H active offset px pre bhh hPrev gates hNext

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruBackward64 B H active offset (w: float) carry dh gates hPrev dpx dgh next =
        gruBackwardT B H active offset w (p64 carry) (p64 dh) (p64 gates) (p64 hPrev) (p64 dpx) (p64 dgh) (p64 next)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruBackward32 B H active offset (w: float) carry dh gates hPrev dpx dgh next =
        gruBackwardT B H active offset (float32 w) (p32 carry) (p32 dh) (p32 gates) (p32 hPrev) (p32 dpx) (p32 dgh) (p32 next)

    let gruBackward double B H active offset (w: float) carry dh gates hPrev dpx dgh next =
        if double then gruBackward64 B H active offset w carry dh gates hPrev dpx dgh next else gruBackward32 B H active offset w carry dh gates hPrev dpx dgh next

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruLectureGates64 B H px pre hPrev gates =
        gruLectureGatesT vsig64 vtanh64 ssig64 stanh64 B H (p64 px) (p64 pre) (p64 hPrev) (p64 gates)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruLectureGates32 B H px pre hPrev gates =
        gruLectureGatesT vsig32 vtanh32 ssig32 stanh32 B H (p32 px) (p32 pre) (p32 hPrev) (p32 gates)

    let gruLectureGates double B H px pre hPrev gates =
        if double then gruLectureGates64 B H px pre hPrev gates else gruLectureGates32 B H px pre hPrev gates

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruLectureState64 B H active offset px preN hPrev gates hNext =
        gruLectureStateT vsig64 vtanh64 ssig64 stanh64 B H active offset (p64 px) (p64 preN) (p64 hPrev) (p64 gates) (p64 hNext)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruLectureState32 B H active offset px preN hPrev gates hNext =
        gruLectureStateT vsig32 vtanh32 ssig32 stanh32 B H active offset (p32 px) (p32 preN) (p32 hPrev) (p32 gates) (p32 hNext)

    let gruLectureState double B H active offset px preN hPrev gates hNext =
        if double then gruLectureState64 B H active offset px preN hPrev gates hNext else gruLectureState32 B H active offset px preN hPrev gates hNext

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruLectureBackwardN64 B H active offset (w: float) carry dh gates hPrev dpx =
        gruLectureBackwardNT B H active offset w (p64 carry) (p64 dh) (p64 gates) (p64 hPrev) (p64 dpx)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruLectureBackwardN32 B H active offset (w: float) carry dh gates hPrev dpx =
        gruLectureBackwardNT B H active offset (float32 w) (p32 carry) (p32 dh) (p32 gates) (p32 hPrev) (p32 dpx)

    let gruLectureBackwardN double B H active offset (w: float) carry dh gates hPrev dpx =
        if double then gruLectureBackwardN64 B H active offset w carry dh gates hPrev dpx else gruLectureBackwardN32 B H active offset w carry dh gates hPrev dpx

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruLectureBackwardR64 B H active offset (w: float) carry dh gates hPrev dq dpx next =
        gruLectureBackwardRT B H active offset w (p64 carry) (p64 dh) (p64 gates) (p64 hPrev) (p64 dq) (p64 dpx) (p64 next)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private gruLectureBackwardR32 B H active offset (w: float) carry dh gates hPrev dq dpx next =
        gruLectureBackwardRT B H active offset (float32 w) (p32 carry) (p32 dh) (p32 gates) (p32 hPrev) (p32 dq) (p32 dpx) (p32 next)

    let gruLectureBackwardR double B H active offset (w: float) carry dh gates hPrev dq dpx next =
        if double then gruLectureBackwardR64 B H active offset w carry dh gates hPrev dq dpx next else gruLectureBackwardR32 B H active offset w carry dh gates hPrev dq dpx next

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private mrnnFactors64 B H F px u gates =
        mrnnFactorsT B H F (p64 px) (p64 u) (p64 gates)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private mrnnFactors32 B H F px u gates =
        mrnnFactorsT B H F (p32 px) (p32 u) (p32 gates)

    let mrnnFactors double B H F px u gates =
        if double then mrnnFactors64 B H F px u gates else mrnnFactors32 B H F px u gates

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private mrnnState64 B H F active offset px pre hPrev hNext =
        mrnnStateT vsig64 vtanh64 ssig64 stanh64 B H F active offset (p64 px) (p64 pre) (p64 hPrev) (p64 hNext)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private mrnnState32 B H F active offset px pre hPrev hNext =
        mrnnStateT vsig32 vtanh32 ssig32 stanh32 B H F active offset (p32 px) (p32 pre) (p32 hPrev) (p32 hNext)

    let mrnnState double B H F active offset px pre hPrev hNext =
        if double then mrnnState64 B H F active offset px pre hPrev hNext else mrnnState32 B H F active offset px pre hPrev hNext

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private mrnnBackwardA64 B H F active offset (w: float) carry dh hNext dpx =
        mrnnBackwardAT B H F active offset w (p64 carry) (p64 dh) (p64 hNext) (p64 dpx)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private mrnnBackwardA32 B H F active offset (w: float) carry dh hNext dpx =
        mrnnBackwardAT B H F active offset (float32 w) (p32 carry) (p32 dh) (p32 hNext) (p32 dpx)

    let mrnnBackwardA double B H F active offset (w: float) carry dh hNext dpx =
        if double then mrnnBackwardA64 B H F active offset w carry dh hNext dpx else mrnnBackwardA32 B H F active offset w carry dh hNext dpx

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private mrnnBackwardB64 B H F active offset (w: float) carry dh gates px dm dpx du next =
        mrnnBackwardBT B H F active offset w (p64 carry) (p64 dh) (p64 gates) (p64 px) (p64 dm) (p64 dpx) (p64 du) (p64 next)

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private mrnnBackwardB32 B H F active offset (w: float) carry dh gates px dm dpx du next =
        mrnnBackwardBT B H F active offset (float32 w) (p32 carry) (p32 dh) (p32 gates) (p32 px) (p32 dm) (p32 dpx) (p32 du) (p32 next)

    let mrnnBackwardB double B H F active offset (w: float) carry dh gates px dm dpx du next =
        if double then mrnnBackwardB64 B H F active offset w carry dh gates px dm dpx du next else mrnnBackwardB32 B H F active offset w carry dh gates px dm dpx du next
