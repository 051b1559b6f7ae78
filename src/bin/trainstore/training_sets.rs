//! `trainstore training-sets create|list|show|select-best|tag|alias|diff|drift|reproduce|
//! fsck|gc|delete|retain|access|grant|audit|lease|draft|export`: versioned, quality-scored training sets of a workspace. Tables on a
//! terminal, `--json` for scripts.

use std::path::PathBuf;

use clap::Subcommand;
use trainstore::Workspace;
use trainstore::core::{
    Access, DataSource, DatasetName, Error, LeaseState, MountTable, Namespace, Permission, Result,
    StorageOptions, TagName, Timestamp, UserName,
};
use trainstore::featurestore::training::compare::SetDiff;
use trainstore::featurestore::training::drift::DriftOptions;
use trainstore::featurestore::training::lifecycle::Retention;
use trainstore::featurestore::training::sharing::Grantee;
use trainstore::featurestore::training::{
    CreateOptions, Criteria, Lineage, Listed, TrainingSetVersion, TrainingSets,
};

use crate::features::parquet_bytes;
use crate::progress::TerminalProgress;

#[derive(Subcommand)]
pub enum TrainingSetsCommand {
    /// Create a version from a Parquet file's rows (streamed; quality measured on the way)
    Create {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set to add the version to (created if new)
        name: String,
        /// The rows: a Parquet file (a path, URL or mount://name/path)
        #[arg(long)]
        from: String,
        /// The label column, whose class balance is measured
        #[arg(long)]
        label: Option<String>,
        /// The column of event times [default: event_timestamp when present]
        #[arg(long)]
        time_column: Option<String>,
        /// Metadata as KEY=VALUE; repeatable
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// List the training sets, or the versions of one, best quality first
    List {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// A training set, to list its versions instead of the sets' names
        name: Option<String>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Show one version (NAME, NAME@v3, NAME@golden): quality per feature and lineage
    Show {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training-set version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// The best version meeting every criterion given
    SelectBest {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set to choose from
        name: String,
        /// The version has at least this many rows
        #[arg(long)]
        min_data_size: Option<u64>,
        /// The version's overall quality score is at least this (0 to 1)
        #[arg(long)]
        min_quality_score: Option<f64>,
        /// The data's times lie at or after this (ISO-8601 or epoch ms); needs --end
        #[arg(long, requires = "end")]
        start: Option<String>,
        /// The data's times lie at or before this; needs --start
        #[arg(long, requires = "start")]
        end: Option<String>,
        /// The version carries this tag or alias; repeatable
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Tag a version once and for all: `tag WS NAME@v3 paper-2026`
    Tag {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training-set version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// The tag to give the version (a tag never moves, unlike an alias)
        tag: String,
    },
    /// Point a movable alias at a version: `alias WS NAME@v3 golden`
    Alias {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training-set version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// The alias to point at the version (created or moved)
        alias: String,
    },
    /// What differs between two versions: columns, rows (added, removed), statistics
    Diff {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The version compared from: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        before: String,
        /// The version compared to: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        after: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// How far each feature moved between two versions (PSI, two-sample KS)
    Drift {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The baseline version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        baseline: String,
        /// The current version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        current: String,
        /// PSI bins (equal-frequency bins of the baseline)
        #[arg(long, default_value_t = 10)]
        bins: usize,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a version from its lineage and check its content hash; exits non-zero when
    /// the rebuilt set differs
    Reproduce {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training-set version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Check every version (files re-read and hashed), tag and alias; list orphaned files.
    /// Exits non-zero when anything is wrong
    Fsck {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// Files no version lists count as orphans once this many hours old
        #[arg(long, default_value_t = 6.0, value_name = "HOURS")]
        older_than_hours: f64,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Delete data files no version lists (left by failed or killed writers)
    Gc {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// Only files this many hours old or older (younger ones may belong to a commit in
        /// progress)
        #[arg(long, default_value_t = 6.0, value_name = "HOURS")]
        older_than_hours: f64,
        /// List what would be deleted, delete nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a version: no longer listed or resolved; its files go at the next gc. Tagged
    /// or aliased versions cannot be deleted
    Delete {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training-set version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
    },
    /// Delete the versions a retention policy does not keep (tagged and aliased ones always
    /// stay)
    Retain {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set
        name: String,
        /// Keep the newest this many versions
        #[arg(long)]
        keep_last: Option<usize>,
        /// Keep the versions created within this many days
        #[arg(long, value_name = "DAYS")]
        keep_within_days: Option<f64>,
        /// List what would be deleted, delete nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Show who may do what with a set
    Access {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set
        name: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Give a user (or `*`, everyone) read, write or admin permission, or `none`; admins only
    Grant {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set
        name: String,
        /// A user name, or `*` for everyone not named
        grantee: String,
        /// read, write, admin or none
        permission: String,
    },
    /// The set's audit log: every change and every refused attempt, oldest first
    Audit {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set
        name: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Take, renew, release or break a set's lease, or show it
    Lease {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set
        name: String,
        /// show, acquire (also renews), release or break (admins only)
        #[arg(default_value = "show")]
        action: String,
        /// How long an acquired lease lasts
        #[arg(long, default_value_t = 1.0, value_name = "HOURS")]
        hours: f64,
    },
    /// Build a version in steps, seen only by you until committed
    #[command(subcommand)]
    Draft(DraftCommand),
    /// Write a version's rows to a Parquet file
    Export {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training-set version: NAME@v3, NAME@TAG or NAME@ALIAS; NAME alone means the latest
        reference: String,
        /// The Parquet file to write
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum DraftCommand {
    /// Start a draft, empty or from a version (`--base NAME@v3`); prints its id
    Start {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set
        name: String,
        /// The version to start from, `NAME@v3` (its rows, not copied)
        #[arg(long)]
        base: Option<String>,
    },
    /// Add a Parquet file's rows to a draft
    Append {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set
        name: String,
        /// The draft's id, as `draft start` printed it
        id: String,
        /// The rows: a Parquet file (a path, URL or mount://name/path)
        #[arg(long)]
        from: String,
    },
    /// Commit a draft as a new version (quality measured over all its rows)
    Commit {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set
        name: String,
        /// The draft's id, as `draft start` printed it
        id: String,
        /// Metadata as KEY=VALUE; repeatable
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
    },
    /// Your drafts of a set
    List {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set
        name: String,
    },
    /// Give a draft up
    Discard {
        /// The workspace: a path, URL (s3://…) or mount://name/path
        workspace: String,
        /// The training set
        name: String,
        /// The draft's id, as `draft start` printed it
        id: String,
    },
}

/// Who runs a command, and where: the mounts, the acting user, the namespace of sets.
pub struct Scope<'a> {
    pub mounts: &'a MountTable,
    pub user: &'a UserName,
    pub namespace: Option<Namespace>,
}

async fn open_workspace(workspace: &str, cx: &Scope<'_>) -> Result<Workspace> {
    Ok(
        Workspace::open_existing(workspace, cx.mounts, &StorageOptions::new())
            .await?
            .with_user(cx.user.clone()),
    )
}

async fn open(workspace: &str, cx: &Scope<'_>) -> Result<TrainingSets> {
    let ws = open_workspace(workspace, cx).await?;
    match &cx.namespace {
        Some(namespace) => ws.training_sets_in(namespace).await,
        None => Ok(ws.training_sets()),
    }
}

/// `NAME` or `NAME@REF` (REF: `latest`, `v3`, `3`, a tag or an alias).
pub fn reference(text: &str) -> Result<(DatasetName, String)> {
    trainstore::core::ids::split_reference(text)
}

/// A grace period given in hours.
pub(crate) fn hours(value: f64) -> Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(value * 3600.0).map_err(|_| {
        Error::invalid(
            "--older-than-hours",
            value.to_string(),
            "expected a number of hours, 0 or more",
        )
    })
}

fn key_values(pairs: &[String]) -> Result<serde_json::Value> {
    let mut map = serde_json::Map::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| Error::invalid("--meta", pair.as_str(), "expected KEY=VALUE"))?;
        map.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
    }
    Ok(serde_json::Value::Object(map))
}

pub fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializes")
    );
}

pub async fn run(command: TrainingSetsCommand, cx: &Scope<'_>) -> Result<()> {
    match command {
        TrainingSetsCommand::Create {
            workspace,
            name,
            from,
            label,
            time_column,
            metadata,
            json,
        } => {
            let sets = open(&workspace, cx).await?;
            let source = trainstore::doris::ParquetSource::open(
                cx.mounts,
                &from,
                &StorageOptions::new(),
                None,
            )
            .await?;
            let schema = source.schema().await?;
            let batches = source.scan(&Default::default()).await?;
            let options = CreateOptions {
                metadata: key_values(&metadata)?,
                label,
                time_column,
                lineage: Lineage {
                    source: format!("rows of {}", source.describe()),
                    ..Lineage::default()
                },
            };
            let v = sets
                .create(&DatasetName::new(name)?, schema, batches, options)
                .await?;
            if json {
                print_json(&version_json(&v));
            } else {
                println!(
                    "created {}: {} rows, quality {:.3}, content hash {}…",
                    v.id(),
                    v.info.rows,
                    v.info.quality.overall_score,
                    &v.info.content_hash[..12]
                );
            }
            Ok(())
        }
        TrainingSetsCommand::List {
            workspace,
            name: None,
            json,
        } => {
            let names = open(&workspace, cx).await?.names_of_sets().await?;
            if json {
                print_json(&names);
            } else {
                for n in names {
                    println!("{n}");
                }
            }
            Ok(())
        }
        TrainingSetsCommand::List {
            workspace,
            name: Some(name),
            json,
        } => {
            let listed = open(&workspace, cx)
                .await?
                .list(&DatasetName::new(name)?)
                .await?;
            if json {
                print_json(&listed.to_vec());
            } else {
                print_listed(&listed);
            }
            Ok(())
        }
        TrainingSetsCommand::Show {
            workspace,
            reference: text,
            json,
        } => {
            let (name, r) = reference(&text)?;
            let v = open(&workspace, cx).await?.get(&name, &r).await?;
            if json {
                print_json(&version_json(&v));
            } else {
                print_version(&v);
            }
            Ok(())
        }
        TrainingSetsCommand::SelectBest {
            workspace,
            name,
            min_data_size,
            min_quality_score,
            start,
            end,
            tags,
            json,
        } => {
            let mut criteria = Criteria::default();
            if let Some(rows) = min_data_size {
                criteria = criteria.min_data_size(rows);
            }
            if let Some(score) = min_quality_score {
                criteria = criteria.min_quality_score(score)?;
            }
            if let (Some(start), Some(end)) = (start, end) {
                criteria =
                    criteria.time_range(Timestamp::parse(&start)?, Timestamp::parse(&end)?)?;
            }
            for t in tags {
                criteria = criteria.tag(TagName::new(t)?);
            }
            let v = open(&workspace, cx)
                .await?
                .select_best(&DatasetName::new(name)?, &criteria)
                .await?;
            if json {
                print_json(&version_json(&v));
            } else {
                print_version(&v);
            }
            Ok(())
        }
        TrainingSetsCommand::Tag {
            workspace,
            reference: text,
            tag,
        } => {
            let (name, r) = reference(&text)?;
            let entry = open(&workspace, cx)
                .await?
                .tag(&name, &r, &TagName::new(tag)?)
                .await?;
            println!("tagged {name}@{} as {}", entry.version, entry.tag);
            Ok(())
        }
        TrainingSetsCommand::Alias {
            workspace,
            reference: text,
            alias,
        } => {
            let (name, r) = reference(&text)?;
            let entry = open(&workspace, cx)
                .await?
                .alias(&name, &r, &TagName::new(alias)?)
                .await?;
            println!("alias {} of {name} -> {}", entry.alias, entry.version);
            Ok(())
        }
        TrainingSetsCommand::Diff {
            workspace,
            before,
            after,
            json,
        } => {
            let sets = open(&workspace, cx).await?;
            let (a, b) = (
                version(&sets, &before).await?,
                version(&sets, &after).await?,
            );
            let d = sets.diff(&a, &b).await?;
            if json {
                print_json(&d);
            } else {
                print_diff(&d);
            }
            Ok(())
        }
        TrainingSetsCommand::Drift {
            workspace,
            baseline,
            current,
            bins,
            json,
        } => {
            let sets = open(&workspace, cx).await?;
            let (a, b) = (
                version(&sets, &baseline).await?,
                version(&sets, &current).await?,
            );
            let options = DriftOptions {
                bins,
                ..DriftOptions::default()
            };
            let drift = sets.drift(&a, &b, &options).await?;
            if json {
                print_json(&drift);
            } else {
                println!(
                    "{:<28} {:<12} {:>10} {:>10} {:>12}",
                    "feature", "measure", "psi", "ks", "p-value"
                );
                for d in &drift {
                    println!(
                        "{:<28} {:<12} {:>10.4} {:>10.4} {:>12.3e}",
                        d.column,
                        format!("{:?}", d.measure).to_lowercase(),
                        d.psi,
                        d.ks_statistic,
                        d.ks_pvalue
                    );
                }
            }
            Ok(())
        }
        TrainingSetsCommand::Reproduce {
            workspace,
            reference: text,
            json,
        } => {
            let ws = open_workspace(&workspace, cx).await?;
            let sets = open(&workspace, cx).await?;
            let v = version(&sets, &text).await?;
            let outcome = sets.reproduce(&ws.features(), &v).await?;
            if json {
                print_json(&outcome);
            } else if outcome.matches {
                println!(
                    "{}: rebuilt from its lineage, content hash {} matches",
                    outcome.version, outcome.recorded_hash
                );
            } else {
                println!(
                    "{}: the rebuilt set differs (recorded {}, rebuilt {})",
                    outcome.version, outcome.recorded_hash, outcome.rebuilt_hash
                );
                if let Some(d) = &outcome.differences {
                    print_diff(d);
                }
            }
            match outcome.matches {
                true => Ok(()),
                false => Err(Error::Corrupt {
                    path: outcome.version,
                    reason: "rebuilt from its lineage, it differs from the recorded set".into(),
                }),
            }
        }
        TrainingSetsCommand::Fsck {
            workspace,
            older_than_hours,
            json,
        } => {
            let sets = open(&workspace, cx).await?;
            let report = sets
                .fsck(hours(older_than_hours)?, &TerminalProgress::new())
                .await?;
            if json {
                print_json(&report);
            } else {
                println!(
                    "{} versions, {} files, {} bytes checked; {} problems, {} orphaned files",
                    report.versions,
                    report.files,
                    report.bytes,
                    report.problems.len(),
                    report.orphans.len()
                );
                for p in &report.problems {
                    println!("  {p}");
                }
                for o in &report.orphans {
                    println!("  orphan {} ({} bytes)", o.path, o.size);
                }
            }
            match report.problems.len() {
                0 => Ok(()),
                n => Err(Error::Corrupt {
                    path: sets.store().url().to_owned(),
                    reason: format!("{n} problems found"),
                }),
            }
        }
        TrainingSetsCommand::Gc {
            workspace,
            older_than_hours,
            dry_run,
        } => {
            let files = open(&workspace, cx)
                .await?
                .gc(hours(older_than_hours)?, dry_run)
                .await?;
            for f in &files {
                println!("{}", f.path);
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            eprintln!(
                "{verb} {} files, {} bytes",
                files.len(),
                files.iter().map(|f| f.size).sum::<u64>()
            );
            Ok(())
        }
        TrainingSetsCommand::Delete {
            workspace,
            reference: text,
        } => {
            let (name, r) = reference(&text)?;
            let v = open(&workspace, cx).await?.delete(&name, &r).await?;
            println!("deleted {name}@{v} (its files go at the next gc)");
            Ok(())
        }
        TrainingSetsCommand::Retain {
            workspace,
            name,
            keep_last,
            keep_within_days,
            dry_run,
        } => {
            let keep_within = keep_within_days
                .map(|days| {
                    std::time::Duration::try_from_secs_f64(days * 86_400.0).map_err(|_| {
                        Error::invalid(
                            "--keep-within-days",
                            days.to_string(),
                            "expected a number of days, 0 or more",
                        )
                    })
                })
                .transpose()?;
            let policy = Retention {
                keep_last,
                keep_within,
            };
            let name = DatasetName::new(name)?;
            let doomed = open(&workspace, cx)
                .await?
                .retain(&name, &policy, dry_run)
                .await?;
            let verb = if dry_run { "would delete" } else { "deleted" };
            for v in &doomed {
                println!("{verb} {name}@{v}");
            }
            eprintln!("{verb} {} versions", doomed.len());
            Ok(())
        }
        TrainingSetsCommand::Access {
            workspace,
            name,
            json,
        } => {
            let access = open(&workspace, cx)
                .await?
                .access(&DatasetName::new(name)?)
                .await?;
            if json {
                print_json(&access);
            } else {
                print_access(&access);
            }
            Ok(())
        }
        TrainingSetsCommand::Grant {
            workspace,
            name,
            grantee,
            permission,
        } => {
            let permission = match permission.as_str() {
                "none" => None,
                other => Some(Permission::parse(other)?),
            };
            let access = open(&workspace, cx)
                .await?
                .grant(
                    &DatasetName::new(name)?,
                    &Grantee::parse(&grantee)?,
                    permission,
                )
                .await?;
            print_access(&access);
            Ok(())
        }
        TrainingSetsCommand::Audit {
            workspace,
            name,
            json,
        } => {
            let log = open(&workspace, cx)
                .await?
                .audit_log(&DatasetName::new(name)?)
                .await?;
            if json {
                print_json(&log);
            } else {
                for e in &log {
                    println!(
                        "{}  {:<12} {:<16} {:<6} {}{}",
                        e.at,
                        e.user,
                        e.action,
                        e.version.map_or("-".to_owned(), |v| v.to_string()),
                        if e.allowed { "" } else { "REFUSED " },
                        e.detail
                    );
                }
            }
            Ok(())
        }
        TrainingSetsCommand::Lease {
            workspace,
            name,
            action,
            hours: ttl,
        } => {
            let sets = open(&workspace, cx).await?;
            let name = DatasetName::new(name)?;
            let lease = match action.as_str() {
                "show" => sets.lease(&name).await?,
                "acquire" => Some(sets.acquire_lease(&name, hours(ttl)?).await?),
                "release" => Some(sets.release_lease(&name).await?),
                "break" => Some(sets.break_lease(&name).await?),
                other => {
                    return Err(Error::invalid(
                        "lease action",
                        other,
                        "expected show, acquire, release or break",
                    ));
                }
            };
            match lease {
                None => println!("{name}: never leased"),
                Some(l) => println!(
                    "{name}: {} by {} since {} until {}",
                    match &l.state {
                        LeaseState::Held if l.is_held(Timestamp::now()) => "held".to_owned(),
                        LeaseState::Held => "expired".to_owned(),
                        LeaseState::Released => "released".to_owned(),
                        LeaseState::Broken { by } => format!("broken by {by}"),
                    },
                    l.owner,
                    l.since,
                    l.expires_at
                ),
            }
            Ok(())
        }
        TrainingSetsCommand::Draft(command) => draft(command, cx).await,
        TrainingSetsCommand::Export {
            workspace,
            reference: text,
            out,
        } => {
            let (name, r) = reference(&text)?;
            let sets = open(&workspace, cx).await?;
            let v = sets.get(&name, &r).await?;
            let (schema, batches) = sets.read(&v).await?;
            let all = arrow::compute::concat_batches(&schema, &batches)?;
            std::fs::write(&out, parquet_bytes(&all)?).map_err(|e| Error::Config {
                key: out.display().to_string(),
                reason: format!("cannot write the output file: {e}"),
            })?;
            println!(
                "wrote {} rows of {} to {}",
                all.num_rows(),
                v.id(),
                out.display()
            );
            Ok(())
        }
    }
}

async fn draft(command: DraftCommand, cx: &Scope<'_>) -> Result<()> {
    match command {
        DraftCommand::Start {
            workspace,
            name,
            base,
        } => {
            let name = DatasetName::new(name)?;
            // `--base v3` or `--base NAME@v3`, as versions are named everywhere else.
            let qualified = |b: &str| match b.contains('@') {
                true => reference(b),
                false => Ok((name.clone(), b.to_owned())),
            };
            let base = match base.as_deref().map(qualified).transpose()? {
                Some((of, _)) if of != name => {
                    return Err(Error::invalid(
                        "--base",
                        of.to_string(),
                        format!("a draft of {name} starts from a version of {name}"),
                    ));
                }
                Some((_, r)) => Some(r),
                None => None,
            };
            let d = open(&workspace, cx)
                .await?
                .draft(&name, base.as_deref())
                .await?;
            println!("{}", d.id);
            eprintln!(
                "draft {} of {} started ({} rows{})",
                d.id,
                d.name,
                d.rows,
                d.parent.map_or(String::new(), |p| format!(" from {p}"))
            );
            Ok(())
        }
        DraftCommand::Append {
            workspace,
            name,
            id,
            from,
        } => {
            let sets = open(&workspace, cx).await?;
            let mut d = sets.open_draft(&DatasetName::new(name)?, &id).await?;
            let source = trainstore::doris::ParquetSource::open(
                cx.mounts,
                &from,
                &StorageOptions::new(),
                None,
            )
            .await?;
            let schema = source.schema().await?;
            let batches = source.scan(&Default::default()).await?;
            sets.append_to_draft(&mut d, schema, batches).await?;
            println!("draft {} of {} now holds {} rows", d.id, d.name, d.rows);
            Ok(())
        }
        DraftCommand::Commit {
            workspace,
            name,
            id,
            metadata,
        } => {
            let sets = open(&workspace, cx).await?;
            let d = sets.open_draft(&DatasetName::new(name)?, &id).await?;
            let options = CreateOptions {
                metadata: key_values(&metadata)?,
                ..CreateOptions::default()
            };
            let v = sets.commit_draft(d, options).await?;
            println!(
                "committed {}: {} rows, quality {:.3}",
                v.id(),
                v.info.rows,
                v.info.quality.overall_score
            );
            Ok(())
        }
        DraftCommand::List { workspace, name } => {
            for d in open(&workspace, cx)
                .await?
                .drafts(&DatasetName::new(name)?)
                .await?
            {
                println!(
                    "{}  {} rows  from {}  started {}",
                    d.id,
                    d.rows,
                    d.parent.map_or("nothing".to_owned(), |p| p.to_string()),
                    d.created_at
                );
            }
            Ok(())
        }
        DraftCommand::Discard {
            workspace,
            name,
            id,
        } => {
            let sets = open(&workspace, cx).await?;
            let d = sets.open_draft(&DatasetName::new(name)?, &id).await?;
            sets.discard_draft(d).await?;
            println!("draft {id} discarded");
            Ok(())
        }
    }
}

fn print_access(access: &Access) {
    let show = |p: Option<Permission>| p.map_or("none", Permission::as_str);
    println!("everyone: {}", show(access.everyone));
    for (user, p) in &access.users {
        println!("{user}: {}", p.as_str());
    }
    match (&access.set_by, &access.set_at) {
        (Some(by), Some(at)) => println!("(set by {by} at {at})"),
        _ => println!("(implicit: the first version's author is admin)"),
    }
}

async fn version(sets: &TrainingSets, text: &str) -> Result<TrainingSetVersion> {
    let (name, r) = reference(text)?;
    sets.get(&name, &r).await
}

fn print_diff(d: &SetDiff) {
    println!("{} -> {}", d.before, d.after);
    println!(
        "  rows {} -> {}: {} removed, {} added{}",
        d.rows_before,
        d.rows_after,
        d.rows_removed,
        d.rows_added,
        if d.same_content {
            " (same content)"
        } else {
            ""
        }
    );
    for c in &d.columns_added {
        println!("  + column {} {}", c.name, c.data_type);
    }
    for c in &d.columns_removed {
        println!("  - column {} {}", c.name, c.data_type);
    }
    for r in &d.columns_retyped {
        println!("  ~ column {} {} -> {}", r.column, r.before, r.after);
    }
    let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
    for c in &d.columns_changed {
        println!(
            "  {:<28} mean {} -> {}  completeness {:.3} -> {:.3}",
            c.column,
            show(c.mean.before),
            show(c.mean.after),
            c.completeness.before,
            c.completeness.after
        );
    }
}

fn version_json(v: &TrainingSetVersion) -> serde_json::Value {
    serde_json::json!({
        "id": v.id(),
        "name": v.name,
        "version": v.version,
        "author": v.author,
        "created_at": v.created_at,
        "files": v.files,
        "info": v.info,
    })
}

fn print_listed(listed: &[Listed]) {
    println!(
        "{:>8}  {:>7}  {:>12}  {:<12}  {:<25}  time covered",
        "version", "score", "rows", "author", "created"
    );
    for l in listed {
        let covered = l
            .summary
            .time_coverage
            .map_or("-".to_owned(), |(a, b)| format!("{a} .. {b}"));
        println!(
            "{:>8}  {:>7.3}  {:>12}  {:<12}  {:<25}  {covered}",
            l.version.to_string(),
            l.summary.overall_score,
            l.summary.rows,
            l.author.as_str(),
            l.created_at.to_string(),
        );
    }
}

fn print_version(v: &TrainingSetVersion) {
    let q = &v.info.quality;
    println!("{}  by {} at {}", v.id(), v.author, v.created_at);
    println!("  rows           {}", v.info.rows);
    println!("  content hash   {}", v.info.content_hash);
    println!("  overall score  {:.3}", q.overall_score);
    println!("  completeness   {:.3}", q.completeness);
    println!(
        "  duplicates     {} ({:.3})",
        q.duplicate_rows, q.duplicate_rate
    );
    if let Some(c) = &q.time_coverage {
        println!("  time covered   {} .. {}", c.start, c.end);
    }
    if let Some(label) = &q.label_balance {
        println!("  label balance  {:.3}", label.balance);
    }
    let l = &v.info.lineage;
    println!("  built from     {}", l.source);
    if !l.features.is_empty() {
        println!("  features       {}", l.features.join(", "));
    }
    if let Some(r) = l.registry_version {
        println!("  registry       {r}");
    }
    println!(
        "\n  {:<28} {:>10} {:>8} {:>12} {:>12} {:>12} {:>12}",
        "column", "count", "nulls", "min", "mean", "max", "std"
    );
    for c in &q.columns {
        let num = |f: fn(&trainstore::featurestore::training::quality::NumericStats) -> f64| {
            c.numeric
                .as_ref()
                .map_or("-".to_owned(), |n| format!("{:.4}", f(n)))
        };
        println!(
            "  {:<28} {:>10} {:>8} {:>12} {:>12} {:>12} {:>12}",
            c.name,
            c.count,
            c.nulls,
            num(|n| n.min),
            num(|n| n.mean),
            num(|n| n.max),
            num(|n| n.std.unwrap_or(f64::NAN)),
        );
    }
}
