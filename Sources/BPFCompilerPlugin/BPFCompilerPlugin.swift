import Foundation
import PackagePlugin

/// Compiles every `bpf/*.bpf.c` with the toolchain's clang (`-target bpf`) and
/// embeds each object into the target as a generated Swift file, so the library
/// carries its BPF programs and needs no `.o` path at run time.
@main
struct BPFCompilerPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let bpfDirectory = context.package.directoryURL.appending(path: "bpf")
        let files = try FileManager.default.contentsOfDirectory(atPath: bpfDirectory.path)
        let sources = files.filter { $0.hasSuffix(".bpf.c") }.sorted()
        let headers = try headerFiles(under: bpfDirectory)
        let clang = try context.tool(named: "clang").url
        let embed = try context.tool(named: "petrel-embed-bpf").url

        return sources.map { file in
            let name = String(file.dropLast(".bpf.c".count))
            let source = bpfDirectory.appending(path: file)
            let output = context.pluginWorkDirectoryURL.appending(path: "Embedded_\(name).swift")
            return .buildCommand(
                displayName: "Compiling BPF program \(file)",
                executable: embed,
                arguments: [clang.path, source.path, bpfDirectory.appending(path: "include").path, name, output.path],
                inputFiles: [source] + headers,
                outputFiles: [output]
            )
        }
    }

    private func headerFiles(under directory: URL) throws -> [URL] {
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else { return [] }
        return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "h" }
    }
}
