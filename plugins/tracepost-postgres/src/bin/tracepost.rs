//! `tracepost keys create|list|rotate|revoke`: manages the project API keys of the log
//! routes, in the Postgres store (`--database-url` or `DATABASE_URL`; `--schema`, default
//! `tracepost`) or in the embedded SQLite store (`--sqlite <file>`, e.g.
//! `./tracepost-data/tracepost.sqlite3`, or a `DATABASE_URL` of `sqlite:<file>`; a file that
//! does not exist is refused unless `--create` is given). Build with
//! `cargo install tracepost-postgres --features cli`.
//!
//! ```text
//! tracepost keys create <project> [--require-signature]   # prints the key once
//! tracepost keys list <project>
//! tracepost keys rotate <key-id>                          # a new key; the old stays valid
//! tracepost keys revoke <key-id>
//! ```

use std::process::ExitCode;
use std::time::SystemTime;

use tracepost_postgres::PostgresSink;
use tracepost_sqlite::SqliteStore;

const USAGE: &str =
    "usage: tracepost [--database-url URL | --sqlite FILE [--create]] [--schema NAME] keys \
create <project> [--require-signature] | list <project> | rotate <key-id> | revoke <key-id>";

fn ts(t: Option<SystemTime>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| humantime::format_rfc3339_seconds(t).to_string(),
    )
}

/// The store the keys live in.
enum Keys {
    Postgres(tracepost_postgres::PgStore),
    Sqlite(SqliteStore),
}

/// A created key: (id, project, key).
type Created = (i64, String, String);
/// A listed key: (id, prefix, signed, created, last used, revoked).
type Listed = (
    i64,
    String,
    bool,
    SystemTime,
    Option<SystemTime>,
    Option<SystemTime>,
);

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Keys {
    async fn create(&self, project: &str, signed: bool) -> Result<Created, String> {
        tracepost_ingest::logs::keys::check_project_name(project)?;
        match self {
            Keys::Postgres(s) => {
                let p = match s.project_by_name(project).await.map_err(err)? {
                    Some(p) => p,
                    None => s.create_project(project).await.map_err(err)?,
                };
                let k = s.create_api_key_with(p.id, signed).await.map_err(err)?;
                Ok((k.id, p.name, k.key))
            }
            Keys::Sqlite(s) => {
                let p = match s.project_by_name(project).await.map_err(err)? {
                    Some(p) => p,
                    None => s.create_project(project).await.map_err(err)?,
                };
                let k = s.create_api_key_with(p.id, signed).await.map_err(err)?;
                Ok((k.id, p.name, k.key))
            }
        }
    }

    async fn list(&self, project: &str) -> Result<Vec<Listed>, String> {
        let missing = || format!("no project {project:?}");
        match self {
            Keys::Postgres(s) => {
                let p = s.project_by_name(project).await.map_err(err)?;
                let keys = s.list_api_keys(p.ok_or_else(missing)?.id).await;
                Ok(keys
                    .map_err(err)?
                    .into_iter()
                    .map(|k| {
                        let t = (k.created_at, k.last_used_at, k.revoked_at);
                        (k.id, k.prefix, k.require_signature, t.0, t.1, t.2)
                    })
                    .collect())
            }
            Keys::Sqlite(s) => {
                let p = s.project_by_name(project).await.map_err(err)?;
                let keys = s.list_api_keys(p.ok_or_else(missing)?.id).await;
                Ok(keys
                    .map_err(err)?
                    .into_iter()
                    .map(|k| {
                        let t = (k.created_at, k.last_used_at, k.revoked_at);
                        (k.id, k.prefix, k.require_signature, t.0, t.1, t.2)
                    })
                    .collect())
            }
        }
    }

    /// The new key's (id, key), `None` when `id` is no unrevoked key.
    async fn rotate(&self, id: i64) -> Result<Option<(i64, String)>, String> {
        Ok(match self {
            Keys::Postgres(s) => s
                .rotate_api_key(id)
                .await
                .map_err(err)?
                .map(|k| (k.id, k.key)),
            Keys::Sqlite(s) => s
                .rotate_api_key(id)
                .await
                .map_err(err)?
                .map(|k| (k.id, k.key)),
        })
    }

    async fn revoke(&self, id: i64) -> Result<bool, String> {
        match self {
            Keys::Postgres(s) => s.revoke_api_key(id).await.map_err(err),
            Keys::Sqlite(s) => s.revoke_api_key(id).await.map_err(err),
        }
    }
}

