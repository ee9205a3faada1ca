import SkiffSpec
import SkiffStore

/// A request the daemon refused or could not carry out: a stable code for programs (the API's
/// `Error.code`) and one line for people.
public struct DaemonError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        case invalidRequest, notFound, conflict, invalidState, capacityExceeded, unauthorized, payloadTooLarge
        case monitorFailed, storageFull, unsupported, `internal`

        /// The HTTP status that carries this code.
        public var httpStatus: Int {
            switch self {
            case .invalidRequest: return 400
            case .unauthorized: return 401
            case .notFound: return 404
            case .conflict, .invalidState: return 409
            case .payloadTooLarge: return 413
            case .capacityExceeded: return 422
            case .unsupported: return 501
            case .monitorFailed: return 502
            case .storageFull: return 507
            case .internal: return 500
            }
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    static func notFound(_ name: String) -> DaemonError { DaemonError(.notFound, "no VM named '\(name)'") }

    /// Maps lower layers' errors to codes.
    static func from(_ error: any Error) -> DaemonError {
        switch error {
        case let e as DaemonError: return e
        case let e as SpecError: return DaemonError(.invalidRequest, e.message)
        case let e as StoreError:
            switch e.kind {
            case .full: return DaemonError(.storageFull, e.message)
            case .conflict: return DaemonError(.conflict, e.message)
            case .notFound: return DaemonError(.notFound, e.message)
            case .failed: return DaemonError(.internal, e.message)
            }
        default: return DaemonError(.internal, "\(error)")
        }
    }
}
