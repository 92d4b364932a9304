//! `kms-client --version` prints the package version and the git revision it was built from.

#[test]
fn kms_client_version_shows_version_and_git_revision() {
    kmslab_test_support::assert_version_line(env!("CARGO_BIN_EXE_kms-client"), "kms-client", env!("CARGO_PKG_VERSION"));
}
