using Microsoft.FSharp.Core;

namespace SeqNets.CSharp;

/// <summary>
/// A vector expression of a cell's equations, one column vector per batch row: the input x_t, a part
/// of the previous state, a parameter vector, or a composition of them with <c>+</c>, <c>-</c>,
/// <c>*</c> (the Hadamard product ⊙; <see cref="CellMatrix"/> <c>*</c> expression is the matrix–vector
/// product) and σ, tanh, ReLU. Sizes are checked when the cell is built
/// (<see cref="RecurrentCell.FromEquations"/>), naming the sub-expression and both shapes.
/// </summary>
public sealed class CellExpression
{
    internal CellExpression(Expr core) => Core = core;

    internal Expr Core { get; }

    /// <summary>x_t, the step's input (I entries).</summary>
    public static CellExpression Input { get; } = new(Expr.Input);

    /// <summary>The part of the previous state s_(t−1) called <paramref name="part"/>, e.g. <c>Previous("h")</c> is h_(t−1).</summary>
    /// <param name="part">A state part declared with <see cref="CellEquations.WithState"/>.</param>
    /// <returns>The expression.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="part"/> is null.</exception>
    public static CellExpression Previous(string part)
    {
        Guard.NotNull(part, nameof(part));
        return new(ExprModule.Previous(part));
    }

    /// <summary>The whole vector block of θ called <paramref name="block"/> (a bias, or a vector such as IndRNN's u).</summary>
    /// <param name="block">A block of the cell's layout with one dimension.</param>
    /// <returns>The expression.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="block"/> is null.</exception>
    public static CellExpression Parameter(string block)
    {
        Guard.NotNull(block, nameof(block));
        return new(ExprModule.Vector(block));
    }

    /// <summary>Entries <paramref name="start"/> .. <paramref name="start"/> + <paramref name="count"/> − 1 of a vector block, written as <paramref name="symbol"/>.</summary>
    /// <param name="block">A block of the cell's layout with one dimension.</param>
    /// <param name="start">The first entry.</param>
    /// <param name="count">The number of entries.</param>
    /// <param name="symbol">How the rows are written, e.g. <c>b_ir</c> (an underscore starts a subscript).</param>
    /// <returns>The expression.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="block"/> or <paramref name="symbol"/> is null.</exception>
    public static CellExpression Parameter(string block, int start, int count, string symbol)
    {
        Guard.NotNull(block, nameof(block));
        Guard.NotNull(symbol, nameof(symbol));
        return new(ExprModule.Parameter(Block.Rows(block, start, count, symbol)));
    }

    /// <summary>A scalar constant; it broadcasts against any vector.</summary>
    /// <param name="value">The constant, finite.</param>
    /// <returns>The expression.</returns>
    public static CellExpression Constant(double value) => new(ExprModule.Constant(value));

    /// <summary>σ(e), the logistic function, elementwise.</summary>
    /// <param name="e">The argument.</param>
    /// <returns>The expression.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="e"/> is null.</exception>
    public static CellExpression Sigmoid(CellExpression e) => new(ExprModule.Sigmoid(Of(e, nameof(e))));

    /// <summary>tanh(e), the hyperbolic tangent, elementwise.</summary>
    /// <param name="e">The argument.</param>
    /// <returns>The expression.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="e"/> is null.</exception>
    public static CellExpression Tanh(CellExpression e) => new(ExprModule.Tanh(Of(e, nameof(e))));

    /// <summary>ReLU(e) = max(e, 0), elementwise; its derivative is 0 at 0, as libtorch's autograd's.</summary>
    /// <param name="e">The argument.</param>
    /// <returns>The expression.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="e"/> is null.</exception>
    public static CellExpression Relu(CellExpression e) => new(ExprModule.Relu(Of(e, nameof(e))));

    /// <summary>
    /// An elementwise function of your own. With <paramref name="derivative"/> the rules differentiate
    /// it; without, building the cell says it is not differentiable by the rules.
    /// </summary>
    /// <param name="name">How the function is written.</param>
    /// <param name="forward">φ(a), elementwise.</param>
    /// <param name="derivative">φ'(a), elementwise, or null.</param>
    /// <param name="e">The argument.</param>
    /// <returns>The expression.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/>, <paramref name="forward"/> or <paramref name="e"/> is null.</exception>
    public static CellExpression Function(string name, Func<Tensor, Tensor> forward, Func<Tensor, Tensor>? derivative, CellExpression e)
    {
        Guard.NotNull(name, nameof(name));
        Guard.NotNull(forward, nameof(forward));
        var d = derivative is null
            ? FSharpOption<FSharpFunc<Tensor, Tensor>>.None
            : FSharpOption<FSharpFunc<Tensor, Tensor>>.Some(FuncConvert.FromFunc(derivative));
        var f = new ElementwiseFunction(name, FuncConvert.FromFunc(forward), d);
        return new(ExprModule.Map(f, Of(e, nameof(e))));
    }

