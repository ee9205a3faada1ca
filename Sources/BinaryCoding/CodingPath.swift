/// One step from a container to one of its values.
enum PathComponent {
    /// A keyed-container entry.
    case key(any CodingKey)
    /// An array element.
    case index(Int)

    /// The step as `Encoder.codingPath` and `Decoder.codingPath` report it.
    var codingKey: any CodingKey {
        switch self {
        case .key(let key): key
        case .index(let index): IndexKey(index)
        }
    }

    init(_ key: any CodingKey) {
        self = if let index = key as? IndexKey { .index(index.index) } else { .key(key) }
    }
}

/// The coding key of an array element in a coding path.
struct IndexKey: CodingKey {
    let index: Int
    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.init(intValue) }
    var stringValue: String { "Index \(index)" }
    var intValue: Int? { index }
}

/// A coding key given by its name: "super", and keys read from the input.
struct NamedKey: CodingKey {
    let stringValue: String
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.init(stringValue) }
    init?(intValue: Int) { nil }
    var intValue: Int? { nil }

    /// The key `superEncoder()` and `superDecoder()` use.
    static let superKey = NamedKey("super")
}

/// An encoder or decoder of one value, linked to the one whose container holds that value.
protocol CodingPathNode: AnyObject {
    var parent: Self? { get }
    /// The step from the parent's container to this value; nil at the top level.
    var component: PathComponent? { get }
}

extension CodingPathNode {
    var pathComponents: [PathComponent] {
        var components: [PathComponent] = []
        var node: Self? = self
        while let current = node {
            if let component = current.component { components.append(component) }
            node = current.parent
        }
        return components.reversed()
    }

    var codingPath: [any CodingKey] { pathComponents.map(\.codingKey) }

    /// This value's path (with `component` appended) as error messages show it.
    func path(appending component: PathComponent? = nil) -> String {
        var components = pathComponents
        if let component { components.append(component) }
        return renderPath(components)
    }
}

/// Renders a coding path like `vcpus[1].lapic` or `devices["virtio-net 0"].queues[2]`.
func renderPath(_ components: [PathComponent]) -> String {
    var text = ""
    for component in components {
        switch component {
        case .index(let index):
            text += "[\(index)]"
        case .key(let key):
            let name = key.stringValue
            if !name.isEmpty, name.utf8.allSatisfy(isPlainNameByte) {
                text += text.isEmpty ? name : "." + name
            } else {
                text += "[\"" + sanitized(name, maxCharacters: 64, escapingQuotes: true) + "\"]"
            }
        }
    }
    return text
}

private func isPlainNameByte(_ byte: UInt8) -> Bool {
    switch byte {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
         UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
        true
    default:
        false
    }
}

/// Text from the input or from a type's own errors made safe for a one-line message: control,
/// format and separator characters are escaped as `\u{…}` and long text is cut short.
func sanitized(_ text: String, maxCharacters: Int, escapingQuotes: Bool) -> String {
    var result = ""
    var characters = 0
    for scalar in text.unicodeScalars {
        guard characters < maxCharacters else {
            result += "…"
            break
        }
        characters += 1
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .unassigned, .surrogate:
            result += "\\u{" + String(scalar.value, radix: 16) + "}"
        default:
            if escapingQuotes && (scalar == "\"" || scalar == "\\") { result += "\\" }
            result.unicodeScalars.append(scalar)
        }
    }
    return result
}
