import CLibBPF
import Glibc

extension BPFProgram {
    /// Attaches this loaded program itself as the XDP program of an interface in
    /// the calling thread's network namespace, without libxdp's dispatcher (the
    /// benchmark's generator: it must be the very program it test-runs). Fails
    /// if the interface already has an XDP program in that mode.
    public func attachXDPDirectly(toInterfaceIndex index: UInt32, mode: XDPMode) throws(BPFError) {
        let flags = UInt32(XDP_FLAGS_UPDATE_IF_NOEXIST) | (mode == .native ? UInt32(XDP_FLAGS_DRV_MODE) : UInt32(XDP_FLAGS_SKB_MODE))
        try check("attach '\(name)' to interface \(index) in \(mode.rawValue) mode", bpf_xdp_attach(Int32(index), fd, flags, nil))
    }

    /// Removes whatever XDP program is attached directly in `mode` to the interface.
    public static func detachXDPDirectly(fromInterfaceIndex index: UInt32, mode: XDPMode) throws(BPFError) {
        let flags = mode == .native ? UInt32(XDP_FLAGS_DRV_MODE) : UInt32(XDP_FLAGS_SKB_MODE)
        try check("detach the XDP program of interface \(index)", bpf_xdp_detach(Int32(index), flags, nil))
    }
}
