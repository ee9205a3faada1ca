import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import Synchronization

/// `GET /vms/{name}/console` upgraded to a WebSocket: binary frames carry the console's
/// output (recent output first) and, from the one client that holds the VM's writer lease
/// (`?write=true`, first come), input to the guest. Other clients only watch.
struct ConsoleEndpoint: Sendable {
    let supervisor: Supervisor

    func register(on router: Router<BasicWebSocketRequestContext>) {
        let supervisor = self.supervisor
        router.ws("/vms/{name}/console") { request, context in
            guard let name = context.parameters.get("name") else { throw DaemonError(.invalidRequest, "missing VM name") }
            _ = try supervisor.record(name)
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            guard let name = context.requestContext.parameters.get("name") else { return }
            let files = supervisor.files(name)
            let wantsWrite = context.request.uri.queryParameters.get("write") == "true"
            let live = supervisor.capabilities.consoleSocket && (try? supervisor.runningSocket(name)) != nil
            let source: ConsoleSource
            do {
                source = try ConsoleSource(socketPath: live ? files.consoleSocket : nil, logPath: files.consoleLog)
            } catch {
                try? await outbound.write(.text("skiffd: \(error)\r\n"))
                return
            }
            let writer = wantsWrite && source.acceptsInput && supervisor.consoleLease.claim(name)
            defer { if writer { supervisor.consoleLease.release(name) } }
            if wantsWrite && !writer {
                let why = source.acceptsInput ? "another client is typing into \(name)" : "this monitor takes no console input through the daemon"
                try? await outbound.write(.text("skiffd: read-only: \(why)\r\n"))
            }
            let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingNewest(256))
            let thread = Thread {
                source.pump { continuation.yield($0) }
                continuation.finish()
            }
            thread.start()
            let sender = Task {
                for await chunk in stream {
                    try await outbound.write(.binary(ByteBuffer(bytes: chunk)))
                }
            }
            do {
                for try await message in inbound.messages(maxSize: 1 << 16) {
                    guard writer else { continue }
                    switch message {
                    case .binary(let buffer): source.send(Array(buffer.readableBytesView))
                    case .text(let text): source.send(Array(text.utf8))
                    }
                }
            } catch {}
            source.stop()
            sender.cancel()
            _ = await sender.result
        }
    }
}

/// Who may type into each VM's console: at most one client at a time.
final class ConsoleLease: Sendable {
    private let holders = Mutex<Set<String>>([])

    func claim(_ name: String) -> Bool { holders.withLock { $0.insert(name).inserted } }
    func release(_ name: String) { _ = holders.withLock { $0.remove(name) } }
}
