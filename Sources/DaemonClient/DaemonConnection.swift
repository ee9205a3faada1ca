import AsyncHTTPClient
import Foundation
import HTTPTypes
import NIOCore
import OpenAPIAsyncHTTPClient
import OpenAPIRuntime
import SkiffAPI

/// A connection to skiffd: the generated API client over the daemon's unix socket (or TCP
/// with a bearer token).
public final class DaemonConnection: Sendable {
    public let client: Client
    let http: HTTPClient
    /// The unix socket, when connected through one.
    public let socketPath: String?

    /// The socket `SKIFF_SOCKET` names, else the default.
    public static var defaultSocket: String {
        ProcessInfo.processInfo.environment["SKIFF_SOCKET"] ?? "/run/skiff/skiffd.sock"
    }

    /// Connects through the unix socket at `socketPath`.
    public init(socketPath: String, timeout: TimeAmount = .seconds(120)) throws {
        self.socketPath = socketPath
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(5), read: timeout)
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        var components = URLComponents()
        components.scheme = "http+unix"
        components.percentEncodedHost = socketPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? socketPath
        guard let url = components.url else { throw DaemonClientError("bad socket path \(socketPath)") }
        client = Client(serverURL: url, transport: AsyncHTTPClientTransport(configuration: .init(client: http, timeout: timeout)))
    }

    /// Connects to `baseURL` (http:// or https://) sending `token` as a bearer token.
    public init(baseURL: URL, token: String, timeout: TimeAmount = .seconds(120)) {
        socketPath = nil
        http = HTTPClient(eventLoopGroupProvider: .singleton)
        client = Client(serverURL: baseURL, transport: AsyncHTTPClientTransport(configuration: .init(client: http, timeout: timeout)),
                        middlewares: [BearerToken(token: token)])
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    struct BearerToken: ClientMiddleware {
        let token: String
        func intercept(_ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
                       next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)) async throws -> (HTTPResponse, HTTPBody?) {
            var request = request
            request.headerFields[.authorization] = "Bearer \(token)"
            return try await next(request, body, baseURL)
        }
    }
}

/// A failure on the client side, or an error the daemon answered with.
public struct DaemonClientError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var code: String?
    public var status: Int?
    public init(_ message: String, code: String? = nil, status: Int? = nil) {
        self.message = message
        self.code = code
        self.status = status
    }
    public var description: String { code.map { "\(message) (\($0))" } ?? message }

    /// The daemon's error response as an error.
    public static func from(status: Int, _ response: Components.Responses._Error) -> DaemonClientError {
        if case .json(let e) = response.body { return DaemonClientError(e.message, code: e.code.rawValue, status: status) }
        return DaemonClientError("HTTP status \(status)", status: status)
    }
}
