using System.Reflection;
using Microsoft.FSharp.Core;
using SeqNets.CSharp;
using Xunit;

namespace SeqNets.CSharp.Tests;

/// <summary>
/// Walks the public surface of SeqNets.CSharp by reflection: every public type, its base type and
/// interfaces, and every public or protected member with its parameter, return, property, field and
/// event types, generic arguments included. The surface must look like C#: no F# types, no F#
/// tuples (System.Tuple), and no type from the F# core leaking through.
/// </summary>
public class SurfaceTests
{
    private static readonly Assembly Facade = typeof(RecurrentNetwork).Assembly;

    /// <summary>Why a type may not appear in a C# signature, or null when it may.</summary>
    internal static string? Objection(Type type)
    {
        if (type.IsGenericParameter) return null;
        var ns = type.Namespace ?? "";
        var name = type.Name;
        if (ns.StartsWith("Microsoft.FSharp", StringComparison.Ordinal) || name.Contains("FSharp", StringComparison.Ordinal))
            return "is an F# type";
        if (type.IsGenericType && type.GetGenericTypeDefinition().FullName!.StartsWith("System.Tuple`", StringComparison.Ordinal))
            return "is an F# tuple (System.Tuple)";
        if (type.IsGenericType && type.GetGenericTypeDefinition().FullName!.StartsWith("System.ValueTuple`", StringComparison.Ordinal))
            return "is a tuple; the surface uses small named classes instead";
        if (type.Assembly != Facade && ns.StartsWith("SeqNets", StringComparison.Ordinal))
            return "is a type of the F# core leaking through the facade";
        return null;
    }

    /// <summary>Every type mentioned by <paramref name="type"/>: itself, its element type and its generic arguments.</summary>
    internal static IEnumerable<Type> Mentioned(Type type)
    {
        yield return type;
        if (type.HasElementType)
            foreach (var t in Mentioned(type.GetElementType()!)) yield return t;
        if (type.IsGenericType)
            foreach (var arg in type.GetGenericArguments())
                foreach (var t in Mentioned(arg)) yield return t;
    }

    /// <summary>Every offence in a signature type, as "where: type why".</summary>
    internal static IEnumerable<string> Offences(string where, Type type) =>
        Mentioned(type)
            .Select(t => (t, why: Objection(t)))
            .Where(p => p.why is not null)
            .Select(p => $"{where}: {p.t} {p.why}");

    private static bool Visible(MethodBase? m) => m is not null && (m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly);