/// What `run` returns when standard output was closed by its reader
/// (`tracepost keys list shop | head -1`): not an error to report.
const STDOUT_CLOSED: &str = "";

/// Writes one line to standard output. `println!` panics when the reader has gone; here a
/// closed pipe ends the command quietly, as it does for the shell's own tools.
fn out(line: std::fmt::Arguments<'_>) -> Result<(), String> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(STDOUT_CLOSED.into()),
        Err(e) => Err(format!("writing to standard output: {e}")),
    }
}

/// Writes a new key's secret, which is shown only once: a reader that went away, or a full
/// disk, is an error that says the key exists and how to revoke it.
fn out_secret(id: i64, line: std::fmt::Arguments<'_>) -> Result<(), String> {
    out(line).map_err(|e| {
        let why = if e == STDOUT_CLOSED {
            "standard output was closed"
        } else {
            e.as_str()
        };
        format!(
            "key {id} was created, but its secret could not be shown ({why}); revoke it with \
             `tracepost keys revoke {id}` and create another"
        )
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e == STDOUT_CLOSED => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracepost: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Vec<String>) -> Result<(), String> {
    let mut url = std::env::var("DATABASE_URL").ok();
    let mut sqlite = None;
    let mut schema = "tracepost".to_owned();
    let mut require_signature = false;
    let mut create = false;
    let mut rest = Vec::new();
    let mut it = args.drain(..);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--database-url" => url = Some(it.next().ok_or(USAGE)?),
            "--sqlite" => sqlite = Some(it.next().ok_or(USAGE)?),
            "--schema" => schema = it.next().ok_or(USAGE)?,
            "--require-signature" => require_signature = true,
            "--create" => create = true,
            "-h" | "--help" => {
                return out(format_args!("{USAGE}"));
            }
            _ => rest.push(a),
        }
    }
    // `sqlite:<file>` and `sqlite://<file>` URLs name the embedded store too.
    if let Some(file) = url.as_deref().and_then(|u| u.strip_prefix("sqlite:")) {
        sqlite.get_or_insert_with(|| file.strip_prefix("//").unwrap_or(file).to_owned());
    }
    let store = match sqlite {
        // A mistyped path would otherwise make a new store the server never reads.
        Some(file) if !create && !std::path::Path::new(&file).is_file() => {
            return Err(format!(
                "no SQLite store at {file:?}; check the path (the server's is \
                 <data dir>/tracepost.sqlite3), or pass --create to make a new one"
            ))
        }
        Some(file) => Keys::Sqlite(SqliteStore::new(
            file,
            tracepost_sqlite::TimeRange::default(),
            None,
        )),
        None => {
            let url = url.ok_or("set DATABASE_URL, or pass --database-url or --sqlite")?;
            let pg = PostgresSink::builder(&url)
                .schema(schema)
                .connect_store()
                .await
                .map_err(err)?;
            Keys::Postgres(pg)
        }
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let id = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("{s:?} is not a key id"))
    };
    match rest.as_slice() {
        ["keys", "create", project] => {
            let (id, project, key) = store.create(project, require_signature).await?;
            out_secret(id, format_args!("id\t{id}\nproject\t{project}\nkey\t{key}"))?;
            eprintln!("store the key now: it is not shown again");
        }
        ["keys", "list", project] => {
            // Read first: a store that refuses prints its error alone, not after a header.
            let keys = store.list(project).await?;
            out(format_args!(
                "id\tprefix\tsigned\tcreated\tlast_used\trevoked"
            ))?;
            for (id, prefix, signed, created, used, revoked) in keys {
                out(format_args!(
                    "{id}\t{prefix}\t{signed}\t{}\t{}\t{}",
                    ts(Some(created)),
                    ts(used),
                    ts(revoked)
                ))?;
            }
        }
        ["keys", "rotate", key_id] => {
            let (new_id, key) = store
                .rotate(id(key_id)?)
                .await?
                .ok_or_else(|| format!("no unrevoked key {key_id}"))?;
            out_secret(new_id, format_args!("id\t{new_id}\nkey\t{key}"))?;
            eprintln!("deploy the new key, then: tracepost keys revoke {key_id}");
        }
        ["keys", "revoke", key_id] => {
            if !store.revoke(id(key_id)?).await? {
                return Err(format!("no unrevoked key {key_id}"));
            }
            out(format_args!("revoked {key_id}"))?;
        }
        _ => return Err(USAGE.into()),
    }
    Ok(())
}
