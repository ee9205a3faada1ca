extension BinaryDecoder {
    /// Bounds on what the decoder accepts, checked before any work or memory they would cost.
    ///
    /// Input over a limit fails with `BinaryCodingError.limitExceeded`. Lengths and counts are
    /// also checked against the bytes actually left in the input, so no allocation is ever sized
    /// by a count the input cannot back.
    public struct Limits: Sendable, Equatable {
        /// Largest input accepted at all, in bytes (checked before parsing).
        public var maxInputSize: Int
        /// Deepest nesting of containers (arrays and keyed containers); the top-level container
        /// is at depth 1. Decoding recurses once per level, skipped values included, and reads
        /// the entries of a keyed container once for each keyed container around it, so keep
        /// it modest.
        public var maxDepth: Int
        /// Most elements in one array, or entries in one keyed container.
        public var maxContainerCount: Int
        /// Longest string or key, in UTF-8 bytes.
        public var maxStringLength: Int
        /// Longest byte string, in bytes.
        public var maxByteStringLength: Int

        /// Limits with the given values, each defaulting to the value in `.default`.
        public init(
            maxInputSize: Int = 1 << 30,
            maxDepth: Int = 64,
            maxContainerCount: Int = 1 << 20,
            maxStringLength: Int = 1 << 20,
            maxByteStringLength: Int = 256 << 20
        ) {
            self.maxInputSize = maxInputSize
            self.maxDepth = maxDepth
            self.maxContainerCount = maxContainerCount
            self.maxStringLength = maxStringLength
            self.maxByteStringLength = maxByteStringLength
        }

        /// 1 GiB of input, depth 64, 2^20 elements per container, 1 MiB strings, 256 MiB byte strings.
        public static let `default` = Limits()

        /// The value of `limit`.
        func maximum(_ limit: BinaryCodingError.Limit) -> Int {
            switch limit {
            case .inputSize: maxInputSize
            case .depth: maxDepth
            case .containerCount: maxContainerCount
            case .stringLength: maxStringLength
            case .byteStringLength: maxByteStringLength
            }
        }
    }
}
