namespace SeqNets

open System.Runtime.CompilerServices

[<assembly: InternalsVisibleTo("SeqNets.Tests")>]
do ()
