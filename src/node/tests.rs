//! Unit tests of the node core, driven with a fake clock.
