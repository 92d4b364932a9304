//! `kmslab products`: the product catalog as a table (or JSON), so the names `--products`,
//! `--product` and scenario files take can be looked up with their thresholds and GVLKs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kmslab_core::catalog::{Catalog, Product};
use serde_json::{Value, json};

/// Flags of `kmslab products`.
#[derive(Debug, Args)]
pub struct ProductsArgs {
    /// Extra catalog file adding products (the format of `--catalog` elsewhere).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Print the catalog as one JSON array instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the catalog. A bad `--catalog` file is a usage error (exit 2).
pub fn run(args: ProductsArgs) -> anyhow::Result<ExitCode> {
    let mut catalog = Catalog::builtin();
    if let Some(path) = &args.catalog {
        let added =
            std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| catalog.extend_from_toml(&t).map_err(|e| e.to_string()));
        if let Err(e) = added {
            eprintln!("kmslab: --catalog {}: {e}", path.display());
            return Ok(ExitCode::from(2));
        }
    }
    if args.json {
        println!("{}", Value::Array(catalog.products().iter().map(|p| product_json(&catalog, p)).collect()));
    } else {
        print!("{}", table(&catalog));
    }
    Ok(ExitCode::SUCCESS)
}

/// The channel named in a `Description:` line (`..., VOLUME_KMSCLIENT channel`).
fn channel(p: &Product) -> &str {
    let d = p.description.strip_suffix(" channel").unwrap_or(&p.description);
    d.rsplit(", ").next().unwrap_or(d)
}

fn counted_group(catalog: &Catalog, p: &Product) -> String {
    catalog.counted_group(&p.kms_counted_id).map_or_else(|| p.counted_group.clone(), |g| g.name.clone())
}

fn product_json(catalog: &Catalog, p: &Product) -> Value {
    json!({
        "name": p.name,
        "display_name": p.display_name,
        "channel": channel(p),
        "counted_group": counted_group(catalog, p),
        "threshold": p.required_count,
        "gvlk": p.gvlk,
        "client_family": p.client_family.name(),
        "served_by": p.served_by,
        "activation_id": p.activation_id.to_string(),
        "application_id": p.application_id.to_string(),
        "rearm_count": p.rearm_count(),
    })
}

fn table(catalog: &Catalog) -> String {
    let header = ["NAME", "DISPLAY NAME", "CHANNEL", "COUNTED GROUP", "THRESHOLD", "FAMILY", "GVLK"].map(str::to_owned);
    let rows: Vec<[String; 7]> = catalog
        .products()
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.display_name.clone(),
                channel(p).to_owned(),
                counted_group(catalog, p),
                p.required_count.to_string(),
                p.client_family.name().to_owned(),
                p.gvlk.clone(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_is_read_from_the_description() {
        let c = Catalog::builtin();
        for name in ["win7-enterprise", "vista-business", "server2008-web", "office2010-word"] {
            assert_eq!(channel(c.product_by_name(name).unwrap()), "VOLUME_KMSCLIENT", "{name}");
        }
    }

    #[test]
    fn the_table_has_a_line_per_product_in_aligned_columns() {
        let c = Catalog::builtin();
        let t = table(&c);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), c.products().len() + 1);
        let gvlk_at = lines[0].find("GVLK").unwrap();
        let vista = lines.iter().find(|l| l.starts_with("vista-enterprise ")).unwrap();
        assert_eq!(&vista[gvlk_at..], "VKK3X-68KWM-X2YGT-QR4M6-4BWMV");
        assert!(vista.contains("Windows(TM) Vista, Enterprise edition") && vista.contains(" windows ") && vista.contains(" vista "));
    }
}
