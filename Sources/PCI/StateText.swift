/// Wording shared by the `validate()` reasons of the saved PCI states.
enum StateText {
    /// `value` as 0x-prefixed lowercase hexadecimal.
    static func hex<T: BinaryInteger>(_ value: T) -> String {
        "0x" + String(value, radix: 16)
    }
}
