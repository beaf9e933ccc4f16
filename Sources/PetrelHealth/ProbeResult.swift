/// The outcome of one probe, in the words an operator reads in a log line.
public enum ProbeResult: Hashable, Sendable, CustomStringConvertible {
    case passed(String)
    case failed(Failure)

    public enum Failure: Hashable, Sendable, CustomStringConvertible {
        /// No answer within the check's timeout.
        case timeout
        /// The real (or a host on the way) refused: a TCP reset to the SYN, or ICMP port unreachable.
        case refused
        /// ICMP host or network unreachable, or no route.
        case unreachable
        /// The connection was reset after it was accepted.
        case reset
        /// An HTTP status that is not one of the expected codes.
        case httpStatus(Int)
        /// An answer that is not HTTP, or a connection closed before one.
        case badResponse(String)
        /// Any other socket error (errno name).
        case error(String)

        public var description: String {
            switch self {
            case .timeout: "timeout"
            case .refused: "refused"
            case .unreachable: "unreachable"
            case .reset: "reset"
            case .httpStatus(let code): "HTTP \(code)"
            case .badResponse(let what): "bad response (\(what))"
            case .error(let what): what
            }
        }
    }

    public var passed: Bool { if case .passed = self { true } else { false } }

    public var description: String {
        switch self {
        case .passed(let what): what
        case .failed(let failure): failure.description
        }
    }
}
