import CLibBPF
import Foundation
import Petrel
@testable import PetrelBPF
import Testing
import PetrelTestSupport

/// libbpf refuses an options struct (`bpf_xdp_query_opts`, ...) with any non-zero
/// byte past its last field, tail padding included; a struct built in Swift sets
/// its fields, not its padding. In the release build the XDP query failed with
/// EINVAL whenever the stack held garbage there: the live benchmark, after its
/// first timed window ("bpf_xdp_query_opts has non-zero extra bytes").
@Suite("libbpf options and the XDP query", .serialized)
struct XDPQueryTests {
    @Test("Options handed to libbpf are zero in every byte but their size, whatever the memory held before")
    func optionsAreZeroed() {
        func check<Options>(_ type: Options.Type, lastFieldEnd: Int) {
            let size = MemoryLayout<Options>.stride
            #expect(size > lastFieldEnd, "\(Options.self) has tail padding to check")
            for _ in 0..<10 {
                // Leave ones behind in memory of the same size, as an earlier call may.
                let dirty = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: MemoryLayout<Options>.alignment)
                memset(dirty, 0xff, size)
                dirty.deallocate()
                withLibbpfOptions(type) { options in
                    let bytes = UnsafeRawBufferPointer(start: options, count: size)
                    #expect(bytes.load(as: Int.self) == size, "sz of \(Options.self)")
                    #expect(bytes.dropFirst(MemoryLayout<Int>.size).allSatisfy { $0 == 0 }, "\(Options.self) has non-zero bytes")
                }
            }
        }
        // The two with tail padding after their last field in libbpf 1.1.
        check(bpf_xdp_query_opts.self, lastFieldEnd: MemoryLayout<bpf_xdp_query_opts>.offset(of: \.attach_mode)! + 1)
        check(bpf_object_open_opts.self, lastFieldEnd: MemoryLayout<bpf_object_open_opts>.offset(of: \.kernel_log_level)! + 4)
    }

    @Test("The query sees the balancer attached, then detached, every time")
    func queryAcrossAttachAndDetach() throws {
        let namespace = try InterfaceFaultTests.Namespace("q")
        try namespace.run(["link", "set", "lo", "up"])
        let balancer = try makeBalancer()
        try NetworkNamespace.run(namespace.name) {
            let lo = try NetworkInterface(named: "lo")
            defer { try? balancer.detach(interface: "lo") }
            for _ in 0..<3 {
                try balancer.attach(interface: "lo", mode: .generic)
                for _ in 0..<10 {
                    let attached = try XDPAttachment.attachedPrograms(on: lo)
                    #expect(attached.map(\.name) == ["petrel_balancer"])
                    #expect(attached.first?.mode == .generic)
                }
                #expect(try XDPAttachment.detach(program: "petrel_balancer", from: lo) == 1)
                #expect(try XDPAttachment.attachedPrograms(on: lo).isEmpty)
            }
        }
    }
}
