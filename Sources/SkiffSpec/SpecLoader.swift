import Foundation
import Yams

/// Reads specs from files and documents, JSON or YAML.
public enum SpecLoader {
    /// Largest spec document accepted.
    public static let maxDocumentLength = 1 << 20

    /// Parses `text` (JSON when it starts with `{`, YAML otherwise) and validates the result.
    public static func parse(_ text: String) throws(SpecError) -> VMSpec {
        guard text.utf8.count <= maxDocumentLength else { throw SpecError("the spec is larger than \(maxDocumentLength) bytes") }
        let trimmed = text.drop { $0.isWhitespace }
        let spec: VMSpec
        do {
            if trimmed.first == "{" {
                spec = try JSONDecoder().decode(VMSpec.self, from: Data(text.utf8))
            } else {
                spec = try YAMLDecoder().decode(VMSpec.self, from: text)
            }
        } catch let error as SpecError {
            throw error
        } catch let error as DecodingError {
            throw SpecError(describe(error))
        } catch {
            throw SpecError("the spec is not valid YAML or JSON: \(error)")
        }
        try spec.validate()
        return spec
    }

    /// Reads and parses the file at `path`.
    public static func load(path: String) throws(SpecError) -> VMSpec {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw SpecError("cannot read \(path)") }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.read(upToCount: maxDocumentLength + 1) ?? Data()
        } catch {
            throw SpecError("cannot read \(path): \(error.localizedDescription)")
        }
        guard data.count <= maxDocumentLength else { throw SpecError("\(path) is larger than \(maxDocumentLength) bytes") }
        guard let text = String(data: data, encoding: .utf8) else { throw SpecError("\(path) is not UTF-8 text") }
        do {
            return try parse(text)
        } catch {
            throw SpecError("\(path): \(error.message)")
        }
    }

    /// One line for a decoding error, naming the field.
    public static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            let p = keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "the spec" : p.replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = context.codingPath.isEmpty ? "" : " in \(path(context.codingPath))"
            return "missing field '\(key.stringValue)'\(at)"
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)): expected \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): expected \(typeName(type)), found null"
        case .dataCorrupted(let context):
            if let underlying = context.underlyingError as? SpecError { return underlying.message }
            return context.codingPath.isEmpty ? "the spec is not valid: \(context.debugDescription)"
                : "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is UInt64.Type: return "an integer"
        case is Double.Type: return "a number"
        default: return "\(type)".hasPrefix("Array") ? "a list" : "an object"
        }
    }
}
