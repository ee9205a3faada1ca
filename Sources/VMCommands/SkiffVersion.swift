/// The version every Skiff program prints for `--version`.
public enum SkiffVersion {
    public static let current = "0.4.0"
}
