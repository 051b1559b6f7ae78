//! `trainstore catalog`: the versioned items a workspace keeps beside training sets and
//! models (snapshots committed by the demo or a pipeline, the feature registry, the offline
//! store's segments): list, show, export as Parquet, delete.

use clap::Subcommand;
use trainstore::Workspace;
use trainstore::core::{MountTable, Result, StorageOptions, UserName};

use crate::features::parquet_bytes;
use crate::training_sets::{print_json, reference};

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// List the items with their newest version, or one item's versions
    List {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// An item, to list its versions instead of the items
        item: Option<String>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Show one version: author, time, data files and metadata
    Show {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Write a version's rows (its Parquet or Arrow IPC data files) to a Parquet file
    Export {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// Where to write the Parquet file
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Delete a version (recorded with who did it; its files go at the next `workspace gc`)
    Delete {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
    },
}

pub async fn run(command: CatalogCommand, mounts: &MountTable, user: &UserName) -> Result<()> {
    let open = |workspace: String| async move {
        Ok::<_, trainstore::Error>(
            Workspace::open_existing(&workspace, mounts, &StorageOptions::new())
                .await?
                .with_user(user.clone()),
        )
    };
    match command {
        CatalogCommand::List {
            workspace,
            item: None,
            json,
        } => {
            let info = open(workspace).await?.info().await?;
            let items: Vec<(String, u64)> = info
                .items
                .iter()
                .map(|(item, version)| (item.to_string(), version.get()))
                .collect();
            if json {
                print_json(
                    &items
                        .into_iter()
                        .collect::<std::collections::BTreeMap<_, _>>(),
                );
            } else {
                for (item, version) in items {
                    println!("{item:<40} v{version}");
                }
            }
        }
        CatalogCommand::List {
            workspace,
            item: Some(item),
            json,
        } => {
            let (item, _) = reference(&item)?;
            let manifests = open(workspace).await?.catalog_versions(&item).await?;
            if json {
                print_json(&manifests);
            } else {
                for m in manifests {
                    let bytes: u64 = m.files.iter().map(|f| f.size).sum();
                    println!(
                        "{}@{:<7} {}  by {:<12} {} files, {bytes} bytes",
                        m.item,
                        m.version,
                        m.created_at,
                        m.author,
                        m.files.len()
                    );
                }
            }
        }
        CatalogCommand::Show {
            workspace,
            reference,
            json,
        } => {
            let manifest = open(workspace).await?.catalog_version(&reference).await?;
            if json {
                print_json(&manifest);
            } else {
                println!("{}@{}", manifest.item, manifest.version);
                println!("  author     {}", manifest.author);
                println!("  created    {}", manifest.created_at);
                for f in &manifest.files {
                    println!("  file       {} ({} bytes)", f.path, f.size);
                }
                if !manifest.metadata.is_null() {
                    println!("  metadata   {}", manifest.metadata);
                }
            }
        }
        CatalogCommand::Export {
            workspace,
            reference,
            out,
        } => {
            let ws = open(workspace).await?;
            let (schema, batches) = ws.read_catalog_version(&reference).await?;
            let rows = arrow::compute::concat_batches(&schema, &batches)?;
            std::fs::write(&out, parquet_bytes(&rows)?).map_err(|e| {
                trainstore::Error::invalid("--out", out.display().to_string(), e.to_string())
            })?;
            println!("{} rows written to {}", rows.num_rows(), out.display());
        }
        CatalogCommand::Delete {
            workspace,
            reference,
        } => {
            let ws = open(workspace).await?;
            let version = ws.delete_catalog_version(&reference).await?;
            let (item, _) = crate::training_sets::reference(&reference)?;
            println!("deleted {item}@{version}; `trainstore workspace gc` removes its files");
        }
    }
    Ok(())
}
