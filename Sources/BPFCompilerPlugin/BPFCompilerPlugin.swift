import Foundation
import PackagePlugin

/// Compiles every `bpf/*.bpf.c` with the toolchain's clang (`-target bpf`) and
/// embeds each object into the target as a generated Swift file, so the library
/// carries its BPF programs and needs no `.o` path at run time. The benchmark's and
/// the tests' targets get `bench/bpf/*.bpf.c` and `Tests/bpf/*.bpf.c` instead: the
/// shipped library holds no bench or test code.
@main
struct BPFCompilerPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        try Self.checkHeaders()
        let bpfDirectory = context.package.directoryURL.appending(path: "bpf")
        let ownDirectory = Self.sourceDirectories[target.name]
        let isBench = ownDirectory != nil  // a target beside PetrelObjects: its files import it
        let sourceDirectory = ownDirectory.map { context.package.directoryURL.appending(path: $0) } ?? bpfDirectory
        let files = try FileManager.default.contentsOfDirectory(atPath: sourceDirectory.path)
        let sources = files.filter { $0.hasSuffix(".bpf.c") }.sorted()
        let headers = try headerFiles(under: bpfDirectory)
        let clang = try context.tool(named: "clang").url
        let embed = try context.tool(named: "petrel-embed-bpf").url

        return sources.map { file in
            let name = String(file.dropLast(".bpf.c".count))
            let source = sourceDirectory.appending(path: file)
            let output = context.pluginWorkDirectoryURL.appending(path: "Embedded_\(name).swift")
            return .buildCommand(
                displayName: "Compiling BPF program \(file)",
                executable: embed,
                arguments: [clang.path, source.path, bpfDirectory.appending(path: "include").path, name, output.path]
                    + (isBench ? [Self.objectsModule] : []),
                inputFiles: [source] + headers,
                outputFiles: [output]
            )
        }
    }

    /// The targets that embed programs of their own (the benchmark's, the tests'), and
    /// the module that defines `EmbeddedBPFObject`, which their generated files extend.
    static let sourceDirectories = ["PetrelBenchObjects": "bench/bpf", "PetrelTestObjects": "Tests/bpf"]
    static let objectsModule = "PetrelObjects"

    /// The headers the BPF programs include from the system: without them clang fails deep
    /// in a program with "file not found", so say at once what to install.
    static let requiredHeaders = [
        ("bpf/bpf_helpers.h", "libbpf-dev"),
        ("linux/bpf.h", "linux-libc-dev"),
    ]

    static func checkHeaders() throws {
        let directories = ["/usr/include", "/usr/local/include"]
        let missing = requiredHeaders.filter { header, _ in
            !directories.contains { FileManager.default.fileExists(atPath: "\($0)/\(header)") }
        }
        guard missing.isEmpty else {
            throw PluginFailure(description: "Petrel's BPF programs need " + missing.map { "<\($0.0)>" }.joined(separator: " and ")
                + ", not found in " + directories.joined(separator: " or ") + ": install "
                + missing.map(\.1).joined(separator: " ") + " (apt-get install " + missing.map(\.1).joined(separator: " ")
                + "), or run scripts/install-deps.sh")
        }
    }

    struct PluginFailure: Error, CustomStringConvertible {
        var description: String
    }

    private func headerFiles(under directory: URL) throws -> [URL] {
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else { return [] }
        return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "h" }
    }
}
