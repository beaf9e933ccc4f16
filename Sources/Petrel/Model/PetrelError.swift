import PetrelBPF

/// Why the control plane refused or failed a request. Validation errors name
/// the field, the value and what was expected; nothing was written when one
/// is thrown.
public enum PetrelError: Error, CustomStringConvertible, Sendable {
    /// A request was rejected before anything was written.
    case invalid(field: String, value: String, expected: String)
    /// A map's capacity would be exceeded.
    case limitExceeded(limit: String, requested: Int, maximum: Int)
    /// The kernel or libbpf refused an operation.
    case kernel(BPFError)
    /// The named VIP or real does not exist.
    case notFound(String)

    public var description: String {
        switch self {
        case let .invalid(field, value, expected):
            return "\(field): \(expected)" + (value.isEmpty ? "" : ", got \(value)")
        case let .limitExceeded(limit, requested, maximum):
            return "\(limit): \(requested) requested, the limit is \(maximum)"
        case let .kernel(error):
            return error.description
        case let .notFound(what):
            return "\(what) not found"
        }
    }
}

/// Runs kernel-facing code so that every public API throws PetrelError.
func kernel<T>(_ body: () throws -> T) throws(PetrelError) -> T {
    do {
        return try body()
    } catch let error as PetrelError {
        throw error
    } catch let error as BPFError {
        throw .kernel(error)
    } catch {
        throw .kernel(BPFError("\(error)", errno: 0))
    }
}
