import Foundation
import Glibc
import Petrel
import PetrelNetlink
import Testing

/// The next hop resolved over rtnetlink, in two namespaces joined by a veth pair:
/// "lb" (where the resolver runs) and "router" (the gateway). Needs root.
@Suite(.serialized)
final class NextHopResolverTests {
    private let lb = "nh\(getpid())lb"
    private let router = "nh\(getpid())rt"

    init() throws {
        try run(["ip", "netns", "add", lb])
        try run(["ip", "netns", "add", router])
        try run(["ip", "-n", lb, "link", "add", "lb0", "type", "veth", "peer", "name", "rt0", "netns", router])
        for (namespace, link, v4, v6) in [(lb, "lb0", "10.77.0.1/24", "fd77::1/64"), (router, "rt0", "10.77.0.2/24", "fd77::2/64")] {
            try run(["ip", "-n", namespace, "addr", "add", v4, "dev", link])
            try run(["ip", "-n", namespace, "addr", "add", v6, "dev", link, "nodad"])
            try run(["ip", "-n", namespace, "link", "set", link, "up"])
            try run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        }
        try run(["ip", "-n", lb, "route", "add", "10.78.0.0/24", "via", "10.77.0.2"])
    }

    deinit {
        _ = try? run(["ip", "netns", "del", lb])
        _ = try? run(["ip", "netns", "del", router])
    }

    private var routerMAC: MACAddress {
        get throws {
            let text = try run(["ip", "netns", "exec", router, "cat", "/sys/class/net/rt0/address"])
            return try #require(MACAddress(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
    }

    @Test("An IPv4 gateway is resolved by ARP to the router's MAC")
    func ipv4() throws {
        #expect(try resolveInLB("10.77.0.2") == .success(routerMAC))
    }

    @Test("An IPv6 gateway is resolved by neighbour solicitation to the router's MAC")
    func ipv6() throws {
        #expect(try resolveInLB("fd77::2") == .success(routerMAC))
    }

    @Test("A static neighbour entry is used as it is")
    func permanentEntry() throws {
        try run(["ip", "-n", lb, "neigh", "add", "10.77.0.50", "lladdr", "02:00:00:77:00:50", "dev", "lb0", "nud", "permanent"])
        #expect(try resolveInLB("10.77.0.50") == .success(MACAddress(0x02, 0, 0, 0x77, 0, 0x50)))
    }

    @Test("A gateway behind another router is refused, naming the router")
    func notDirectlyConnected() throws {
        #expect(try resolveInLB("10.78.0.1") == .failure(
            "next_hop.gateway: 10.78.0.1 is not on a directly connected network (it is routed via 10.77.0.2)"))
    }

    @Test("An address of this host is refused")
    func localAddress() throws {
        #expect(try resolveInLB("10.77.0.1") == .failure("next_hop.gateway: 10.77.0.1 is an address of this host, not a router"))
    }

    @Test("A silent gateway fails after the timeout, saying which interface was asked")
    func silentGateway() throws {
        let started = Date()
        #expect(try resolveInLB("10.77.0.9", timeout: 0.6) == .failure(
            "next_hop.gateway: 10.77.0.9 did not answer ARP on lb0 within 0.6 s (is it up? or give next_hop.mac)"))
        #expect(Date().timeIntervalSince(started) < 5)
    }

    // MARK: Running the resolver inside the namespace

    private enum Outcome: Equatable {
        case success(MACAddress)
        case failure(String)
    }

    /// Resolves on a thread of its own moved into the "lb" namespace (setns affects that thread only).
    private func resolveInLB(_ gateway: String, timeout: Double = 3) throws -> Outcome {
        let address = try #require(IPAddress(gateway))
        let namespace = lb
        let box = OutcomeBox()
        let thread = Thread {
            let fd = open("/run/netns/\(namespace)", O_RDONLY | O_CLOEXEC)
            guard fd >= 0, NextHopResolverTests.enterNetworkNamespace(fd) == 0 else { return box.set(.failure("setns failed: errno \(errno)")) }
            close(fd)
            do {
                box.set(.success(try NextHopResolver.resolve(address, timeout: timeout)))
            } catch {
                box.set(.failure("\(error)"))
            }
        }
        thread.start()
        return box.wait()
    }

    /// One outcome handed from the resolver's thread to the test.
    private final class OutcomeBox: @unchecked Sendable {
        // Safe: `value` is written once before `done` is signalled and read after.
        private var value: Outcome?
        private let done = DispatchSemaphore(value: 0)
        func set(_ outcome: Outcome) {
            value = outcome
            done.signal()
        }
        func wait() -> Outcome {
            done.wait()
            return value!
        }
    }

    /// setns(fd, CLONE_NEWNET); Glibc's module map leaves setns out (it is a GNU extension).
    private static let setns = unsafeBitCast(dlsym(nil, "setns"),  // nil: RTLD_DEFAULT
                                             to: (@convention(c) (Int32, Int32) -> Int32).self)

    private static func enterNetworkNamespace(_ fd: Int32) -> Int32 { setns(fd, 0x4000_0000) }  // CLONE_NEWNET

    @discardableResult
    private func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = Array(arguments.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(arguments.joined(separator: " ")): \(output)")
        }
        return output
    }

    private struct Failure: Error, CustomStringConvertible {
        var description: String
    }
}
