import Foundation

/// A compiled BPF object file carried inside the binary. The build plugin
/// generates one static member per `bpf/*.bpf.c` (for example `.balancer`).
public struct EmbeddedBPFObject: Sendable {
    /// The source file's name without `.bpf.c`.
    public let name: String
    /// The ELF object as clang wrote it.
    public let bytes: [UInt8]

    package init(name: String, base64: String) {
        self.name = name
        self.bytes = Array(Data(base64Encoded: base64) ?? Data())
    }
}
