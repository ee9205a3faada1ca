/// The field syntax of options such as `--disk PATH,format=qcow2,readonly=on`: fields are
/// separated by single commas, and a doubled comma is a comma inside a field (QEMU's escaping,
/// so a path may contain one). Foundation-free: the jailer links it too, and must read a
/// `--disk` exactly as the monitor will.
public enum OptionFields {
    /// Splits `text` on single commas; ",," becomes "," within a field. "" gives [""].
    public static func split(_ text: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var chars = text.makeIterator()
        var pending = chars.next()
        while let c = pending {
            pending = chars.next()
            if c == "," {
                if pending == "," {
                    current.append(",")
                    pending = chars.next()
                } else {
                    fields.append(current)
                    current = ""
                }
            } else {
                current.append(c)
            }
        }
        fields.append(current)
        return fields
    }
}
