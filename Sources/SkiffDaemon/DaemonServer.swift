import HostResources
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import OpenAPIHummingbird
import SkiffAPI

/// skiffd's HTTP servers: the API on the unix socket (mode 0660, group configurable) and,
/// optionally, on TCP with a bearer token and TLS.
public struct DaemonServer: Sendable {
    let supervisor: Supervisor
    let logger: Logger

    public init(supervisor: Supervisor, logger: Logger) {
        self.supervisor = supervisor
        self.logger = logger
    }

    typealias Context = BasicWebSocketRequestContext

    func makeRouter(token: String?) throws -> Router<Context> {
        let router = Router(context: Context.self)
        router.middlewares.add(JSONErrorMiddleware())
        router.middlewares.add(MetricsMiddleware())
        if let token { router.middlewares.add(BearerTokenMiddleware(token: Array(token.utf8))) }
        router.middlewares.add(BodyLimitMiddleware(limit: supervisor.configuration.maxBodyBytes))
        try APIHandler(supervisor: supervisor).registerHandlers(on: router)
        return router
    }

    /// The WebSocket routes (the console), behind the same authentication.
    func makeWebSocketRouter(token: String?) -> Router<Context> {
        let router = Router(context: Context.self)
        router.middlewares.add(JSONErrorMiddleware())
        if let token { router.middlewares.add(BearerTokenMiddleware(token: Array(token.utf8))) }
        ConsoleEndpoint(supervisor: supervisor).register(on: router)
        return router
    }

    /// Serves until the process is told to stop (SIGTERM, SIGINT).
    public func run() async throws {
        let configuration = supervisor.configuration
        let socket = configuration.socketPath
        let dir = (socket as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir.isEmpty ? "." : dir, withIntermediateDirectories: true)
        // The socket is created with mode 0660 (then its group is set).
        let old = umask(0o117)
        let group = configuration.socketGroup
        let logger = self.logger
        let unixApp = Application(
            router: try makeRouter(token: nil),
            server: .http1WebSocketUpgrade(webSocketRouter: makeWebSocketRouter(token: nil)),
            configuration: .init(address: .unixDomainSocket(path: socket), serverName: "skiffd"),
            onServerRunning: { _ in
                umask(old)
                if let group {
                    guard let gid = HostAccounts.read().groups[group] else {
                        logger.error("no group named \(group) in /etc/group: the socket keeps the daemon's group")
                        return
                    }
                    unsafe chown(socket, getuid(), gid)
                }
                unsafe chmod(socket, 0o660)
                logger.info("listening", metadata: ["socket": "\(socket)"])
            },
            logger: logger)
        var apps: [Application<RouterResponder<Context>>] = []
        if let address = configuration.tcpAddress {
            guard let tokenFile = configuration.tokenFile,
                  let token = try? String(contentsOfFile: tokenFile, encoding: .utf8).split(separator: "\n").first.map(String.init),
                  token.count >= 16 else {
                throw DaemonError(.invalidRequest, "--tcp needs --token-file naming a file whose first line is a token of at least 16 characters")
            }
            let parts = address.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]) else { throw DaemonError(.invalidRequest, "--tcp must be HOST:PORT") }
            var server: HTTPServerBuilder = .http1WebSocketUpgrade(webSocketRouter: makeWebSocketRouter(token: token))
            if let cert = configuration.tlsCertificate, let key = configuration.tlsKey {
                let tls = TLSConfiguration.makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                server = try .tls(server, tlsConfiguration: tls)
            }
            apps.append(Application(router: try makeRouter(token: token), server: server,
                                    configuration: .init(address: .hostname(String(parts[0]), port: port), serverName: "skiffd"),
                                    logger: logger))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await unixApp.runService() }
            for app in apps { group.addTask { try await app.runService() } }
            try await group.next()
            group.cancelAll()
        }
    }
}
