import CBPFSupport
import Foundation

/// libbpf reports details (the verifier log above all) through a print callback.
/// This collects them so that a failed call can carry them in its BPFError.
enum LibbpfLog {
    private static let lock = NSLock()
    private static let installOnce: Void = petrel_log_install()

    /// Runs `body` and returns its result along with what libbpf printed meanwhile.
    /// Calls are serialised so that each sees only its own messages.
    static func capturing<T>(_ body: () throws -> T) rethrows -> (T, String) {
        lock.lock()
        defer { lock.unlock() }
        _ = installOnce
        petrel_log_reset()
        let result = try body()
        var text = [CChar](repeating: 0, count: 64 * 1024)
        petrel_log_copy(&text, UInt(text.count))
        return (result, String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
