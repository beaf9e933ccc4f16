/// The exit statuses of `petreld` and `petrel`, the same for both (see docs/operating.md).
/// Usage errors (an unknown option, a malformed argument) exit 64, from ArgumentParser.
public enum ExitStatus {
    /// Something failed that may succeed when tried again: the kernel refused, the
    /// interface is missing, the daemon cannot be reached.
    public static let failure: Int32 = 1
    /// The config file is invalid (or unreadable, or over the size limit): starting again
    /// with the same file cannot help, so the systemd unit does not restart on it.
    public static let invalidConfig: Int32 = 2
}
