//! `tartanlab bench ...`: benchmarks that deploy their own labs and print Tartan's figures
//! beside the reference implementations' from the same run (never timed assertions in tests).

pub mod bgp;
pub mod birdctl;
