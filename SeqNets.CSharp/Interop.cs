global using TorchSharp;
global using Tensor = TorchSharp.torch.Tensor;
using Microsoft.FSharp.Collections;

namespace SeqNets.CSharp;

/// <summary>Translations onto the F# core's collection and function types; never public.</summary>
internal static class FSharp
{
    public static FSharpList<T> ListOf<T>(IEnumerable<T> items) => ListModule.OfSeq(items);
}
