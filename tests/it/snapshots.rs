//! `trainstore snapshots`: generate into files and into MariaDB, query both back.

use mysql_async::prelude::Queryable;

use crate::{cli, cli_with_env};

#[test]
fn generate_files_then_query_them_with_a_range_and_a_filter() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    let data = dir.path().join("snaps");
    let (ok, out, err) = cli(
        &[
            "snapshots",
            "generate",
            "--to",
            data.to_str().unwrap(),
            "--devices",
            "3",
            "--snapshots",
            "20",
        ],
        &config,
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("wrote 120 rows"), "{out}");
    let (ok, out, err) = cli(&["snapshots", "query", data.to_str().unwrap()], &config);
    assert!(ok, "{out}{err}");
    assert!(out.contains("120 rows from 6 devices"), "{out}");
    let (ok, out, err) = cli(
        &[
            "snapshots",
            "query",
            data.to_str().unwrap(),
            "--filter",
            "nodeId=1466",
            "--start",
            "2022-12-07",
            "--end",
            "2022-12-07T01:00:00Z",
        ],
        &config,
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("from 3 devices") && out.contains("| 1466"),
        "{out}"
    );
    let (ok, _, err) = cli(
        &[
            "snapshots",
            "query",
            data.to_str().unwrap(),
            "--start",
            "2022-12-08",
            "--end",
            "2022-12-07",
        ],
        &config,
    );
    assert!(!ok && err.contains("start must be before end"), "{err}");
    // Any ISO-8601 form, minutes without seconds included; a start needs an end.
    let data_dir = data.to_str().unwrap();
    let query = |bounds: &[&str]| {
        let mut args = vec!["snapshots", "query", data_dir];
        args.extend_from_slice(bounds);
        cli(&args, &config)
    };
    let (ok, out, err) = query(&["--start", "2022-12-07T00:00", "--end", "2099-W01-1"]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = query(&["--start", "2022-12-07T00:00"]);
    assert!(!ok && err.contains("--end"), "{err}");
    // Strict mode: the default data has malformed values (0.5 % of them), and the query
    // stops at the first, naming it; data written without any passes.
    let (ok, _, err) = cli(
        &["snapshots", "query", data.to_str().unwrap(), "--strict"],
        &config,
    );
    assert!(!ok && err.contains("malformed"), "{err}");
    let clean = dir.path().join("clean");
    let (ok, out, err) = cli(
        &[
            "snapshots",
            "generate",
            "--to",
            clean.to_str().unwrap(),
            "--devices",
            "3",
            "--snapshots",
            "20",
            "--malformed-rate",
            "0",
        ],
        &config,
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = cli(
        &["snapshots", "query", clean.to_str().unwrap(), "--strict"],
        &config,
    );
    assert!(ok && out.contains("120 rows"), "{out}{err}");
    // Printed tables cut long values (a spectrum is 1,600 numbers) instead of printing them
    // whole.
    let widest = out.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(
        out.contains('…') && widest < 600,
        "{widest} characters wide:\n{out}"
    );
}

#[test]
fn generate_into_mariadb_and_query_through_the_mysql_protocol() {
    let server = std::env::var("TRAINSTORE_TEST_MYSQL_URL").expect(
        "TRAINSTORE_TEST_MYSQL_URL is not set: run `eval \"$(scripts/test-services)\"` first",
    );
    let db = format!("ts_cli_{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut conn = mysql_async::Conn::from_url(server.as_str()).await.unwrap();
        conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`"))
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
    });
    let url = format!("{}/{db}", server.trim_end_matches('/'));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    let env = [("TRAINSTORE_DORIS_URL", url.as_str())];
    let (ok, out, err) = cli_with_env(
        &[
            "snapshots",
            "generate",
            "--table",
            "feature_snapshots",
            "--devices",
            "4",
            "--snapshots",
            "25",
        ],
        &config,
        &env,
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("loaded 200 rows"), "{out}");
    let (ok, out, err) = cli_with_env(
        &[
            "snapshots",
            "query",
            "--table",
            "feature_snapshots",
            "--filter",
            "nodeId=1465",
            "--limit",
            "30",
        ],
        &config,
        &env,
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("30 rows from 4 devices"), "{out}");
    assert!(
        !out.contains(&url) || !url.contains('@'),
        "the URL must not be printed"
    );
    rt.block_on(async {
        let mut conn = mysql_async::Conn::from_url(server.as_str()).await.unwrap();
        conn.query_drop(format!("DROP DATABASE `{db}`"))
            .await
            .unwrap();
        conn.disconnect().await.unwrap();
    });
}

#[test]
fn filters_mean_the_same_on_files_and_on_the_database_and_bad_values_fail_the_query() {
    let server = std::env::var("TRAINSTORE_TEST_MYSQL_URL").expect(
        "TRAINSTORE_TEST_MYSQL_URL is not set: run `eval \"$(scripts/test-services)\"` first",
    );
    let db = format!("ts_cli_filters_{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sql = |statement: String| {
        rt.block_on(async {
            let mut conn = mysql_async::Conn::from_url(server.as_str()).await.unwrap();
            conn.query_drop(statement).await.unwrap();
            conn.disconnect().await.unwrap();
        })
    };
    sql(format!("CREATE DATABASE IF NOT EXISTS `{db}`"));
    let url = format!("{}/{db}", server.trim_end_matches('/'));
    let env = [("TRAINSTORE_DORIS_URL", url.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    let data = dir.path().join("snaps");
    let (ok, out, err) = cli_with_env(
        &[
            "snapshots",
            "generate",
            "--to",
            data.to_str().unwrap(),
            "--table",
            "snapshots",
            "--devices",
            "2",
            "--snapshots",
            "10",
            "--malformed-rate",
            "0",
        ],
        &config,
        &env,
    );
    assert!(ok, "{out}{err}");
    let query = |filter: &str, table: bool| {
        let mut args = vec!["snapshots", "query", "--filter", filter];
        if table {
            args.extend(["--table", "snapshots"]);
        } else {
            args.push(data.to_str().unwrap());
        }
        cli_with_env(&args, &config, &env)
    };
    let headline = |out: &str| out.lines().next().unwrap_or_default().to_owned();
    for table in [false, true] {
        let (ok, all, err) = query("nodeId=1465", table);
        assert!(ok && all.starts_with("20 rows"), "{all}{err}");
        let (ok, out, err) = query("nodeId=1465 ", table);
        assert!(ok && out.starts_with("0 rows"), "{out}{err}");
        // The first row's time, as the summary prints it (RFC 3339) and as epoch ms.
        let first = headline(&all)
            .split(", ")
            .nth(1)
            .and_then(|range| range.split(" .. ").next())
            .unwrap()
            .to_owned();
        let millis = trainstore::core::Timestamp::parse(&first)
            .unwrap()
            .as_millis()
            .to_string();
        let (ok, by_text, err) = query(&format!("time={first}"), table);
        assert!(ok && !by_text.starts_with("0 rows"), "{by_text}{err}");
        let (ok, by_millis, err) = query(&format!("time={millis}"), table);
        assert!(ok, "{err}");
        assert_eq!(headline(&by_text), headline(&by_millis));
        for bad in [format!("time={millis}abc"), format!("time={millis} OR 1=1")] {
            let (ok, out, err) = query(&bad, table);
            assert!(!ok, "{bad} was accepted: {out}");
            assert!(err.contains(&bad) && err.contains("time"), "{err}");
        }
    }
    sql(format!("DROP DATABASE `{db}`"));
}
