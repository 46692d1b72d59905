//! `berth logs`.

use anyhow::Result;
use chrono::Utc;
use hyper::Method;
use serde_json::Value;

use super::client::{empty, for_each_chunk, query, seg, Client};
use super::stream::Sink;
use super::units::parse_timestamp;

/// Flags of `berth logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs ("all" for everything)
    #[arg(short = 'n', long, value_name = "string", default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show extra details provided to logs
    #[arg(long)]
    pub details: bool,
    /// Container
    pub container: String,
}

/// `berth logs`.
pub async fn logs(client: &Client, a: LogsArgs) -> Result<i32> {
    let info = client.get(&format!("/containers/{}/json", seg(&a.container))).await?;
    let tty = info.pointer("/Config/Tty").and_then(Value::as_bool).unwrap_or(false);
    let now = Utc::now();
    let mut q: Vec<(&str, String)> = vec![
        ("stdout", "1".into()),
        ("stderr", "1".into()),
        ("follow", if a.follow { "1" } else { "0" }.into()),
        ("tail", a.tail.clone()),
        ("timestamps", if a.timestamps { "1" } else { "0" }.into()),
    ];
    if let Some(s) = &a.since {
        q.push(("since", parse_timestamp(s, now)?));
    }
    if let Some(u) = &a.until {
        q.push(("until", parse_timestamp(u, now)?));
    }
    if a.details {
        q.push(("details", "1".into()));
    }
    let resp = client
        .send(
            Method::GET,
            &format!("/containers/{}/logs{}", seg(&a.container), query(&q)),
            empty(),
            None,
            false,
        )
        .await?;
    let mut sink = Sink::new(tty);
    for_each_chunk(resp.into_body(), |d| match sink.write(d) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    })
    .await?;
    Ok(0)
}
