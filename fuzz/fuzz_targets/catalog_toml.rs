//! Fuzz target: arbitrary UTF-8 as a user catalog file added to the built-in catalog.
//! It never panics; a refused file leaves the catalog exactly as it was; an accepted file
//! leaves a catalog whose lookups all work.
#![no_main]

use kmslab_core::catalog::Catalog;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn builtin() -> &'static Catalog {
    static BUILTIN: OnceLock<Catalog> = OnceLock::new();
    BUILTIN.get_or_init(Catalog::builtin)
}

fuzz_target!(|text: &str| {
    let before = builtin();
    let mut catalog = before.clone();
    match catalog.extend_from_toml(text) {
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_eq!(catalog.products(), before.products(), "a refused file changed the products");
            assert_eq!(catalog.counted_groups(), before.counted_groups(), "a refused file changed the counted groups");
            assert_eq!(catalog.host_key_groups(), before.host_key_groups(), "a refused file changed the host key groups");
            for p in before.products() {
                assert_eq!(catalog.product_by_activation_id(&p.activation_id).map(|q| &q.name), Some(&p.name));
            }
        }
        Ok(()) => {
            // Every product the file added is reachable by each of its keys, and the
            // accessors `slmgr /dli` uses work on it.
            for p in catalog.products() {
                assert_eq!(catalog.product_by_name(&p.name).map(|q| &q.name), Some(&p.name));
                assert_eq!(catalog.product_by_gvlk(&p.gvlk).map(|q| &q.name), Some(&p.name));
                assert_eq!(catalog.product_by_activation_id(&p.activation_id).map(|q| &q.name), Some(&p.name));
                assert!(catalog.counted_group(&p.kms_counted_id).is_some(), "{} has no counted group", p.name);
                assert!(p.served_by_any(&p.served_by));
                let _ = p.partial_key();
            }
        }
    }
});
