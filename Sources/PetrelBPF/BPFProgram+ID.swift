import CLibBPF
import Glibc

extension BPFProgram {
    /// A program already loaded in the kernel, by its id (as `ip link` or bpftool show it),
    /// for example another process's attached balancer, to run it with BPF_PROG_TEST_RUN.
    public static func loaded(id: UInt32) throws(BPFError) -> BPFProgram {
        let fd = try check("bpf_prog_get_fd_by_id(\(id))", bpf_prog_get_fd_by_id(id))
        return BPFProgram(name: "id \(id)", fd: fd)
    }
}
