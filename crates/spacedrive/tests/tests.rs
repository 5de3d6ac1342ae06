//! End-to-end tests: the real `spacedrive` binary, a real daemon process per test, real SQLite
//! files and real directories in temp folders.

mod e2e;
