//! The integration suite: one binary, the real app on port 0, a fresh database per test.

mod helpers;

mod basics;
mod isolation;
mod limits;
