//! Whether this worker should take jobs: the gate (drain lock, remote
//! drain, quarantine, storage), the quarantine and its self-test, the
//! shared storage's health, and the state the worker reports.

pub mod gate;
pub mod quarantine;
pub mod selftest;
pub mod state;
pub mod storage;
