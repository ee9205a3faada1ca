/// The command lines a multiboot boot loader hands over, shaped as GRUB and QEMU shape them:
/// kernels parse them into argv and take the first word for their own name.
///
/// QEMU (`hw/i386/multiboot.c`) builds the kernel's as `"%s %s"` of the `-kernel` path exactly as
/// given (not its basename) and the `-append` text, so an empty `-append` leaves a trailing space;
/// each `-initrd` element, `"file args"`, is that module's command line as written.
public enum MultibootCommandLine {
    /// The kernel's command line: `fileName`, one space, `arguments` ("k.elf a b", or "k.elf ").
    public static func kernel(fileName: String, arguments: String) -> String {
        fileName + " " + arguments
    }

    /// A module's command line: `fileName`, then one space and `arguments` when there are any.
    public static func module(fileName: String, arguments: String) -> String {
        arguments.isEmpty ? fileName : fileName + " " + arguments
    }
}
