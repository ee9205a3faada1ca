import SkiffCLI
SkiffVMMCommand.runAndExit()
