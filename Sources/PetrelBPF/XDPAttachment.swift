import CLibBPF
import Glibc

/// How an XDP program is attached to an interface.
public enum XDPMode: String, Sendable, Codable {
    /// In the driver: the fast path. veth and most physical NICs support it.
    case native
    /// In the generic network stack: works everywhere, slower.
    case generic

    var libxdpMode: xdp_attach_mode { self == .native ? XDP_MODE_NATIVE : XDP_MODE_SKB }
}

/// Attaches XDP programs through libxdp, so Petrel can share an interface with
/// other XDP programs via the libxdp dispatcher.
public enum XDPAttachment {
    /// Loads `object` (opened, not yet loaded; its maps may reuse others' fds)
    /// as an XDP program on the interface and leaves it attached. The kernel keeps
    /// it attached after this process exits, until `detach` is called.
    public static func attach(object: BPFObject, program programName: String, to interface: NetworkInterface, mode: XDPMode) throws(BPFError) {
        let (outcome, log): (Int32, String) = programName.withCString { cName in
            withLibbpfOptions(xdp_program_opts.self) { options in
                options.pointee.obj = object.handle
                options.pointee.prog_name = cName
                return LibbpfLog.capturing {
                    guard let program = xdp_program__create(options) else { return -EINVAL }
                    let error = libxdp_get_error(UnsafeRawPointer(program))
                    if error != 0 { return Int32(error) }
                    defer { xdp_program__close(program) }
                    return xdp_program__attach(program, Int32(interface.index), mode.libxdpMode, 0)
                }
            }
        }
        if outcome != 0 {
            var hint = ""
            if mode == .native && (-outcome == EOPNOTSUPP || -outcome == EINVAL) {
                hint = "\nhint: the driver of '\(interface.name)' may not support native XDP; try generic mode"
            }
            throw BPFError("attach XDP program '\(programName)' to '\(interface.name)' in \(mode.rawValue) mode", errno: -outcome, log: log + hint)
        }
        object.markLoaded()
    }

    /// The XDP programs attached to the interface: a program attached directly, or
    /// the programs behind libxdp's dispatcher. Asks the kernel directly and closes
    /// every fd it opens: libxdp 1.3's `xdp_multiprog__get_from_ifindex` leaks one
    /// program fd per call, which made every status call and scrape leak one.
    public static func attachedPrograms(on interface: NetworkInterface) throws(BPFError) -> [(name: String, id: UInt32, mode: XDPMode, tag: [UInt8])] {
        let (drvID, skbID) = try withLibbpfOptions(bpf_xdp_query_opts.self) { (query) throws(BPFError) in
            try check("query XDP programs on '\(interface.name)'", bpf_xdp_query(Int32(interface.index), 0, query))
            return (query.pointee.drv_prog_id, query.pointee.skb_prog_id)
        }
        var result: [(String, UInt32, XDPMode, [UInt8])] = []
        for (id, mode) in [(drvID, XDPMode.native), (skbID, XDPMode.generic)] where id != 0 {
            // The program may be gone between the query and here: then it is not attached.
            guard let main = AttachedProgram(id: id) else { continue }
            if main.name == AttachedProgram.libxdpDispatcher {
                for component in AttachedProgram.extensions(of: id) { result.append((component.name, component.id, mode, component.tag)) }
            } else {
                result.append((main.name, main.id, mode, main.tag))
            }
        }
        return result
    }

    /// Detaches every program named `programName` from the interface; other
    /// programs stay. Returns how many were detached.
    @discardableResult
    public static func detach(program programName: String, from interface: NetworkInterface) throws(BPFError) -> Int {
        var detached = 0
        // The kernel keeps 15 characters of a program's name (BPF_OBJ_NAME_LEN).
        let kernelName = String(programName.prefix(Int(BPF_OBJ_NAME_LEN) - 1))
        for attached in try attachedPrograms(on: interface) where attached.name == kernelName {
            guard let program = xdp_program__from_id(attached.id) else { continue }
            defer { xdp_program__close(program) }
            let result = xdp_program__detach(program, Int32(interface.index), attached.mode.libxdpMode, 0)
            if result != 0 { throw BPFError("detach '\(programName)' from '\(interface.name)'", errno: -result) }
            detached += 1
        }
        return detached
    }
}
