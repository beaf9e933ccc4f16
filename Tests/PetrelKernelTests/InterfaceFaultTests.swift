import Foundation
import Petrel
import PetrelBPF
import Testing
import PetrelTestSupport

/// Attaching to interfaces that are missing, unsuitable or disappear.
@Suite("Interfaces that fail", .serialized)
struct InterfaceFaultTests {
    /// A network namespace of the test's own, deleted afterwards.
    final class Namespace {
        let name: String
        init(_ tag: String) throws {
            name = "pk\(getpid())\(tag)"
            try Self.ip(["netns", "add", name])
        }
        deinit { try? Self.ip(["netns", "del", name]) }

        func run(_ arguments: [String]) throws { try Self.ip(["-n", name] + arguments) }

        static func ip(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = arguments
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw PetrelError.invalid(field: "ip \(arguments.joined(separator: " "))", value: "exit \(process.terminationStatus)", expected: "success") }
        }
    }

    @Test("Attaching to a missing interface names it")
    func missingInterface() throws {
        let balancer = try makeBalancer()
        #expect {
            try balancer.attach(interface: "nosuch0", mode: .generic)
        } throws: { "\($0)".contains("nosuch0") }
    }

    @Test("Native mode on a device without native XDP fails cleanly with a hint; generic mode works")
    func nativeUnsupported() throws {
        // Loopback has no native XDP support (and is in every namespace).
        let namespace = try Namespace("d")
        try namespace.run(["link", "set", "lo", "up"])
        let balancer = try makeBalancer()
        try NetworkNamespace.run(namespace.name) {
            #expect {
                try balancer.attach(interface: "lo", mode: .native)
            } throws: { error in
                "\(error)".contains("'lo'") && "\(error)".contains("generic mode")
            }
            try balancer.attach(interface: "lo", mode: .generic)
            #expect(try balancer.isAttached(interface: "lo"))
            try balancer.detach(interface: "lo")
            #expect(try !balancer.isAttached(interface: "lo"))
        }
    }

    @Test("An interface that disappears while attached gives a clear error, and the balancer stays usable")
    func interfaceDisappears() throws {
        let namespace = try Namespace("v")
        try namespace.run(["link", "add", "veth0", "type", "veth", "peer", "name", "veth1"])
        try namespace.run(["link", "set", "veth0", "up"])
        try namespace.run(["link", "set", "veth1", "up"])
        let balancer = try makeBalancer()
        try NetworkNamespace.run(namespace.name) {
            try balancer.attach(interface: "veth0", mode: .native)
            #expect(try balancer.isAttached(interface: "veth0"))
        }
        try namespace.run(["link", "del", "veth0"])
        try NetworkNamespace.run(namespace.name) {
            #expect {
                try balancer.detach(interface: "veth0")
            } throws: { "\($0)".contains("veth0") }
        }
        // The maps and the program are untouched: packets are still balanced.
        let flow = Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40000, destination: TestVips.web4.address, destinationPort: 80)
        #expect(try balancer.run(PacketBuilder.frame(for: flow)).action == .tx)
    }
}
