#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension UnixTime {
    /// The host's wall clock (CLOCK_REALTIME).
    @Sendable
    public static func systemNow() -> UnixTime {
        var spec = timespec()
        unsafe clock_gettime(CLOCK_REALTIME, &spec)
        return UnixTime(seconds: Int64(spec.tv_sec), nanoseconds: Int64(spec.tv_nsec))
    }
}
