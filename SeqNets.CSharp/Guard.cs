namespace SeqNets.CSharp;

/// <summary>
/// Argument checks at the C# boundary. Every failure names the C# argument, what was expected and
/// what arrived, in the style of the core's checks.
/// </summary>
internal static class Guard
{
    public static void NotNull(object? value, string name)
    {
        if (value is null)
            throw new ArgumentNullException(name, $"{name}: expected a value, but got null.");
    }

    public static string ShapeText(Tensor t) => "[" + string.Join("; ", t.shape) + "]";

    public static void Positive(int value, string name)
    {
        if (value <= 0)
            throw new ArgumentException($"{name}: expected a positive size, but got {value}.", name);
    }

    public static void Defined<TEnum>(TEnum value, string name) where TEnum : struct, Enum
    {
        if (!Enum.IsDefined(value))
            throw new ArgumentOutOfRangeException(name, value,
                $"{name}: expected one of {string.Join(", ", Enum.GetNames<TEnum>())}, but got {value}.");
    }

    public static void DType(Tensor t, torch.ScalarType dtype, string name, string legend)
    {
        if (t.dtype != dtype)
            throw new ArgumentException(
                $"{name}: expected a {dtype} {legend} tensor to match the parameters, but got dtype {t.dtype}.", name);
    }

    public static void Finite(Tensor t, string name)
    {
        using var _ = torch.no_grad();
        using var ok = t.isfinite().all();
        if (!ok.item<bool>())
        {
            using var nan = t.isnan().sum();
            using var inf = t.isinf().sum();
            throw new ArgumentException(
                $"{name}: expected finite values, but found {nan.item<long>()} NaN and {inf.item<long>()} infinite entries.", name);
        }
    }

    /// <summary>A sequence xs [T; B; I] with T, B ≥ 1, I = the cell's input size and the parameters' dtype.</summary>
    public static void Sequence(Tensor? inputs, Cell cell, torch.ScalarType dtype, string name)
    {
        NotNull(inputs, name);
        if (inputs!.dim() != 3)
            throw new ArgumentException(
                $"{name}: expected a [T; B; I] tensor (3 dimensions), but got shape {ShapeText(inputs)}.", name);
        if (inputs.shape[0] == 0)
            throw new ArgumentException(
                $"{name}: expected at least one time step (T >= 1), but got T = 0 (shape {ShapeText(inputs)}).", name);
        if (inputs.shape[1] == 0)
            throw new ArgumentException(
                $"{name}: expected at least one batch row (B >= 1), but got shape {ShapeText(inputs)}.", name);
        if (inputs.shape[2] != cell.InputSize)
            throw new ArgumentException(
                $"{name}: expected a [T; B; I] tensor with I = {cell.InputSize}, but got shape {ShapeText(inputs)}.", name);
        DType(inputs, dtype, name, "[T; B; I]");
        Finite(inputs, name);
    }

    /// <summary>One step's input x [B; I].</summary>
    public static void StepInput(Tensor? input, Cell cell, torch.ScalarType dtype, string name)
    {
        NotNull(input, name);
        if (input!.dim() != 2 || input.shape[1] != cell.InputSize || input.shape[0] == 0)
            throw new ArgumentException(
                $"{name}: expected a [B; I] tensor with B >= 1 and I = {cell.InputSize}, but got shape {ShapeText(input)}.", name);
        DType(input, dtype, name, "[B; I]");
        Finite(input, name);
    }

    /// <summary>s_0 for a batch of B rows: zeros when null, else [S] (shared) or [B; S], checked, as [B; S].</summary>
    public static Tensor State(Tensor? state, Cell cell, torch.ScalarType dtype, long batch, string name)
    {
        var S = (long)cell.StateSize;
        if (state is null)
            return torch.zeros(new[] { batch, S }, dtype: dtype);
        if (!(state.dim() == 1 && state.shape[0] == S) && !(state.dim() == 2 && state.shape[0] == batch && state.shape[1] == S))
            throw new ArgumentException(
                $"{name}: expected a [S] or [B; S] tensor with B = {batch} and S = {S}, but got shape {ShapeText(state)}.", name);
        DType(state, dtype, name, "[B; S]");
        Finite(state, name);
        return state.dim() == 1 ? state.unsqueeze(0).expand(batch, S) : state;
    }
}
