using System.Collections.Concurrent;

namespace SeqNets.CSharp;

/// <summary>
/// One thread that does all the tensor work of one model, in the order it was asked for.
/// TorchSharp's dispose scopes and libtorch's gradient mode belong to a thread, so keeping every
/// call of a model on its own thread means a caller's dispose scope can never capture the model's
/// tensors, and an asynchronous training run never hops threads between steps.
/// </summary>
internal sealed class EngineThread : IDisposable
{
    private readonly BlockingCollection<Action> _queue = new();
    private readonly Thread _thread;

    public EngineThread(string name)
    {
        _thread = new Thread(Loop) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>Whether the calling thread is this one (a progress callback, for instance).</summary>
    public bool IsCurrent => Thread.CurrentThread == _thread;

    private void Loop()
    {
        foreach (var work in _queue.GetConsumingEnumerable())
            work();
    }

    /// <summary>Runs <paramref name="work"/> on the thread; from the thread itself it runs inline.</summary>
    public Task<T> RunAsync<T>(Func<T> work)
    {
        if (IsCurrent)
        {
            try { return Task.FromResult(work()); }
            catch (Exception e) { return Task.FromException<T>(e); }
        }
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            _queue.Add(() =>
            {
                try { done.SetResult(work()); }
                catch (Exception e) { done.SetException(e); }
            });
        }
        catch (InvalidOperationException)
        {
            throw new ObjectDisposedException(nameof(CharLanguageModel));
        }
        return done.Task;
    }

    /// <summary>Runs <paramref name="work"/> on the thread and waits for it, rethrowing its exception as it was.</summary>
    public T Run<T>(Func<T> work) => IsCurrent ? work() : RunAsync(work).GetAwaiter().GetResult();

    /// <summary>Runs what is queued, then ends the thread.</summary>
    public void Dispose()
    {
        _queue.CompleteAdding();
        if (!IsCurrent) _thread.Join();
    }
}
