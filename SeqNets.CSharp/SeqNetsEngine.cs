namespace SeqNets.CSharp;

/// <summary>
/// The native tensor engine (libtorch through TorchSharp) behind every SeqNets call.
/// </summary>
public static class SeqNetsEngine
{
    /// <summary>
    /// Makes sure libtorch is loadable and loaded, fixing a known libstdc++ version mismatch on
    /// older Linux systems; it does its work once per process. Call it before touching TorchSharp
    /// directly, because TorchSharp remembers a failed initialisation for the life of the process.
    /// </summary>
    /// <exception cref="EngineLoadException">libtorch cannot be loaded; the message names the real cause.</exception>
    public static void EnsureLoaded() => Native.ensure();
}
