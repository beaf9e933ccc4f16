import CLibBPF
import Glibc

/// A loaded BPF program looked up by id: its name and tag, read through an fd
/// that is closed before the lookup returns.
struct AttachedProgram {
    /// The name of libxdp's dispatcher; the programs it runs are attached to it as extensions.
    static let libxdpDispatcher = "xdp_dispatcher"

    let id: UInt32
    let name: String
    let tag: [UInt8]

    /// Nil when no program has that id (any more).
    init?(id: UInt32) {
        let fd = bpf_prog_get_fd_by_id(id)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &length) == 0 else { return nil }
        self.id = id
        name = withUnsafeBytes(of: &info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        tag = withUnsafeBytes(of: &info.tag) { Array($0) }
    }

    /// The programs attached as extensions (freplace links) to the program `targetID`,
    /// found by walking the kernel's links.
    static func extensions(of targetID: UInt32) -> [AttachedProgram] {
        var programs: [AttachedProgram] = []
        var linkID: UInt32 = 0
        while bpf_link_get_next_id(linkID, &linkID) == 0 {
            let fd = bpf_link_get_fd_by_id(linkID)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var info = bpf_link_info()
            var length = UInt32(MemoryLayout<bpf_link_info>.size)
            guard bpf_obj_get_info_by_fd(fd, &info, &length) == 0,
                  info.type == BPF_LINK_TYPE_TRACING.rawValue, info.tracing.target_obj_id == targetID,
                  let program = AttachedProgram(id: info.prog_id) else { continue }
            programs.append(program)
        }
        return programs
    }
}
