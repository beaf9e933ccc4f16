import CLibBPF
import Glibc

extension BPFProgram {
    /// Where one source line's code starts in the JIT-compiled program.
    public struct JitedLine: Sendable {
        /// Kernel address of the line's first machine instruction (as `perf script` reports samples).
        public let address: UInt64
        public let file: String
        public let line: Int
        /// The source text, as clang recorded it in the program's BTF.
        public let source: String
    }

    /// The program's line table in JIT-compiled code, from the kernel (BTF line info
    /// and its jited addresses): a profiler's sample addresses map to source lines
    /// through it, where `bpftool` and `perf annotate` need binutils to disassemble.
    /// In instruction order: the main program's lines, then each BPF subprogram's
    /// (each compiled apart, at an address of its own). Empty if the program has no
    /// BTF line info or no JIT image.
    public func jitedLines() throws(BPFError) -> [JitedLine] {
        var counts = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        _ = try check("read info of program '\(name)'", bpf_obj_get_info_by_fd(fd, &counts, &length))
        let count = Int(counts.nr_jited_line_info)
        guard count > 0, Int(counts.nr_line_info) == count else { return [] }

        var addresses = [UInt64](repeating: 0, count: count)
        var lines = [bpf_line_info](repeating: bpf_line_info(), count: count)
        let result = addresses.withUnsafeMutableBufferPointer { addressBuffer in
            lines.withUnsafeMutableBufferPointer { lineBuffer in
                var info = bpf_prog_info()
                info.nr_jited_line_info = UInt32(count)
                info.jited_line_info_rec_size = UInt32(MemoryLayout<UInt64>.size)
                info.jited_line_info = UInt64(UInt(bitPattern: addressBuffer.baseAddress))
                info.nr_line_info = UInt32(count)
                info.line_info_rec_size = UInt32(MemoryLayout<bpf_line_info>.size)
                info.line_info = UInt64(UInt(bitPattern: lineBuffer.baseAddress))
                var length = UInt32(MemoryLayout<bpf_prog_info>.size)
                return bpf_obj_get_info_by_fd(fd, &info, &length)
            }
        }
        _ = try check("read the line info of program '\(name)'", result)

        guard let btf = btf__load_from_kernel_by_id(counts.btf_id) else {
            throw BPFError("load the BTF of program '\(name)'", errno: Glibc.errno)
        }
        defer { btf__free(btf) }
        func string(_ offset: UInt32) -> String { btf__name_by_offset(btf, offset).map { String(cString: $0) } ?? "" }
        return zip(addresses, lines).map { address, line in
            // line_col holds the line number above its 10 bits of column.
            JitedLine(address: address, file: string(line.file_name_off), line: Int(line.line_col >> 10), source: string(line.line_off))
        }
    }
}
