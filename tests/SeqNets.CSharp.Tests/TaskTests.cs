using SeqNets.CSharp;
using Xunit;

namespace SeqNets.CSharp.Tests;

/// <summary>A progress sink for task runs that records every report as it is made.</summary>
internal sealed class TaskRecorder(Action<TaskProgress>? onReport = null) : IProgress<TaskProgress>
{
    public List<TaskProgress> Reports { get; } = new();

    public void Report(TaskProgress value)
    {
        Reports.Add(value);
        onReport?.Invoke(value);
    }
}

/// <summary>The generated tasks from C#, at small sizes: a run returns its table, progress and cancellation work, bad names are named.</summary>
public class TaskTests
{
    private static readonly TaskRunOptions Quick = TaskRunOptions.Default.WithSteps(20).WithHiddenSize(8).WithBatch(8).WithSeed(3);

    [Fact]
    public void The_tasks_are_listed_in_the_order_of_the_lectures_shapes()
    {
        Assert.Equal(new[] { "brackets", "depth", "spell", "later" }, SeqNetsTasks.Names);
    }

    [Fact]
    public void A_task_run_returns_its_table_beside_the_exact_counter()
    {
        var progress = new TaskRecorder();
        var result = SeqNetsTasks.Run("depth", Quick, progress);
        Assert.Equal("depth", result.Name);
        Assert.Equal("synced many-to-many", result.Shape);
        Assert.Equal(20, result.Steps);
        Assert.Equal(3UL, result.Seed);
        Assert.True(result.Elapsed > TimeSpan.Zero);
        Assert.False(string.IsNullOrWhiteSpace(result.Claim));
        // Two data sets, each with the counter and the network's two measures.
        Assert.Equal(6, result.Rows.Count);
        Assert.All(result.Rows, r => Assert.InRange(r.Value, 0.0, 1.0));
        Assert.All(result.Rows.Where(r => r.Model.StartsWith("a counter", StringComparison.Ordinal)), r => Assert.Equal(1.0, r.Value));
        Assert.Contains(result.Rows, r => r.Model.Contains("lstm", StringComparison.Ordinal) && r.Measure == "accuracy per step");
        // 20 steps with H = 8 are far too few to tag 95% of the steps: the verdict is measured, not assumed.
        Assert.False(result.Holds);
        Assert.Equal(Enumerable.Range(1, 20), progress.Reports.Select(p => p.Step));
        Assert.All(progress.Reports, p => Assert.True(double.IsFinite(p.Loss) && p.Loss > 0 && p.TotalSteps == 20));
        var markdown = result.ToMarkdown();
        Assert.StartsWith("| task | model | data | measure | value |", markdown);
        Assert.Contains("| depth (synced many-to-many) | a counter (no learning) |", markdown);
        Assert.Contains("does NOT hold.", markdown);
    }

    [Fact]
    public void The_same_options_give_the_same_table()
    {
        var options = Quick.WithSteps(5);
        var a = SeqNetsTasks.Run("brackets", options);
        var b = SeqNetsTasks.Run("brackets", options);
        Assert.Equal(a.Rows.Select(r => (r.Model, r.Data, r.Measure, r.Value)), b.Rows.Select(r => (r.Model, r.Data, r.Measure, r.Value)));
    }

    [Fact]
    public async Task A_cancelled_run_ends_cancelled_after_the_current_step()
    {
        using var cts = new CancellationTokenSource();
        var progress = new TaskRecorder(p => { if (p.Step == 2) cts.Cancel(); });
        var run = SeqNetsTasks.RunAsync("later", Quick, progress, cts.Token);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        Assert.True(run.IsCanceled);
        Assert.Equal(2, progress.Reports.Count);
        Assert.Throws<OperationCanceledException>(() => SeqNetsTasks.Run("later", Quick, cancellationToken: new CancellationToken(canceled: true)));
    }

    [Fact]
    public void Bad_names_and_options_are_named()
    {
        var e = Assert.Throws<ArgumentException>(() => SeqNetsTasks.Run("parity", Quick));
        Assert.Equal("name", e.ParamName);
        Assert.Contains("brackets, depth, spell, later", e.Message);
        Assert.Equal("Steps", Assert.ThrowsAny<ArgumentException>(() => SeqNetsTasks.Run("depth", Quick with { Steps = 0 })).ParamName);
        Assert.Equal("HiddenSize", Assert.ThrowsAny<ArgumentException>(() => Quick.WithHiddenSize(-1)).ParamName);
        Assert.Equal("name", Assert.Throws<ArgumentNullException>(() => SeqNetsTasks.Run(null!)).ParamName);
    }
}
