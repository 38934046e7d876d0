using System.Collections.ObjectModel;
using System.Text;

namespace SeqNets.CSharp;

/// <summary>
/// A text prepared for a character-level language model: its vocabulary (the distinct characters,
/// sorted by code point, so the same text always gives the same ids) and a contiguous split into a
/// training part and a validation part. It holds no native memory.
/// </summary>
public sealed class CharCorpus
{
    private CharCorpus(Corpus core)
    {
        Core = core;
        Vocabulary = new ReadOnlyCollection<Rune>(core.Vocabulary.Characters.ToArray());
    }

    internal Corpus Core { get; }

    /// <summary>
    /// A corpus over <paramref name="text"/>: the vocabulary of the whole text, its first
    /// <paramref name="trainFraction"/> for training and the rest for validation.
    /// </summary>
    /// <param name="text">The text, at least two characters once split.</param>
    /// <param name="trainFraction">The share of the text used for training, in (0, 1]; 1 leaves no validation part.</param>
    /// <returns>The corpus.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    /// <exception cref="ArgumentException">The text is empty, the fraction is outside (0, 1], or fewer than two training characters remain.</exception>
    public static CharCorpus FromText(string text, double trainFraction = 0.9)
    {
        Guard.NotNull(text, nameof(text));
        return new CharCorpus(CorpusModule.Split(trainFraction, text));
    }

    /// <summary>
    /// Reads a UTF-8 text file and makes a corpus of it, as <see cref="FromText"/> does. The file is
    /// read in a streaming pass for its characters and another for their ids, which are kept in one
    /// byte each for up to 256 distinct characters: a file of any size takes about its size in memory.
    /// </summary>
    /// <param name="path">The file to read.</param>
    /// <param name="trainFraction">The share of the text used for training, in (0, 1].</param>
    /// <param name="replaceInvalid">False (the default) to refuse bytes that are not UTF-8 with an error naming their offset; true to read each invalid sequence as U+FFFD.</param>
    /// <returns>The corpus.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="InvalidTextException">The file is not UTF-8 (and <paramref name="replaceInvalid"/> is false); the message and <see cref="InvalidTextException.Offset"/> give the byte offset.</exception>
    /// <exception cref="ArgumentException">The path is a directory, the file's text is too short or the fraction is outside (0, 1].</exception>
    /// <exception cref="InsufficientMemoryException">The text's ids would need more memory than the machine has.</exception>
    public static CharCorpus FromFile(string path, double trainFraction = 0.9, bool replaceInvalid = false)
    {
        Guard.NotNull(path, nameof(path));
        return new CharCorpus(CorpusModule.OfFile(replaceInvalid ? InvalidText.Replace : InvalidText.Reject, trainFraction, path));
    }

    internal static CharCorpus FromCore(Corpus core) => new(core);

    /// <summary>
    /// The characters the corpus knows, in id order: character <c>Vocabulary[i]</c> has id i. A
    /// character is a Unicode scalar value, so an emoji outside the Basic Multilingual Plane is one
    /// entry, not two UTF-16 halves.
    /// </summary>
    public IReadOnlyList<Rune> Vocabulary { get; }

    /// <summary>The number of characters (Unicode scalar values) in the training part.</summary>
    public long TrainingLength => Core.Train.Length;

    /// <summary>The number of characters in the validation part, zero when the whole text is for training.</summary>
    public long ValidationLength => Core.Validation.Length;

    /// <summary>Whether <paramref name="c"/> is in the vocabulary.</summary>
    /// <param name="c">A character of the Basic Multilingual Plane (a surrogate is never one).</param>
    /// <returns>True when the corpus has an id for the character.</returns>
    public bool Contains(char c) => Core.Vocabulary.Contains(c);

    /// <summary>Whether <paramref name="c"/> is in the vocabulary.</summary>
    /// <param name="c">A character (Unicode scalar value).</param>
    /// <returns>True when the corpus has an id for the character.</returns>
    public bool Contains(Rune c) => Core.Vocabulary.Contains(c);

    /// <summary>The id of every character of <paramref name="text"/>.</summary>
    /// <param name="text">A text made of vocabulary characters.</param>
    /// <returns>One id per character (Unicode scalar value).</returns>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    /// <exception cref="ArgumentException">A character is not in the vocabulary; the message names it and its position.</exception>
    public int[] Encode(string text) => EncodeAs(text, nameof(text));

    /// <summary>The text of a sequence of ids.</summary>
    /// <param name="ids">Ids, each in [0, V) for a vocabulary of V characters.</param>
    /// <returns>The characters of the ids.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="ids"/> is null.</exception>
    /// <exception cref="ArgumentException">An id is outside the vocabulary; the message names it and its position.</exception>
    public string Decode(IEnumerable<int> ids)
    {
        Guard.NotNull(ids, nameof(ids));
        var text = new StringBuilder();
        var position = 0;
        foreach (var id in ids)
        {
            if (id < 0 || id >= Vocabulary.Count)
                throw new ArgumentException(
                    $"ids: expected ids in [0, {Vocabulary.Count}), but got {id} at position {position}.", nameof(ids));
            text.Append(Core.Vocabulary.TextOf(id));
            position++;
        }
        return text.ToString();
    }

    /// <summary>Shows the sizes of the vocabulary and of the two parts.</summary>
    /// <returns>A one-line description.</returns>
    public override string ToString() =>
        $"CharCorpus ({Vocabulary.Count} characters; {TrainingLength} training, {ValidationLength} validation)";

    /// <summary>Encodes with messages that name <paramref name="argument"/>.</summary>
    internal int[] EncodeAs(string text, string argument) => EncodeWith(Core.Vocabulary, text, argument);

    internal static int[] EncodeWith(SeqNets.Vocabulary vocabulary, string text, string argument)
    {
        Guard.NotNull(text, argument);
        var ids = new List<int>(text.Length);
        for (var k = 0; k < text.Length;)
        {
            if (Rune.DecodeFromUtf16(text.AsSpan(k), out var c, out var n) != System.Buffers.OperationStatus.Done)
                throw new InvalidTextException(argument, k,
                    $"{argument}: expected Unicode text, but UTF-16 index {k} holds a lone surrogate U+{(int)text[k]:X4} "
                    + "(half of a character outside the Basic Multilingual Plane).");
            if (!vocabulary.Contains(c))
                throw new ArgumentException(
                    $"{argument}: the character {Show(c)} at position {ids.Count}{(k != ids.Count ? $" (UTF-16 index {k})" : "")} "
                    + $"is not in the vocabulary of {vocabulary.Size} characters.", argument);
            ids.Add(vocabulary.Id(c));
            k += n;
        }
        return ids.ToArray();
    }

    private static string Show(Rune c) =>
        Rune.IsControl(c) || Rune.IsWhiteSpace(c) ? $"U+{c.Value:X4}" : $"'{c}' (U+{c.Value:X4})";
}
