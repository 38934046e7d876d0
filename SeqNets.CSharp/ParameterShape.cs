using System.Collections.ObjectModel;

namespace SeqNets.CSharp;

/// <summary>
/// One named block of a cell's flat parameter vector θ, such as <c>weight_ih</c> with shape [H; I].
/// </summary>
public sealed class ParameterShape
{
    /// <summary>Creates a block called <paramref name="name"/> with the given dimensions (none for a scalar).</summary>
    /// <param name="name">The block's name, unique within its layout.</param>
    /// <param name="shape">The block's dimensions, each positive.</param>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> or <paramref name="shape"/> is null.</exception>
    /// <exception cref="ArgumentException">The name is empty or a dimension is not positive.</exception>
    public ParameterShape(string name, params long[] shape)
    {
        Guard.NotNull(name, nameof(name));
        Guard.NotNull(shape, nameof(shape));
        if (name.Length == 0)
            throw new ArgumentException("name: expected a non-empty block name, but got an empty string.", nameof(name));
        for (var k = 0; k < shape.Length; k++)
            if (shape[k] <= 0)
                throw new ArgumentException(
                    $"shape: expected positive dimensions, but dimension {k} of block '{name}' is {shape[k]}.", nameof(shape));
        Name = name;
        Shape = Array.AsReadOnly((long[])shape.Clone());
    }

    /// <summary>The block's name, e.g. <c>weight_hh</c>.</summary>
    public string Name { get; }

    /// <summary>The block's dimensions, e.g. [4H; H] for an LSTM's <c>weight_hh</c>.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>The number of scalars in the block, the product of its dimensions.</summary>
    public long Count => Shape.Aggregate(1L, (p, d) => p * d);

    /// <summary>Shows the block as <c>name [d1; d2]</c>.</summary>
    /// <returns>The block's name and shape.</returns>
    public override string ToString() => $"{Name} [{string.Join("; ", Shape)}]";
}

/// <summary>
/// The named blocks of a cell's flat parameter vector θ, in order; it turns θ into named views.
/// </summary>
public sealed class CellLayout
{
    /// <summary>A layout of the given blocks, laid out one after another in θ.</summary>
    /// <param name="blocks">The blocks in order; their names must be distinct.</param>
    /// <exception cref="ArgumentNullException"><paramref name="blocks"/> or one of its entries is null.</exception>
    /// <exception cref="ArgumentException">There are no blocks or a name repeats.</exception>
    public CellLayout(IEnumerable<ParameterShape> blocks)
    {
        SeqNetsEngine.EnsureLoaded();
        Guard.NotNull(blocks, nameof(blocks));
        var list = blocks.ToList();
        for (var k = 0; k < list.Count; k++)
            if (list[k] is null)
                throw new ArgumentNullException(nameof(blocks), $"blocks: expected a block at index {k}, but got null.");
        if (list.Count == 0)
            throw new ArgumentException("blocks: expected at least one parameter block, but got none.", nameof(blocks));
        var repeated = list.GroupBy(b => b.Name).FirstOrDefault(g => g.Count() > 1);
        if (repeated is not null)
            throw new ArgumentException($"blocks: expected distinct block names, but '{repeated.Key}' repeats.", nameof(blocks));
        Blocks = new ReadOnlyCollection<ParameterShape>(list);
        Core = new ParameterLayout(FSharp.ListOf(list.Select(b =>
            Tuple.Create(b.Name, FSharp.ListOf(b.Shape)))));
    }

    /// <summary>A layout of the given blocks, laid out one after another in θ.</summary>
    /// <param name="blocks">The blocks in order; their names must be distinct.</param>
    /// <exception cref="ArgumentNullException"><paramref name="blocks"/> or one of its entries is null.</exception>
    /// <exception cref="ArgumentException">There are no blocks or a name repeats.</exception>
    public CellLayout(params ParameterShape[] blocks)
        : this((IEnumerable<ParameterShape>)blocks)
    {
    }

    internal CellLayout(ParameterLayout core)
    {
        Core = core;
        Blocks = core.Blocks.Select(b => new ParameterShape(b.Name, b.Shape)).ToList().AsReadOnly();
    }

    internal ParameterLayout Core { get; }

    /// <summary>The blocks in the order they occupy θ.</summary>
    public IReadOnlyList<ParameterShape> Blocks { get; }

    /// <summary>The total number of parameters P, the length of θ.</summary>
    public long Count => Core.Count;

    /// <summary>
    /// The view of θ holding the block called <paramref name="name"/>: θ [P] gives the block's shape,
    /// θ [R; P] (one copy of the parameters per row) gives [R; shape]. The view shares θ's memory.
    /// </summary>
    /// <param name="theta">The flat parameters, [P] or [R; P].</param>
    /// <param name="name">The block's name.</param>
    /// <returns>A view of θ; writing to it writes to θ.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="theta"/> or <paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException">No block has that name, or θ does not have P entries in its last dimension.</exception>
    public Tensor View(Tensor theta, string name)
    {
        Guard.NotNull(theta, nameof(theta));
        Guard.NotNull(name, nameof(name));
        var dims = theta.dim();
        if ((dims != 1 && dims != 2) || theta.shape[dims - 1] != Count)
            throw new ArgumentException(
                $"theta: expected a [P] or [R; P] tensor with P = {Count}, but got shape {Guard.ShapeText(theta)}.", nameof(theta));
        return Core.View(theta, name);
    }

    /// <summary>Shows P and every block with its shape.</summary>
    /// <returns>A one-line description of the layout.</returns>
    public override string ToString() => $"P = {Count}: {string.Join(", ", Blocks)}";
}
