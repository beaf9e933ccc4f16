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
        var options = xdp_program_opts()
        options.sz = MemoryLayout<xdp_program_opts>.size
        options.obj = object.handle
        let (outcome, log): (Int32, String) = programName.withCString { cName in
            options.prog_name = cName
            return LibbpfLog.capturing {
                guard let program = xdp_program__create(&options) else { return -EINVAL }
                let error = libxdp_get_error(UnsafeRawPointer(program))
                if error != 0 { return Int32(error) }
                defer { xdp_program__close(program) }
                return xdp_program__attach(program, Int32(interface.index), mode.libxdpMode, 0)
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

    /// The ids of the XDP programs attached to the interface, by name.
    public static func attachedPrograms(on interface: NetworkInterface) throws(BPFError) -> [(name: String, id: UInt32, mode: XDPMode, tag: [UInt8])] {
        guard let multiprog = xdp_multiprog__get_from_ifindex(Int32(interface.index)) else { return [] }
        let error = libxdp_get_error(UnsafeRawPointer(multiprog))
        if error == -Int(ENOENT) { return [] }
        if error != 0 { throw BPFError("list XDP programs on '\(interface.name)'", errno: Int32(error)) }
        defer { xdp_multiprog__close(multiprog) }
        let mode: XDPMode = xdp_multiprog__attach_mode(multiprog) == XDP_MODE_SKB ? .generic : .native
        var result: [(String, UInt32, XDPMode, [UInt8])] = []
        func describe(_ program: OpaquePointer) -> (String, UInt32, XDPMode, [UInt8]) {
            let tag = xdp_program__tag(program).map { Array(UnsafeBufferPointer(start: $0, count: Int(BPF_TAG_SIZE))) } ?? []
            return (String(cString: xdp_program__name(program)), xdp_program__id(program), mode, tag)
        }
        if xdp_multiprog__is_legacy(multiprog) {
            if let main = xdp_multiprog__main_prog(multiprog) { result.append(describe(main)) }
            return result
        }
        var program = xdp_multiprog__next_prog(nil, multiprog)
        while let current = program {
            result.append(describe(current))
            program = xdp_multiprog__next_prog(current, multiprog)
        }
        return result
    }

    /// Detaches every program named `programName` from the interface; other
    /// programs stay. Returns how many were detached.
    @discardableResult
    public static func detach(program programName: String, from interface: NetworkInterface) throws(BPFError) -> Int {
        var detached = 0
        for attached in try attachedPrograms(on: interface) where attached.name == programName {
            guard let program = xdp_program__from_id(attached.id) else { continue }
            defer { xdp_program__close(program) }
            let result = xdp_program__detach(program, Int32(interface.index), attached.mode.libxdpMode, 0)
            if result != 0 { throw BPFError("detach '\(programName)' from '\(interface.name)'", errno: -result) }
            detached += 1
        }
        return detached
    }
}