    /// <summary>[e₁; e₂; …], the vectors stacked.</summary>
    /// <param name="parts">The vectors, at least one.</param>
    /// <returns>The expression.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="parts"/> or one of them is null.</exception>
    public static CellExpression Concat(params CellExpression[] parts)
    {
        Guard.NotNull(parts, nameof(parts));
        return new(ExprModule.Concat(FSharp.ListOf(parts.Select((p, k) => Of(p, $"parts[{k}]")))));
    }

    /// <summary>Entries <paramref name="start"/> .. <paramref name="start"/> + <paramref name="count"/> − 1 of this vector.</summary>
    /// <param name="start">The first entry.</param>
    /// <param name="count">The number of entries.</param>
    /// <returns>The expression.</returns>
    public CellExpression Slice(int start, int count) => new(ExprModule.Slice(start, count, Core));

    /// <summary>This expression as a named intermediate (let z = …): evaluated once and written z_t.</summary>
    /// <param name="name">The name, e.g. <c>z</c> or <c>h~</c> (a trailing ~ is a tilde accent).</param>
    /// <returns>The expression.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    public CellExpression Named(string name)
    {
        Guard.NotNull(name, nameof(name));
        return new(ExprModule.Named(name, Core));
    }

    /// <summary>a + b.</summary>
    /// <param name="a">The left term.</param>
    /// <param name="b">The right term.</param>
    /// <returns>The sum.</returns>
    public static CellExpression operator +(CellExpression a, CellExpression b) => new(Of(a, nameof(a)) + Of(b, nameof(b)));

    /// <summary>a + c, c broadcast.</summary>
    /// <param name="a">The vector.</param>
    /// <param name="c">The constant.</param>
    /// <returns>The sum.</returns>
    public static CellExpression operator +(CellExpression a, double c) => new(Of(a, nameof(a)) + c);

    /// <summary>c + a, c broadcast.</summary>
    /// <param name="c">The constant.</param>
    /// <param name="a">The vector.</param>
    /// <returns>The sum.</returns>
    public static CellExpression operator +(double c, CellExpression a) => new(c + Of(a, nameof(a)));

    /// <summary>a − b.</summary>
    /// <param name="a">The left term.</param>
    /// <param name="b">The term subtracted.</param>
    /// <returns>The difference.</returns>
    public static CellExpression operator -(CellExpression a, CellExpression b) => new(Of(a, nameof(a)) - Of(b, nameof(b)));

    /// <summary>a − c, c broadcast.</summary>
    /// <param name="a">The vector.</param>
    /// <param name="c">The constant.</param>
    /// <returns>The difference.</returns>
    public static CellExpression operator -(CellExpression a, double c) => new(Of(a, nameof(a)) - c);

    /// <summary>c − a, c broadcast (as in 1 − z).</summary>
    /// <param name="c">The constant.</param>
    /// <param name="a">The vector.</param>
    /// <returns>The difference.</returns>
    public static CellExpression operator -(double c, CellExpression a) => new(c - Of(a, nameof(a)));

    /// <summary>−a.</summary>
    /// <param name="a">The vector.</param>
    /// <returns>Its negation.</returns>
    public static CellExpression operator -(CellExpression a) => new(-Of(a, nameof(a)));

    /// <summary>a ⊙ b, the Hadamard (elementwise) product.</summary>
    /// <param name="a">The left factor.</param>
    /// <param name="b">The right factor.</param>
    /// <returns>The product.</returns>
    public static CellExpression operator *(CellExpression a, CellExpression b) => new(Of(a, nameof(a)) * Of(b, nameof(b)));

    /// <summary>c a, a scaled.</summary>
    /// <param name="c">The constant.</param>
    /// <param name="a">The vector.</param>
    /// <returns>The product.</returns>
    public static CellExpression operator *(double c, CellExpression a) => new(c * Of(a, nameof(a)));

