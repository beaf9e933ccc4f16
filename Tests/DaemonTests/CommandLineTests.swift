import Foundation
import Petrel
import Testing

/// What every binary says about itself: versions, help, refused arguments.
@Suite struct CommandLineTests {
    static let binaries = ["petrel", "petreld", "petrel-bench", "petrel-fuzz"]

    private func run(_ binary: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonHarness.binaries + "/" + binary)
        process.arguments = arguments
        // A wide terminal: ArgumentParser wraps at its width, so any break left is the text's own.
        process.environment = ["COLUMNS": "1000", "PATH": "/usr/bin:/bin"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationReason == .exit ? process.terminationStatus : -process.terminationStatus, output)
    }

    @Test("--version prints the one version constant", arguments: binaries)
    func version(_ binary: String) throws {
        let result = try run(binary, ["--version"])
        #expect(result.status == 0)
        #expect(result.output == PetrelVersion.string + "\n")
    }

    @Test("petrel-fuzz refuses a packet count that is not a positive number, without running or crashing",
          arguments: [["--packets", "abc"], ["--packets", "-5"], ["--packets=-5"], ["--packets", "0"], ["--packets"]])
    func fuzzerArguments(_ arguments: [String]) throws {
        let result = try run("petrel-fuzz", arguments)
        #expect(result.status == 64, "usage error expected: \(result.output)")
        #expect(result.output.contains("--packets"), "\(result.output)")
        #expect(!result.output.contains("fuzzing"))
    }

    /// Help pages of every command, with sentences broken only by the terminal's width.
    static let helpPages: [(String, [String])] = [
        ("petreld", []), ("petrel-fuzz", []), ("petrel-bench", []), ("petrel", []),
        ("petrel", ["vip", "list"]), ("petrel", ["vip", "add"]), ("petrel", ["vip", "set"]), ("petrel", ["vip", "del"]),
        ("petrel", ["real", "add"]), ("petrel", ["real", "del"]), ("petrel", ["real", "weight"]), ("petrel", ["real", "drain"]),
        ("petrel", ["reload"]), ("petrel", ["stats"]), ("petrel", ["explain"]), ("petrel", ["ring"]), ("petrel", ["status"]),
        ("petrel", ["check"]), ("petrel", ["decap", "attach"]), ("petrel", ["decap", "detach"]),
    ]

    @Test("Help texts are not hard-wrapped mid-sentence")
    func helpIsNotHardWrapped() throws {
        let commands: Set<String> = ["petrel", "petreld", "petrel-bench", "petrel-fuzz", "swift", "curl"]
        for (binary, path) in Self.helpPages {
            let result = try run(binary, path + ["--help"])
            #expect(result.status == 0, "\(binary) \(path) --help: \(result.output)")
            let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            for (line, next) in zip(lines, lines.dropFirst()) {
                let text = line.trimmingCharacters(in: .whitespaces)
                let indent = line.prefix { $0 == " " }.count
                guard let last = text.last, !next.trimmingCharacters(in: .whitespaces).isEmpty,
                      next.prefix(while: { $0 == " " }).count == indent,
                      let firstWord = text.split(separator: " ").first, !commands.contains(String(firstWord)) else { continue }
                #expect(!(last.isLowercase || last == ","), "\(binary) \(path.joined(separator: " ")): a sentence broken by hand after \"\(text)\"")
            }
        }
    }
}
