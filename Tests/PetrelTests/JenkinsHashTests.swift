import Foundation
import Testing
@testable import Petrel
import PetrelTestSupport

/// The Swift hash must match bpf/lib/jhash.h bit for bit, so these tests compile
/// that header with the host C compiler and compare outputs on random inputs.
@Suite struct JenkinsHashTests {
    static let repoRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let hostCompiler: String? = ["/usr/bin/cc", "/usr/bin/clang", "/usr/bin/gcc"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Reads "k0 k1 k2 k3 seed" lines, prints "jhash_3words(k0,k1,k2,seed) jhash_4words(...)".
    static let driver = """
        #ifndef __always_inline
        #define __always_inline inline __attribute__((always_inline))
        #endif
        #include <stdio.h>
        #include "jhash.h"
        int main(void)
        {
            unsigned int k0, k1, k2, k3, seed;
            while (scanf("%u %u %u %u %u", &k0, &k1, &k2, &k3, &seed) == 5)
                printf("%u %u\\n", jhash_3words(k0, k1, k2, seed), jhash_4words(k0, k1, k2, k3, seed));
            return 0;
        }
        """

    /// Runs a command with `input` (a file) as stdin; returns stdout, throws on a non-zero exit.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], input: URL? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe(), stderr = Pipe()
        if let input { process.standardInput = try FileHandle(forReadingFrom: input) }
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CommandFailed(command: ([executable] + arguments).joined(separator: " "), stderr: errors)
        }
        return String(decoding: output, as: UTF8.self)
    }

    struct CommandFailed: Error, CustomStringConvertible {
        var command: String
        var stderr: String
        var description: String { "`\(command)` failed: \(stderr)" }
    }

    @Test func matchesTheCHeaderOnRandomInputs() throws {
        let compiler = try #require(Self.hostCompiler, "no host C compiler at /usr/bin/{cc,clang,gcc}")
        let header = Self.repoRoot.appendingPathComponent("bpf/lib/jhash.h")
        try #require(FileManager.default.fileExists(atPath: header.path), "missing \(header.path)")

        let workDir = FileManager.default.temporaryDirectory
            .appendingPathComponent("petrel-jhash-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: workDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: workDir) }
        let source = workDir.appendingPathComponent("driver.c")
        let binary = workDir.appendingPathComponent("driver")
        try Self.driver.write(to: source, atomically: true, encoding: .utf8)
        try Self.run(compiler, ["-O2", "-Wall", "-I", header.deletingLastPathComponent().path,
                                "-o", binary.path, source.path])

        // Random words plus the edges where wrapping arithmetic matters.
        var rng = SeededGenerator(seed: 0x5045_5452_454c)
        var inputs: [(UInt32, UInt32, UInt32, UInt32, UInt32)] = [
            (0, 0, 0, 0, 0),
            (.max, .max, .max, .max, .max),
            (0xdead_beef, 0, 0, 0, 0x2152_4111),  // seed that cancels INITVAL + 12
        ]
        while inputs.count < 1000 {
            inputs.append((.random(in: 0 ... .max, using: &rng), .random(in: 0 ... .max, using: &rng),
                           .random(in: 0 ... .max, using: &rng), .random(in: 0 ... .max, using: &rng),
                           .random(in: 0 ... .max, using: &rng)))
        }
        let text = inputs.map { "\($0.0) \($0.1) \($0.2) \($0.3) \($0.4)" }.joined(separator: "\n") + "\n"
        let inputFile = workDir.appendingPathComponent("inputs.txt")
        try text.write(to: inputFile, atomically: true, encoding: .utf8)
        let lines = try Self.run(binary.path, [], input: inputFile).split(separator: "\n")
        try #require(lines.count == inputs.count, "C driver printed \(lines.count) lines for \(inputs.count) inputs")

        var mismatches = 0
        for (input, line) in zip(inputs, lines) {
            let fields = line.split(separator: " ").compactMap { UInt32($0) }
            let (k0, k1, k2, k3, seed) = input
            let swift3 = JenkinsHash.hash3(k0, k1, k2, seed: seed)
            let swift4 = JenkinsHash.hash4(k0, k1, k2, k3, seed: seed)
            if fields != [swift3, swift4] {
                mismatches += 1
                // A broken hash fails nearly every input; the first few say enough.
                if mismatches <= 5 { Issue.record("input \(input): C gave \(line), Swift gave \(swift3) \(swift4)") }
            }
        }
        print("JenkinsHash: \(inputs.count) inputs compared against bpf/lib/jhash.h, \(mismatches) mismatches")
        #expect(mismatches == 0)
    }

    @Test func seedAndEveryWordChangeTheHash() {
        let base = JenkinsHash.hash4(1, 2, 3, 4, seed: 5)
        #expect(JenkinsHash.hash4(1, 2, 3, 4, seed: 6) != base)
        #expect(JenkinsHash.hash4(1, 2, 3, 5, seed: 5) != base)
        #expect(JenkinsHash.hash4(0, 2, 3, 4, seed: 5) != base)
        #expect(JenkinsHash.hash3(1, 2, 3, seed: 5) != JenkinsHash.hash3(1, 2, 4, seed: 5))
    }
}
