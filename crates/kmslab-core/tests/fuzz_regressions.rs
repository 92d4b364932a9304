//! Inputs that crashed a fuzz target (`fuzz/`, see docs/reliability.md), kept as bytes so
//! the crash can never come back. Each entry says which target found it and what broke.

use kmslab_core::Timestamp;
use kmslab_core::catalog::Catalog;

/// A user catalog file must either be refused or give products whose accessors all work.
fn check_catalog(input: &[u8]) {
    let text = std::str::from_utf8(input).expect("the fuzz targets take UTF-8");
    let mut catalog = Catalog::builtin();
    if catalog.extend_from_toml(text).is_ok() {
        for p in catalog.products() {
            let partial = p.partial_key();
            assert!(partial.chars().count() <= 5, "{partial:?}");
            assert!(p.gvlk.ends_with(partial));
        }
    }
}

/// catalog_toml: a GVLK ending in three no-break spaces (U+00A0, two bytes each) passes
/// validation, because `normalize_gvlk` drops whitespace, and `Product::partial_key` then
/// sliced the last five *bytes*, inside a character: "byte index 30 is not a char boundary".
#[test]
fn catalog_gvlk_ending_in_multibyte_whitespace_has_a_partial_key() {
    check_catalog(
        b"[[product]]\n\
          name = \"lab-widget\"\n\
          display_name = \"Lab Widget\"\n\
          description = \"d\"\n\
          gvlk = \"AAAAA-BBBBB-CCCCC-DDDDD-EEEEE\xc2\xa0\xc2\xa0\xc2\xa0\"\n\
          application_id = \"55c92734-d682-4d71-983e-d6ec3f16059f\"\n\
          activation_id = \"00000000-0000-4000-8000-000000000001\"\n\
          counted_group = \"windows\"\n\
          required_count = 5\n\
          kind = \"server\"\n\
          served_by = [\"kms-c\"]\n\
          id_source = \"kmslab\"\n",
    );
}

/// host_config (probing the target with edge values, not by the fuzzer itself): a time with
/// an offset that takes it out of years 0000..9999 in UTC was accepted
/// (`time_origin = "0000-01-01T00:00:00+01:00"`), and its `Display` wrote
/// `-001-12-31T23:00:00Z` (`10000-01-01T00:59:59.999Z` at the other end), which
/// `parse_rfc3339` refuses: a configuration kms-host ran with could not be written back.
#[test]
fn rfc3339_times_display_as_text_that_parses_again() {
    for text in ["0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999-01:00", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"] {
        if let Ok(t) = Timestamp::parse_rfc3339(text) {
            let shown = t.to_string();
            assert_eq!(Timestamp::parse_rfc3339(&shown), Ok(t), "{text} shows as {shown}");
        }
    }
}
