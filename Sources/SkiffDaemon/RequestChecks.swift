import SkiffSpec

/// The bounds the OpenAPI document states, enforced before a value is used (the generated
/// code checks types, not minimums, maximums or patterns): a hostile number is a 400, never
/// a trap in a conversion.
enum RequestChecks {
    static func range<T: BinaryInteger>(_ value: T?, _ bounds: ClosedRange<T>, _ field: String) throws(DaemonError) {
        guard let value else { return }
        guard bounds.contains(value) else {
            throw DaemonError(.invalidRequest, "\(field) must be between \(bounds.lowerBound) and \(bounds.upperBound), not \(value)")
        }
    }

    static func name(_ name: String, _ what: String = "VM") throws(DaemonError) {
        guard VMSpec.isValidName(name) else {
            throw DaemonError(.invalidRequest, "\(what) name '\(name.prefix(80))' must be 1 to 63 lower-case letters, digits or '-'")
        }
    }

    static func device(_ device: String) throws(DaemonError) {
        let kind = device.hasPrefix("disk") ? device.dropFirst(4) : device.hasPrefix("net") ? device.dropFirst(3) : nil
        guard let index = kind, (1...2).contains(index.count), index.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw DaemonError(.invalidRequest, "device '\(device.prefix(40))' must be diskN or netN")
        }
    }
}
