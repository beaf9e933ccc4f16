import ArgumentParser
import Foundation
import Petrel
import PetrelAdmin

/// `petrel`: talks to petreld's admin socket, checks config files, attaches the decapsulator.
struct PetrelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "petrel",
        abstract: "Operate the Petrel XDP load balancer.",
        discussion: """
        Most commands talk to a running petreld over its admin unix socket (--socket, or the PETREL_SOCKET environment variable, default /run/petrel/admin.sock). `check` and `decap` work without a daemon.

        Changes made with `vip` and `real` apply to the running balancer only: the config file stays the source of truth, and `petrel reload` (or SIGHUP) brings it back.

        A VIP is written PROTO/ADDRESS:PORT: tcp/198.18.100.1:80, udp/[fd50:0:100::1]:53; port 0 (or *) means every port.
        """,
        version: PetrelVersion.string,
        subcommands: [VipCommand.self, RealCommand.self, ReloadCommand.self, StatsCommand.self, ExplainCommand.self,
                      RingCommand.self, StatusCommand.self, TopCommand.self, FlowsCommand.self, CaptureCommand.self, CheckCommand.self, DecapCommand.self]
    )

    // Declared here too so that `petrel --socket PATH status` works as well as `petrel status --socket PATH`.
    @OptionGroup var options: SocketOptions
}

/// Options every daemon-facing command takes.
struct SocketOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("petreld's admin socket.", valueName: "path"))
    var socket: String = ProcessInfo.processInfo.environment["PETREL_SOCKET"] ?? "/run/petrel/admin.sock"

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for petreld: at most 5 of them to connect, all of them for the answer.",
                                            valueName: "seconds"))
    var timeout: Int = 30

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout: must be at least 1 second, got \(timeout)") }
    }

    var client: AdminClient { AdminClient(socketPath: socket, timeoutSeconds: timeout, connectTimeoutSeconds: min(5, timeout)) }

    /// Sends a request; a non-2xx answer becomes an error naming what the daemon said.
    func call(_ method: String, _ path: String, query: [String: String] = [:], body: Data = Data()) throws -> Data {
        var request = HTTPRequest(method: method, path: path, query: query, body: body)
        if !body.isEmpty { request.headers["Content-Type"] = "application/json" }
        let response: HTTPResponse
        do {
            response = try client.send(request)
        } catch {
            throw CLIError(error.description)
        }
        guard (200..<300).contains(response.status) else {
            if let document = try? AdminJSON.decode(ErrorDocument.self, from: response.body) {
                var message = "petreld refused (\(response.status)): \(document.error)"
                for issue in document.issues ?? [] where issue != document.error { message += "\n  \(issue)" }
                throw CLIError(message)
            }
            throw CLIError("petreld answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        }
        return response.body
    }

    func get<T: Decodable>(_ type: T.Type, _ path: String, query: [String: String] = [:]) throws -> T {
        let body = try call("GET", path, query: query)
        do {
            return try AdminJSON.decode(type, from: body)
        } catch {
            throw CLIError("petreld sent an answer petrel does not understand: \(AdminJSON.describe(error))")
        }
    }
}

/// An error printed as is, exiting with status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Parsing VIPs and reals on the command line

/// `tcp/198.18.100.1:80`, `udp/[fd50::1]:53`, `tcp/198.18.100.2:*`.
struct VipSpec: ExpressibleByArgument, CustomStringConvertible {
    var key: VipKey

    init?(argument: String) {
        guard let parsed = try? VipSpec.parse(argument) else { return nil }
        key = parsed
    }

    static func parse(_ text: String) throws -> VipKey {
        do {
            return try VipKey.parse(text, field: "VIP \(text)")
        } catch {
            throw CLIError("\(error)")
        }
    }

    var description: String { "\(key)" }
    /// `/v1/vips/tcp/198.18.100.1/80`.
    var path: String { "/v1/vips/\(key.pathComponent)" }
}

/// Prints a table with left-aligned text columns and right-aligned numbers.
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        let cells = row.enumerated().map { index, cell -> String in
            let pad = String(repeating: " ", count: widths[index] - cell.count)
            return cell.first.map { $0.isNumber } == true && index > 0 ? pad + cell : cell + pad
        }
        print(cells.joined(separator: "  ").trimmingCharacters(in: .whitespaces))
    }
}

func printJSON(_ data: Data) {
    print(String(decoding: data, as: UTF8.self))
}
