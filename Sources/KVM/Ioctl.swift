#if canImport(Glibc)
import Glibc
#endif
import CKVM
import SystemExtras

/// ioctl with a pointer argument; retries EINTR.
@inline(__always)
func ioctlPointer(_ fd: Int32, _ request: UInt, _ name: @autoclosure () -> String, _ arg: UnsafeMutableRawPointer?) throws(KVMError) -> Int32 {
    do {
        return try retryingOnInterrupt(name()) { unsafe ckvm_ioctl_ptr(fd, request, arg) }
    } catch {
        throw .ioctl(error)
    }
}

/// ioctl with an integer argument; retries EINTR.
@inline(__always)
func ioctlValue(_ fd: Int32, _ request: UInt, _ name: @autoclosure () -> String, _ arg: UInt = 0) throws(KVMError) -> Int32 {
    do {
        return try retryingOnInterrupt(name()) { ckvm_ioctl_val(fd, request, arg) }
    } catch {
        throw .ioctl(error)
    }
}

/// ioctl passing a pointer to `value`.
@inline(__always)
func ioctlInOut<T>(_ fd: Int32, _ request: UInt, _ name: @autoclosure () -> String, _ value: inout T) throws(KVMError) {
    let r = unsafe withUnsafeMutablePointer(to: &value) { unsafe ckvm_ioctl_ptr(fd, request, $0) }
    if r < 0 {
        let code = errno
        if code == EINTR {
            try ioctlInOut(fd, request, name(), &value)
            return
        }
        throw .ioctl(SystemError(name(), code: code))
    }
}
