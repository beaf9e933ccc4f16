import Testing

/// The parent of every end-to-end suite, so that all their tests run one at a
/// time: each builds namespaces of its own, and the hold rounds have 1 s
/// timeouts that a parallel neighbour on a 2-CPU machine could eat into.
@Suite("End to end", .serialized)
enum EndToEnd {}
