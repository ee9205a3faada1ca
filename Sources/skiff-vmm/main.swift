import SkiffCLI
SkiffVMMCommand.main()
