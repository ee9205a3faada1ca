extension AML {
    static let ifOp: UInt8 = 0xA0
    static let lEqualOp: UInt8 = 0x93
    static let notifyOp: UInt8 = 0x86
    static let arg0Op: UInt8 = 0x68

    /// `Arg0` inside a method.
    public static let arg0: [UInt8] = [arg0Op]

    /// Encodes `If (predicate) { terms }`.
    public static func ifThen(_ predicate: [UInt8], _ terms: [[UInt8]]) throws(AMLError) -> [UInt8] {
        [ifOp] + (try withPackageLength(predicate + terms.flatMap { $0 }))
    }

    /// Encodes `LEqual (a, b)`.
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        [lEqualOp] + a + b
    }

    /// Encodes `Notify (path, value)`.
    public static func notify(_ path: String, _ value: UInt64) throws(AMLError) -> [UInt8] {
        [notifyOp] + (try nameString(path)) + integer(value)
    }
}
