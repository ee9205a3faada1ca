import ControlProtocol

extension VirtualMachine: ControlTarget {
    public func startMigration(_ request: MigrationRequest) throws(VMError) -> MigrationProgress {
        throw VMError("live migration is not available in this build", kind: .unsupported)
    }

    public func migrationProgress() -> MigrationProgress {
        MigrationProgress(phase: .none)
    }

    public func cancelMigration() throws(VMError) {
        throw VMError("no migration is in progress", kind: .invalidState)
    }
}
