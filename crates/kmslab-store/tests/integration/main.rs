//! Integration tests of the registry against real SQLite files in temporary directories.

mod basics;
mod batching;
mod crash;
mod full;
mod paging;
mod support;
