//! Integration tests of kmslab-dns against real DNS servers: BIND9 `named` and the embedded
//! hickory server, all on 127.0.0.1 with ports chosen at run time.

mod bind;
mod embedded;
mod support;
