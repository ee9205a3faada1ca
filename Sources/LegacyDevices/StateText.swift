/// Wording shared by the `validate()` reasons of the saved device states.
enum StateText {
    /// `value` as 0x-prefixed lowercase hexadecimal.
    static func hex<T: BinaryInteger>(_ value: T) -> String {
        "0x" + String(value, radix: 16)
    }
}
