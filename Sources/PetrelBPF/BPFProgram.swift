import CLibBPF
import Glibc

/// A loaded BPF program.
/// `@unchecked Sendable`: immutable after init; the kernel serialises what is done through the fd.
public final class BPFProgram: @unchecked Sendable {
    public let name: String
    let fd: Int32

    init(name: String, fd: Int32) {
        self.name = name
        self.fd = fd
    }

    deinit { close(fd) }

    /// What the verifier reported about the loaded program.
    public struct VerifierFigures: Sendable {
        /// Instructions after the verifier's rewrites.
        public let translatedInstructions: Int
        /// Instructions the verifier walked while proving the program safe.
        public let verifiedInstructions: Int
    }

    public func verifierFigures() throws(BPFError) -> VerifierFigures {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        try check("read info of program '\(name)'", bpf_obj_get_info_by_fd(fd, &info, &length))
        return VerifierFigures(translatedInstructions: Int(info.xlated_prog_len) / 8, verifiedInstructions: Int(info.verified_insns))
    }

    // MARK: BPF_PROG_TEST_RUN

    /// The outcome of running the program on one packet in the kernel.
    public struct TestRun: Sendable {
        /// The program's return code (an XDP action for XDP programs).
        public let returnValue: UInt32
        /// The packet as the program left it.
        public let packet: [UInt8]
        /// Average time per repetition as the kernel measured it.
        public let nanosecondsPerRun: UInt32
    }

    /// Runs the program on `packet` in the kernel, `repetitions` times on the same
    /// buffer (so from the second run on it sees its own output).
    public func testRun(packet: [UInt8], repetitions: UInt32 = 1) throws(BPFError) -> TestRun {
        var output = [UInt8](repeating: 0, count: packet.count + 512)
        let (result, returnValue, outputSize, duration) = withLibbpfOptions(bpf_test_run_opts.self) { options in
            options.pointee.repeat = Int32(clamping: repetitions)
            options.pointee.data_size_out = UInt32(output.count)
            let result: Int32 = packet.withUnsafeBytes { input in
                output.withUnsafeMutableBytes { out in
                    options.pointee.data_in = input.baseAddress
                    options.pointee.data_size_in = UInt32(input.count)
                    options.pointee.data_out = out.baseAddress
                    return bpf_prog_test_run_opts(fd, options)
                }
            }
            return (result, options.pointee.retval, options.pointee.data_size_out, options.pointee.duration)
        }
        try check("test-run program '\(name)' on a \(packet.count)-byte packet", result)
        return TestRun(returnValue: returnValue, packet: Array(output.prefix(Int(outputSize))), nanosecondsPerRun: duration)
    }

    /// Transmits `packet` for real, `repetitions` times, as if the program had
    /// received it on `interfaceIndex` (BPF_F_TEST_XDP_LIVE_FRAMES): an in-kernel
    /// packet generator. Returns the kernel's time per packet.
    public func transmitLiveFrames(packet: [UInt8], interfaceIndex: UInt32, repetitions: UInt32, batchSize: UInt32 = 64) throws(BPFError) -> UInt32 {
        var context = xdp_md()
        context.data_end = UInt32(packet.count)
        context.ingress_ifindex = interfaceIndex
        let (result, duration) = withLibbpfOptions(bpf_test_run_opts.self) { options in
            options.pointee.repeat = Int32(clamping: repetitions)
            options.pointee.flags = UInt32(BPF_F_TEST_XDP_LIVE_FRAMES)
            options.pointee.batch_size = batchSize
            let result: Int32 = packet.withUnsafeBytes { input in
                withUnsafeMutablePointer(to: &context) { contextPointer in
                    options.pointee.data_in = input.baseAddress
                    options.pointee.data_size_in = UInt32(input.count)
                    options.pointee.ctx_in = UnsafeRawPointer(contextPointer)
                    options.pointee.ctx_size_in = UInt32(MemoryLayout<xdp_md>.size)
                    return bpf_prog_test_run_opts(fd, options)
                }
            }
            return (result, options.pointee.duration)
        }
        try check("transmit live frames with '\(name)'", result)
        return duration
    }
}
