import SkiffCLI
SkiffCommand.main()
