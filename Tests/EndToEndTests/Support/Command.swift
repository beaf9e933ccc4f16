import Foundation

/// Runs external commands (topology.sh, `ip netns exec`, testhost.py) for the
/// end-to-end tests. Output goes to temporary files, not pipes, so a chatty
/// command can never block on a full pipe while we wait for it.
enum Command {
    struct Failure: Error, CustomStringConvertible {
        let command: [String]
        let status: Int32
        let output: String
        var description: String { "`\(command.joined(separator: " "))` exited \(status): \(output)" }
    }

    /// The repository root, found from this file's path (Tests/EndToEndTests/Support/...).
    static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func script(_ name: String) -> String { repoRoot.appendingPathComponent("scripts/\(name)").path }

    /// A started command whose output is collected in a temporary file.
    final class Running: @unchecked Sendable {
        let arguments: [String]
        let process = Process()
        private let outputURL: URL
        private let errorURL: URL

        init(_ arguments: [String]) throws {
            self.arguments = arguments
            let base = FileManager.default.temporaryDirectory.appendingPathComponent("petrel-e2e-\(UUID().uuidString)")
            outputURL = base.appendingPathExtension("out")
            errorURL = base.appendingPathExtension("err")
            _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
            process.currentDirectoryURL = Command.repoRoot
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = try FileHandle(forWritingTo: outputURL)
            process.standardError = try FileHandle(forWritingTo: errorURL)
            try process.run()
        }

        /// Waits up to `timeout` seconds; past it the process is killed and this throws.
        @discardableResult
        func wait(timeout: TimeInterval) throws -> (status: Int32, output: String, error: String) {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw Failure(command: arguments, status: -1, output: "timed out after \(timeout) s; stderr: \(readError())")
            }
            process.waitUntilExit()
            defer {
                try? FileManager.default.removeItem(at: outputURL)
                try? FileManager.default.removeItem(at: errorURL)
            }
            return (process.terminationStatus, readOutput(), readError())
        }

        /// Stops the process (only this one, by its pid) if it still runs. SIGKILL:
        /// children of Foundation's Process inherit a mask that blocks SIGTERM.
        func stop() {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
            try? FileManager.default.removeItem(at: outputURL)
            try? FileManager.default.removeItem(at: errorURL)
        }

        private func readOutput() -> String { (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "" }
        private func readError() -> String { (try? String(contentsOf: errorURL, encoding: .utf8)) ?? "" }
    }

    /// Runs a command to completion; throws unless it exits 0. Returns stdout.
    @discardableResult
    static func run(_ arguments: [String], timeout: TimeInterval = 30) throws -> String {
        let result = try Running(arguments).wait(timeout: timeout)
        guard result.status == 0 else { throw Failure(command: arguments, status: result.status, output: result.error + result.output) }
        return result.output
    }

    /// Runs a command inside a named network namespace.
    @discardableResult
    static func inNamespace(_ namespace: String, _ arguments: [String], timeout: TimeInterval = 30) throws -> String {
        try run(["ip", "netns", "exec", namespace] + arguments, timeout: timeout)
    }
}
