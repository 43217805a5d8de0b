//! Helpers for the end-to-end tests in `tests/tests/`: locating the built
//! binaries, making scratch directories.
