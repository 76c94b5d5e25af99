//! The `meridian` binary end to end (`CARGO_BIN_EXE_meridian` exists only for
//! tests of the package that holds the binary), against an app the test starts
//! with the server's own harness.

#[path = "../../../tests/api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

mod env;
mod keys;
mod operator;
