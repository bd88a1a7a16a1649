//! A sandbox that runs nothing: it records each request and answers with a scripted outcome.
//! For unit tests of scheduling and caching; never used by the binary.
