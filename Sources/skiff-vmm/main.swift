#if canImport(Glibc)
import Glibc
#endif
import VMCommands
import VMM

StartTrace.mark("process")
// A plain restore skips ArgumentParser (see RestoreFastPath); everything else goes through it.
if let launch = RestoreFastPath.parse(Array(CommandLine.arguments.dropFirst())) {
    exit(VMLauncher.run(launch.source, apiSocket: launch.apiSocket, console: launch.console))
}
SkiffVMMCommand.runAndExit()
