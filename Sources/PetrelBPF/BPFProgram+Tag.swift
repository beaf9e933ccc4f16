import CLibBPF

extension BPFProgram {
    /// The kernel's hash of the program's instructions: equal tags, same code.
    public var tag: [UInt8] {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &length) == 0 else { return [] }
        return withUnsafeBytes(of: &info.tag) { Array($0) }
    }
}
