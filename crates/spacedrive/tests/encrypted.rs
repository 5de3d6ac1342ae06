//! The end-to-end suite again with every library the daemons create encrypted (and its key
//! remembered): the harness's encrypted mode (`e2e::encrypted_mode`). Everything above the
//! storage layer must work unchanged on an encrypted library.

mod e2e;
