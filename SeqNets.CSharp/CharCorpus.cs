using System.Collections.ObjectModel;

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
        Vocabulary = new ReadOnlyCollection<char>(core.Vocabulary.Characters.ToArray());
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

    /// <summary>Reads a UTF-8 text file and makes a corpus of it, as <see cref="FromText"/> does.</summary>
    /// <param name="path">The file to read.</param>
    /// <param name="trainFraction">The share of the text used for training, in (0, 1].</param>
    /// <returns>The corpus.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="path"/> is null.</exception>
    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="ArgumentException">The file's text is too short or the fraction is outside (0, 1].</exception>
    public static CharCorpus FromFile(string path, double trainFraction = 0.9)
    {
        Guard.NotNull(path, nameof(path));
        if (!File.Exists(path))
            throw new FileNotFoundException($"path: no such file '{path}'.", path);
        return FromText(File.ReadAllText(path), trainFraction);
    }

    internal static CharCorpus FromCore(Corpus core) => new(core);

    /// <summary>The characters the corpus knows, in id order: character <c>Vocabulary[i]</c> has id i.</summary>
    public IReadOnlyList<char> Vocabulary { get; }

    /// <summary>The number of characters in the training part.</summary>
    public int TrainingLength => Core.Train.Length;

    /// <summary>The number of characters in the validation part, zero when the whole text is for training.</summary>
    public int ValidationLength => Core.Validation.Length;

    /// <summary>Whether <paramref name="c"/> is in the vocabulary.</summary>
    /// <param name="c">A character.</param>
    /// <returns>True when the corpus has an id for the character.</returns>
    public bool Contains(char c) => Core.Vocabulary.Contains(c);

    /// <summary>The id of every character of <paramref name="text"/>.</summary>
    /// <param name="text">A text made of vocabulary characters.</param>
    /// <returns>One id per character.</returns>
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
        var chars = new List<char>();
        var position = 0;
        foreach (var id in ids)
        {
            if (id < 0 || id >= Vocabulary.Count)
                throw new ArgumentException(
                    $"ids: expected ids in [0, {Vocabulary.Count}), but got {id} at position {position}.", nameof(ids));
            chars.Add(Vocabulary[id]);
            position++;
        }
        return new string(chars.ToArray());
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
        var ids = new int[text.Length];
        for (var k = 0; k < text.Length; k++)
        {
            var c = text[k];
            if (!vocabulary.Contains(c))
                throw new ArgumentException(
                    $"{argument}: the character {Show(c)} at position {k} is not in the vocabulary of {vocabulary.Size} characters.", argument);
            ids[k] = vocabulary.Id(c);
        }
        return ids;
    }

    private static string Show(char c) =>
        char.IsControl(c) || char.IsWhiteSpace(c) ? $"U+{(int)c:X4}" : $"'{c}' (U+{(int)c:X4})";
}
