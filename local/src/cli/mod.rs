//! Pieces of the `meridian` command line shared by its commands: output, and the
//! state directory's key set that signing commands need.

pub mod attest;
pub mod output;
pub mod state;