    /// <summary>a c, a scaled.</summary>
    /// <param name="a">The vector.</param>
    /// <param name="c">The constant.</param>
    /// <returns>The product.</returns>
    public static CellExpression operator *(CellExpression a, double c) => new(Of(a, nameof(a)) * c);

    /// <summary>The expression in Unicode, e.g. <c>σ(W_z x_t + U_z h_(t−1) + b_z)</c>.</summary>
    /// <returns>The expression written out.</returns>
    public override string ToString() => Core.ToString();

    internal static Expr Of(CellExpression e, string name)
    {
        Guard.NotNull(e, name);
        return e.Core;
    }
}

/// <summary>
/// A matrix block of θ, or a range of its rows, in a cell's equations: <c>W * v</c> is the
/// matrix–vector product, and a three-way block gives the lecture's multiplicative module
/// (<see cref="Bilinear"/>).
/// </summary>
public sealed class CellMatrix
{
    private CellMatrix(BlockRef core) => Core = core;

    internal BlockRef Core { get; }

    /// <summary>The whole block called <paramref name="block"/>, written as its name.</summary>
    /// <param name="block">A block of the cell's layout with two dimensions (three for <see cref="Bilinear"/>).</param>
    /// <returns>The matrix.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="block"/> is null.</exception>
    public static CellMatrix Block(string block)
    {
        Guard.NotNull(block, nameof(block));
        return new(global::SeqNets.Block.Named(block));
    }

    /// <summary>Rows <paramref name="start"/> .. <paramref name="start"/> + <paramref name="count"/> − 1 of a block, written as <paramref name="symbol"/> (e.g. the r rows of <c>weight_hh</c> written <c>U_r</c>).</summary>
    /// <param name="block">A block of the cell's layout.</param>
    /// <param name="start">The first row.</param>
    /// <param name="count">The number of rows.</param>
    /// <param name="symbol">How the rows are written (an underscore starts a subscript).</param>
    /// <returns>The matrix.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="block"/> or <paramref name="symbol"/> is null.</exception>
    public static CellMatrix Rows(string block, int start, int count, string symbol)
    {
        Guard.NotNull(block, nameof(block));
        Guard.NotNull(symbol, nameof(symbol));
        return new(global::SeqNets.Block.Rows(block, start, count, symbol));
    }

    /// <summary>W v, the matrix–vector product.</summary>
    /// <param name="w">The matrix.</param>
    /// <param name="v">The vector.</param>
    /// <returns>The product.</returns>
    public static CellExpression operator *(CellMatrix w, CellExpression v)
    {
        Guard.NotNull(w, nameof(w));
        return new(w.Core * CellExpression.Of(v, nameof(v)));
    }

    /// <summary>The multiplicative module U(z) v, (U(z) v)_i = Σ_jk U_ijk v_j z_k, for this three-way block U [m; n; d].</summary>
    /// <param name="v">The vector multiplied, n entries.</param>
    /// <param name="z">The context, d entries.</param>
    /// <returns>The expression.</returns>
    public CellExpression Bilinear(CellExpression v, CellExpression z) =>
        new(ExprModule.Bilinear(Core, CellExpression.Of(v, nameof(v)), CellExpression.Of(z, nameof(z))));

    /// <summary>Shows how the matrix is written in equations.</summary>
    /// <returns>The symbol, e.g. <c>U_r</c>.</returns>
    public override string ToString() => Core.Symbol;
}

/// <summary>
/// A recurrent cell written as equations: its input size, its state parts (the first is the output
/// h), its parameter layout and the new value of every state part. Immutable:
/// <see cref="WithState"/> and <see cref="WithUpdate"/> return new equations.
/// </summary>
public sealed class CellEquations
{
    private readonly IReadOnlyList<(string Name, int Size)> _state;
    private readonly IReadOnlyList<(string Part, CellExpression Value)> _updates;

    /// <summary>Equations with no state parts yet.</summary>
    /// <param name="name">A short name for messages and display, e.g. <c>mgu</c>.</param>
    /// <param name="inputSize">I, the width of each input.</param>
    /// <param name="layout">The named blocks of θ the expressions use.</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> or <paramref name="layout"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="inputSize"/> is not positive.</exception>
    public CellEquations(string name, int inputSize, CellLayout layout)
        : this(name, inputSize, layout, Array.Empty<(string, int)>(), Array.Empty<(string, CellExpression)>())
    {
        Guard.NotNull(name, nameof(name));
        Guard.NotNull(layout, nameof(layout));
        Guard.Positive(inputSize, nameof(inputSize));
    }

