//! `kmslab products`: the catalog as a table and as JSON, from the real binary.

use std::process::Command;

use serde_json::Value;

fn kmslab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kmslab")).args(args).output().unwrap()
}

#[test]
fn products_json_lists_every_product_with_threshold_channel_and_gvlk() {
    let out = kmslab(&["products", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 41);
    let find = |name: &str| list.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name} listed"));
    // (name, display name, counted group, threshold, family, GVLK)
    let cases = [
        ("vista-business", "Windows(TM) Vista, Business edition", "windows", 25, "vista", "YFKBB-PQJJV-G996G-VWGXY-2V3X8"),
        (
            "server2008-datacenter-no-hyperv",
            "Windows Server(R) 2008, ServerDatacenterV edition",
            "windows",
            5,
            "vista",
            "22XQ2-VRXRG-P8D42-K34TD-G3QQC",
        ),
        ("win7-enterprise", "Windows(R) 7, Enterprise edition", "windows", 25, "windows7", "33PXH-7Y6KF-2VJC9-XBBR8-HVTHH"),
        (
            "office2010-visio-premium",
            "Office 14, OfficeVisioPrem-KMS_Client edition",
            "office-2010",
            5,
            "office2010",
            "D9DWC-HPYVV-JGF4P-BTWQB-WX8BJ",
        ),
    ];
    for (name, display, group, threshold, family, gvlk) in cases {
        let p = find(name);
        assert_eq!(p["display_name"], display, "{name}");
        assert_eq!(p["channel"], "VOLUME_KMSCLIENT", "{name}");
        assert_eq!(p["counted_group"], group, "{name}");
        assert_eq!(p["threshold"], threshold, "{name}");
        assert_eq!(p["client_family"], family, "{name}");
        assert_eq!(p["gvlk"], gvlk, "{name}");
    }
}

#[test]
fn products_table_and_a_bad_catalog_file() {
    let out = kmslab(&["products"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("NAME "), "{text}");
    assert_eq!(text.lines().count(), 42, "a header and a line per product");
    assert!(text.lines().any(|l| l.starts_with("office2010-sharepoint-workspace ") && l.ends_with("QYYW6-QP4CB-MBV6G-HYMCJ-4T3J4")));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[product]]\nname = \"Bad Name\"\n").unwrap();
    let out = kmslab(&["products", "--catalog", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("kmslab: --catalog ") && err.contains("bad.toml"), "{err}");
}
