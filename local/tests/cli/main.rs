//! The `meridian` binary end to end (`CARGO_BIN_EXE_meridian` exists only for
//! tests of the package that holds the binary).

mod keys;
