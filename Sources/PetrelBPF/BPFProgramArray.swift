import CLibBPF
import Glibc

extension BPFMap {
    /// Stores `program` in slot `index` of a program array
    /// (BPF_MAP_TYPE_PROG_ARRAY), the table `bpf_tail_call` jumps through.
    /// The kernel refuses programs of another type than the array's first one.
    public func setProgram(at index: UInt32, to program: BPFProgram) throws(BPFError) {
        var key = index
        var value = UInt32(bitPattern: program.fd)
        try check("store program '\(program.name)' in '\(name)'[\(index)]", bpf_map_update_elem(fd, &key, &value, UInt64(BPF_ANY)))
    }
}
