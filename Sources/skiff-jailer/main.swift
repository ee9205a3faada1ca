import Jailer

// See docs/jailer.md. Everything lives in the Jailer target so the tests can reach it.
Jailer.main(Array(CommandLine.arguments.dropFirst()))