    private CellEquations(string name, int inputSize, CellLayout layout,
                          IReadOnlyList<(string, int)> state, IReadOnlyList<(string, CellExpression)> updates)
    {
        Name = name;
        InputSize = inputSize;
        Layout = layout;
        _state = state;
        _updates = updates;
    }

    /// <summary>The cell's short name, for messages.</summary>
    public string Name { get; }

    /// <summary>I, the width of each input.</summary>
    public int InputSize { get; }

    /// <summary>The named blocks of θ.</summary>
    public CellLayout Layout { get; }

    /// <summary>The names of the state parts, in order.</summary>
    public IReadOnlyList<string> StateParts => _state.Select(p => p.Name).ToList();

    /// <summary>These equations with one more state part, after the others.</summary>
    /// <param name="part">The part's name, e.g. <c>h</c> or <c>c</c>.</param>
    /// <param name="size">Its width.</param>
    /// <returns>New equations.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="part"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="size"/> is not positive.</exception>
    public CellEquations WithState(string part, int size)
    {
        Guard.NotNull(part, nameof(part));
        Guard.Positive(size, nameof(size));
        return new(Name, InputSize, Layout, _state.Append((part, size)).ToList(), _updates);
    }

    /// <summary>These equations with the new value of a state part, part_t = <paramref name="value"/>.</summary>
    /// <param name="part">A state part.</param>
    /// <param name="value">Its new value.</param>
    /// <returns>New equations.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="part"/> or <paramref name="value"/> is null.</exception>
    public CellEquations WithUpdate(string part, CellExpression value)
    {
        Guard.NotNull(part, nameof(part));
        Guard.NotNull(value, nameof(value));
        return new(Name, InputSize, Layout, _state, _updates.Append((part, value)).ToList());
    }

    /// <summary>c_t and b_t derived by rules from these equations.</summary>
    /// <returns>The derivation.</returns>
    /// <exception cref="ArgumentException">The equations use an undeclared block, have mismatched sizes, miss an update, or use a function the rules cannot differentiate.</exception>
    public CellDerivation Derive()
    {
        SeqNetsEngine.EnsureLoaded();
        return new CellDerivation(Equations.Derive(ToCore()));
    }

    internal global::SeqNets.CellEquations ToCore() =>
        Equations.Create(Name, InputSize,
            FSharp.ListOf(_state.Select(p => Tuple.Create(p.Name, p.Size))),
            Layout.Core,
            FSharp.ListOf(_updates.Select(u => Tuple.Create(u.Part, u.Value.Core))));

    /// <summary>The equations in Unicode, one per state part.</summary>
    /// <returns>The equations written out.</returns>
    public override string ToString() => string.Join("; ", _updates.Select(u => $"{u.Part}_t = {u.Value}"));
}

/// <summary>What the rules derived from a cell's equations: c_t and b_t, written out on demand, and warnings.</summary>
public sealed class CellDerivation
{
    internal CellDerivation(Derivation core) => Core = core;

    internal Derivation Core { get; }

    /// <summary>Things that are legal but probably not meant, such as a state that never feeds back (c_t ≡ 0) or an unused block.</summary>
    public IReadOnlyList<string> Warnings => Core.Warnings.ToList();

    /// <summary>The equations, c_t in blocks, b_t as a differential and the identity for t = 1, 2, 3, as Unicode text.</summary>
    /// <returns>The derivation written out.</returns>
    public string ToText() => DerivationModule.Text(Core);

    /// <summary>The same in LaTeX.</summary>
    /// <returns>LaTeX source, one aligned block per part.</returns>
    public string ToLatex() => DerivationModule.Latex(Core);

    /// <summary>The same as a Markdown section with LaTeX math, headed <paramref name="title"/>.</summary>
    /// <param name="title">The section's heading.</param>
    /// <returns>Markdown.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="title"/> is null.</exception>
    public string ToMarkdown(string title)
    {
        Guard.NotNull(title, nameof(title));
        return DerivationModule.Markdown(title, "", FSharp.ListOf(Array.Empty<Tuple<string, int>>()), Core);
    }

    /// <summary>Shows the cell's name and how many warnings the derivation has.</summary>
    /// <returns>The name and the number of warnings.</returns>
    public override string ToString() => $"derivation of {Core.Name} ({Core.Warnings.Length} warnings)";
}
