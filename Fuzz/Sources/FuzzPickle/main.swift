import FuzzDriver

runLibFuzzer { fuzz($0, $1) }
