using System.Text;
using SeqNets.CSharp;
using Xunit;

namespace SeqNets.CSharp.Tests;

/// <summary>
/// Text beyond ASCII through the C# facade: characters outside the Basic Multilingual Plane are one
/// vocabulary entry each and survive training, saving, loading and sampling; bytes that are not
/// UTF-8 are refused with their offset, or read as U+FFFD when asked.
/// </summary>
public class UnicodeTests
{
    private static readonly TrainingOptions Small = TrainingOptions.Default.WithBatch(3).WithSequenceLength(7);
    private static readonly CharModelOptions Tiny = CharModelOptions.Default.WithHiddenSize(9).WithSeed(2);

    [Fact]
    public void Emoji_train_save_load_and_sample_as_one_character_each()
    {
        var text = string.Concat(Enumerable.Repeat("state 😀 summarises 👩‍👧 the past\u200F; 𝔘𝔫𝔦\n", 30));
        var corpus = CharCorpus.FromText(text);
        Assert.Contains(new Rune(0x1F600), corpus.Vocabulary);
        Assert.Equal(text.EnumerateRunes().Distinct().Count(), corpus.Vocabulary.Count);
        Assert.Equal(text, corpus.Decode(corpus.Encode(text)));

        using var folder = new TempFolder();
        using var model = CharLanguageModel.Create(corpus, Tiny);
        model.Train(3, Small);
        var path = folder.File("emoji.ckpt");
        model.Save(path);
        using var loaded = CharLanguageModel.Load(path, corpus);
        Assert.Equal(model.Vocabulary, loaded.Vocabulary);
        var sample = model.Sample("😀", 40, seed: 4);
        Assert.Equal(sample, loaded.Sample("😀", 40, seed: 4));
        Assert.Equal(40, sample.EnumerateRunes().Count());
        Assert.All(sample.EnumerateRunes(), r => Assert.Contains(r, loaded.Vocabulary));
        foreach (var r in corpus.Vocabulary)
            Assert.Single(loaded.Sample(r.ToString(), 1).EnumerateRunes());
        loaded.Train(2); // and it resumes
    }

    [Fact]
    public void Binary_garbage_is_refused_with_its_byte_offset_or_read_as_replacement_characters()
    {
        var random = new Random(7);
        var bytes = new byte[5000];
        random.NextBytes(bytes);
        bytes[0] = (byte)'a';
        bytes[1] = 0xFF;
        using var folder = new TempFolder();
        var file = folder.File("garbage.bin");
        File.WriteAllBytes(file, bytes);

        var e = Assert.Throws<InvalidTextException>(() => CharCorpus.FromFile(file));
        Assert.Equal(1, e.Offset);
        Assert.Contains("byte offset 1", e.Message);
        Assert.Contains(file, e.Message);

        var corpus = CharCorpus.FromFile(file, replaceInvalid: true);
        Assert.Contains(new Rune(0xFFFD), corpus.Vocabulary);
        using var model = CharLanguageModel.Create(corpus, Tiny);
        model.Train(2, Small);
        var path = folder.File("garbage.ckpt");
        model.Save(path);
        using var loaded = CharLanguageModel.Load(path);
        Assert.Equal(model.Sample("", 30, seed: 9), loaded.Sample("", 30, seed: 9));
    }

    [Fact]
    public void A_lone_surrogate_is_refused_with_its_index()
    {
        var corpus = CharCorpus.FromText("abcabcabc😀");
        var e = Assert.Throws<InvalidTextException>(() => corpus.Encode("ab\uD83D"));
        Assert.Equal(2, e.Offset);
        Assert.Contains("U+D83D", e.Message);
        Assert.Throws<InvalidTextException>(() => CharCorpus.FromText("abc\uDE00abc"));
    }
}
