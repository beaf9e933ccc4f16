import CLibBPF
import Glibc

/// Attaches a `SEC("tc")` program as a direct-action cls_bpf filter on an
/// interface's clsact hook (ingress or egress). The filter is identified by a
/// fixed handle and priority, so attaching again replaces it and detaching
/// removes only it: other filters, and the clsact qdisc, stay.
public enum TCAttachment {
    public enum Direction: Sendable {
        case ingress, egress
        var attachPoint: bpf_tc_attach_point { self == .ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS }
    }

    /// Attaches (or replaces) the program at `handle`/`priority` on the interface.
    public static func attach(_ program: BPFProgram, to interface: NetworkInterface, direction: Direction,
                              handle: UInt32, priority: UInt32) throws(BPFError) {
        let (created, hookLog) = withHookAndOptions(interface, direction, handle, priority) { hook, _ in
            LibbpfLog.capturing { bpf_tc_hook_create(hook) }
        }
        if created != 0 && created != -EEXIST {
            throw BPFError("create the clsact hook on '\(interface.name)'", errno: -created, log: hookLog)
        }
        let (result, log) = withHookAndOptions(interface, direction, handle, priority) { hook, options in
            options.pointee.prog_fd = program.fd
            options.pointee.flags = UInt32(BPF_TC_F_REPLACE.rawValue)
            return LibbpfLog.capturing { bpf_tc_attach(hook, options) }
        }
        if result != 0 { throw BPFError("attach tc program '\(program.name)' to '\(interface.name)'", errno: -result, log: log) }
    }

    /// Removes the filter at `handle`/`priority`; returns false if there was none.
    @discardableResult
    public static func detach(from interface: NetworkInterface, direction: Direction, handle: UInt32, priority: UInt32) throws(BPFError) -> Bool {
        let result = withHookAndOptions(interface, direction, handle, priority) { bpf_tc_detach($0, $1) }
        if result == -ENOENT || result == -EINVAL { return false }
        if result != 0 { throw BPFError("detach tc filter \(handle) from '\(interface.name)'", errno: -result) }
        return true
    }

    /// The id of the program attached at `handle`/`priority`, if any.
    public static func attachedProgramID(on interface: NetworkInterface, direction: Direction, handle: UInt32, priority: UInt32) -> UInt32? {
        withHookAndOptions(interface, direction, handle, priority) { hook, options in
            bpf_tc_query(hook, options) == 0 ? options.pointee.prog_id : nil
        }
    }

    /// The hook and the options in zeroed memory (see withLibbpfOptions).
    private static func withHookAndOptions<T>(_ interface: NetworkInterface, _ direction: Direction, _ handle: UInt32, _ priority: UInt32,
                                              _ body: (UnsafeMutablePointer<bpf_tc_hook>, UnsafeMutablePointer<bpf_tc_opts>) -> T) -> T {
        withLibbpfOptions(bpf_tc_hook.self) { hook in
            withLibbpfOptions(bpf_tc_opts.self) { options in
                hook.pointee.ifindex = Int32(interface.index)
                hook.pointee.attach_point = direction.attachPoint
                options.pointee.handle = handle
                options.pointee.priority = priority
                return body(hook, options)
            }
        }
    }
}
