/// A coding key for any name, used to list the keys a document really has.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// Throws when the object being decoded has a key outside `Keys` (a typo in a spec must
    /// not be silently ignored).
    func refuseUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type, in type: String) throws {
        let known = Set(Keys.allCases.map(\.stringValue))
        let container = try self.container(keyedBy: AnyKey.self)
        let unknown = container.allKeys.map(\.stringValue).filter { !known.contains($0) }.sorted()
        guard unknown.isEmpty else {
            let path = codingPath.map(\.stringValue).filter { !$0.isEmpty }.joined(separator: ".")
            let place = path.isEmpty ? type : "\(type) at \(path)"
            throw SpecError("unknown field\(unknown.count > 1 ? "s" : "") \(unknown.map { "'\($0)'" }.joined(separator: ", ")) in \(place) (known: \(known.sorted().joined(separator: ", ")))")
        }
    }
}