    /// <summary>Every offence on the public surface of the given types.</summary>
    internal static List<string> SurfaceOffences(IEnumerable<Type> types)
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance
                                 | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var offences = new List<string>();
        foreach (var type in types)
        {
            offences.AddRange(Offences(type.FullName!, type));
            if (type.BaseType is not null) offences.AddRange(Offences($"{type} base", type.BaseType));
            foreach (var i in type.GetInterfaces()) offences.AddRange(Offences($"{type} interface", i));
            foreach (var m in type.GetMethods(all).Where(Visible))
            {
                offences.AddRange(Offences($"{type}.{m.Name} returns", m.ReturnType));
                foreach (var p in m.GetParameters()) offences.AddRange(Offences($"{type}.{m.Name}({p.Name})", p.ParameterType));
                foreach (var g in m.GetGenericArguments().SelectMany(g => g.GetGenericParameterConstraints()))
                    offences.AddRange(Offences($"{type}.{m.Name} constraint", g));
            }
            foreach (var c in type.GetConstructors(all).Where(Visible))
                foreach (var p in c.GetParameters()) offences.AddRange(Offences($"{type}..ctor({p.Name})", p.ParameterType));
            foreach (var p in type.GetProperties(all).Where(p => Visible(p.GetMethod) || Visible(p.SetMethod)))
                offences.AddRange(Offences($"{type}.{p.Name}", p.PropertyType));
            foreach (var f in type.GetFields(all).Where(f => f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly))
                offences.AddRange(Offences($"{type}.{f.Name}", f.FieldType));
            foreach (var e in type.GetEvents(all).Where(e => Visible(e.AddMethod)))
                offences.AddRange(Offences($"{type}.{e.Name}", e.EventHandlerType!));
        }
        return offences;
    }

    [Fact]
    public void The_public_surface_mentions_no_FSharp_type()
    {
        var types = Facade.GetExportedTypes();
        Assert.Contains(typeof(RecurrentNetwork), types);
        // The character-model and PyTorch-interop surfaces are walked too.
        foreach (var t in new[] { typeof(CharCorpus), typeof(CharModelOptions), typeof(TrainingOptions), typeof(CharLanguageModel),
                     typeof(TrainingProgress), typeof(TrainingSummary), typeof(SeqNetsCheckpointException), typeof(SeqNetsStateDictException), typeof(CellKind),
                     typeof(BpttStrategy), typeof(OptimizerKind), typeof(LearningRateSchedule), typeof(ClippingKind), typeof(ExecutionPath),
                     typeof(SequenceNetwork), typeof(SequenceNetworkOptions), typeof(InputLayer), typeof(RecurrentLayer), typeof(Head),
                     typeof(DecoderOptions), typeof(SequenceBatch), typeof(TrainingData), typeof(SequencePrediction), typeof(SequenceMetrics),
                     typeof(SeqNetsTasks), typeof(TaskRunOptions), typeof(TaskResult), typeof(TaskResultRow), typeof(TaskProgress),
                     typeof(Seq2SeqModel), typeof(Seq2SeqModelOptions), typeof(TranslationPair), typeof(Translation), typeof(BeamHypothesis),
                     typeof(AttentionStyle), typeof(AttentionScore), typeof(LengthNormalization) })
            Assert.Contains(t, types);
        Assert.True(types.Length >= 10, $"expected the whole facade, but found only {types.Length} public types");
        var offences = SurfaceOffences(types);
        Assert.True(offences.Count == 0, "The C# surface must look like C#:\n" + string.Join("\n", offences));
    }

    [Fact]
    public void The_checker_flags_FSharp_types_where_they_hide()
    {
        Assert.NotNull(Objection(typeof(FSharpFunc<int, int>)));
        Assert.NotEmpty(Offences("direct", typeof(FSharpFunc<int, int>)));
        Assert.NotEmpty(Offences("generic argument", typeof(IReadOnlyList<FSharpOption<string>>)));
        Assert.NotEmpty(Offences("array element", typeof(Microsoft.FSharp.Collections.FSharpList<int>[])));
        Assert.NotEmpty(Offences("unit", typeof(Func<Unit>)));
        Assert.NotEmpty(Offences("F# tuple", typeof(Tuple<int, string>)));
        Assert.NotEmpty(Offences("core type", typeof(SeqNets.Cell)));
        Assert.NotEmpty(Offences("core checkpoint exception", typeof(SeqNets.CheckpointException)));
        Assert.NotEmpty(Offences("core state dict exception", typeof(SeqNets.StateDictException)));
        Assert.NotEmpty(Offences("core task result", typeof(Task<SeqNets.StepReport>)));
        Assert.Empty(Offences("C# type", typeof(Func<TorchSharp.torch.Tensor, IReadOnlyList<long>>)));
        // And on a whole type: an F# record's surface is full of F# types.
        Assert.NotEmpty(SurfaceOffences(new[] { typeof(SeqNets.Cell) }));
    }

    [Fact]
    public void Public_members_are_PascalCase()
    {
        const BindingFlags declared = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var lower = Facade.GetExportedTypes()
            .SelectMany(t => t.GetMembers(declared).Select(m => (t, m)))
            .Where(p => p.m is not ConstructorInfo && !(p.m is MethodInfo mi && mi.IsSpecialName) && !(p.m is FieldInfo fi && fi.IsSpecialName))
            .Where(p => !p.m.Name.StartsWith('<')) // compiler-generated record members
            .Where(p => !char.IsUpper(p.m.Name[0]))
            .Select(p => $"{p.t.Name}.{p.m.Name}")
            .ToList();
        Assert.True(lower.Count == 0, "Not PascalCase: " + string.Join(", ", lower));
        var enumMembers = Facade.GetExportedTypes().Where(t => t.IsEnum).SelectMany(Enum.GetNames);
        Assert.All(enumMembers, n => Assert.True(char.IsUpper(n[0]), n));
    }
}
