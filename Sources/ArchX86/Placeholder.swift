// ArchX86 target.
