//! `tracepost keys create|list|rotate|revoke`: manages the project API keys of the log
//! routes in the Postgres store (`--database-url` or `DATABASE_URL`; `--schema`, default
//! `tracepost`). Build with `cargo install tracepost-postgres --features cli`.
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

const USAGE: &str = "usage: tracepost [--database-url URL] [--schema NAME] keys \
create <project> [--require-signature] | list <project> | rotate <key-id> | revoke <key-id>";

fn ts(t: Option<SystemTime>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| humantime::format_rfc3339_seconds(t).to_string(),
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracepost: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Vec<String>) -> Result<(), String> {
    let mut url = std::env::var("DATABASE_URL").ok();
    let mut schema = "tracepost".to_owned();
    let mut require_signature = false;
    let mut rest = Vec::new();
    let mut it = args.drain(..);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--database-url" => url = Some(it.next().ok_or(USAGE)?),
            "--schema" => schema = it.next().ok_or(USAGE)?,
            "--require-signature" => require_signature = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => rest.push(a),
        }
    }
    let url = url.ok_or("set DATABASE_URL or pass --database-url")?;
    let store = PostgresSink::builder(&url)
        .schema(schema)
        .connect_store()
        .await
        .map_err(|e| e.to_string())?;
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let id = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("{s:?} is not a key id"))
    };
    match rest.as_slice() {
        ["keys", "create", project] => {
            let p = match store
                .project_by_name(project)
                .await
                .map_err(|e| e.to_string())?
            {
                Some(p) => p,
                None => store
                    .create_project(project)
                    .await
                    .map_err(|e| e.to_string())?,
            };
            let k = store
                .create_api_key_with(p.id, require_signature)
                .await
                .map_err(|e| e.to_string())?;
            println!("id\t{}\nproject\t{}\nkey\t{}", k.id, p.name, k.key);
            eprintln!("store the key now: it is not shown again");
        }
        ["keys", "list", project] => {
            let p = store
                .project_by_name(project)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no project {project:?}"))?;
            println!("id\tprefix\tsigned\tcreated\tlast_used\trevoked");
            for k in store.list_api_keys(p.id).await.map_err(|e| e.to_string())? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.prefix,
                    k.require_signature,
                    ts(Some(k.created_at)),
                    ts(k.last_used_at),
                    ts(k.revoked_at)
                );
            }
        }
        ["keys", "rotate", key_id] => {
            let k = store
                .rotate_api_key(id(key_id)?)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no unrevoked key {key_id}"))?;
            println!("id\t{}\nkey\t{}", k.id, k.key);
            eprintln!("deploy the new key, then: tracepost keys revoke {key_id}");
        }
        ["keys", "revoke", key_id] => {
            if !store
                .revoke_api_key(id(key_id)?)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no unrevoked key {key_id}"));
            }
            println!("revoked {key_id}");
        }
        _ => return Err(USAGE.into()),
    }
    Ok(())
}
