import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OpenAPIRuntime
import SkiffSpec

/// Every failure becomes a JSON body `{"code": ..., "message": ...}`: malformed requests and
/// unknown fields (the generated decoders' errors) are `invalidRequest`, unmatched routes
/// `notFound`, and anything unexpected `internal`.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as DaemonError {
            return Self.response(error)
        } catch let error as HTTPError {
            let code: DaemonError.Code
            switch error.status.code {
            case 404, 405: code = .notFound
            case 413: code = .payloadTooLarge
            case 401: code = .unauthorized
            case 400..<500: code = .invalidRequest
            default: code = .internal
            }
            var response = Self.response(DaemonError(code, error.body ?? error.status.reasonPhrase))
            response.status = error.status
            return response
        } catch let error as ServerError {
            return Self.response(DaemonError(.invalidRequest, Self.describe(error)))
        } catch {
            return Self.response(DaemonError(.internal, "\(error)"))
        }
    }

    static func describe(_ error: ServerError) -> String {
        var underlying: any Error = error.underlyingError
        if let e = underlying as? DecodingError { return "invalid request: \(SpecLoader.describe(e))" }
        while let e = underlying as? ServerError { underlying = e.underlyingError }
        if let e = underlying as? DecodingError { return "invalid request: \(SpecLoader.describe(e))" }
        if let e = underlying as? DaemonError { return e.message }
        return "invalid request: \(error.causeDescription)"
    }

    static func response(_ error: DaemonError) -> Response {
        let body = (try? JSONEncoder().encode(["code": error.code.rawValue, "message": error.message])) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        // A refused body may still be arriving: do not read it, close after the answer.
        if error.code == .payloadTooLarge { headers[.connection] = "close" }
        return Response(status: .init(code: error.code.httpStatus), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Refuses bodies over `limit` bytes (by Content-Length, or while reading a chunked body).
struct BodyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let limit: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw DaemonError(.payloadTooLarge, "request body of \(length) bytes is larger than \(limit)")
        }
        guard request.method == .post || request.method == .put || request.method == .patch else { return try await next(request, context) }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch {
            throw DaemonError(.payloadTooLarge, "request body is larger than \(limit) bytes")
        }
        request.body = .init(buffer: buffer)
        return try await next(request, context)
    }
}

/// Requires `Authorization: Bearer TOKEN` (the TCP listener); compared in constant time.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw DaemonError(.unauthorized, "missing Authorization: Bearer token")
        }
        let given = Array(header.utf8)
        let prefix = Array("Bearer ".utf8)
        guard given.count == prefix.count + token.count, Array(given.prefix(prefix.count)) == prefix else {
            throw DaemonError(.unauthorized, "wrong token")
        }
        var difference: UInt8 = 0
        for (a, b) in zip(given.dropFirst(prefix.count), token) { difference |= a ^ b }
        guard difference == 0 else { throw DaemonError(.unauthorized, "wrong token") }
        return try await next(request, context)
    }
}
