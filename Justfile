# Thin aliases for the cargo xtask verbs (`cargo xtask` needs nothing but Rust).

# End-to-end demo on the development platform (KEE1-L1 + swtpm).
demo *ARGS:
    cargo xtask demo {{ARGS}}

# Install what the tests need and run every test.
test:
    cargo xtask test

# Run the benchmarks; `just bench spine_evaluate --json`.
bench *ARGS:
    cargo xtask bench {{ARGS}}
