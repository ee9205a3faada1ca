import SkiffCLI

SkiffCommand.runAndExit()
