import VMCommands
SkiffVMMCommand.runAndExit()
