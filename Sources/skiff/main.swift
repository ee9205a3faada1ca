import SkiffCLI
import VMCommands

// `skiff run` is the monitor's job: exec the skiff-vmm beside this binary first (see MonitorExec).
if CommandLine.arguments.count > 1, CommandLine.arguments[1] == "run" {
    MonitorExec.execMonitorIfBeside(arguments: Array(CommandLine.arguments.dropFirst(2)))
}
SkiffCommand.runDaemonMigrateIfAsked(Array(CommandLine.arguments.dropFirst()))
SkiffCommand.runAndExit()
