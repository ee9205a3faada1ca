// The header declares libFuzzer's LLVMFuzzerRunDriver; libFuzzer itself provides it.
