//! A second launch of the tray app on a data folder another instance holds: it asks
//! that instance to show its window (`POST /window`) and ends, as a second click on
//! an app's icon does. A holder without a window (`clawdock serve`) is said as it is.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clawdock_core::app::StartError;
use clawdock_core::instance::{running_instance, NotRunning};

/// How long the holder may take to write `api.json` after it took the lock.
const HOLDER_STARTING: Duration = Duration::from_secs(10);

/// Asks the instance holding `home` to show its window; `held` is why this one
/// could not start, said when the holder cannot be asked.
pub async fn to_first(home: &Path, held: &StartError) -> ExitCode {
    match ask(home).await {
        Ok(()) => {
            tracing::info!("another instance holds this data folder; it shows its window");
            ExitCode::SUCCESS
        }
        Err(why) => {
            tracing::info!(%why, "the instance holding this data folder was not asked");
            clawdock::tell!("clawdock: {held}");
            ExitCode::FAILURE
        }
    }
}

/// Why the holder was not asked.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error("no instance to ask: {0}")]
    NotRunning(#[from] NotRunning),
    #[error("no HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("{url} did not answer: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("it answered {status}: {body}")]
    Refused {
        status: reqwest::StatusCode,
        body: String,
    },
}

async fn ask(home: &Path) -> Result<(), AskError> {
    let began = Instant::now();
    let holder = loop {
        match running_instance(home) {
            Ok(holder) => break holder,
            Err(e) if began.elapsed() > HOLDER_STARTING => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // Loopback: never through a proxy from the environment, which would get the
    // token with the request.
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(AskError::Client)?;
    let answer = http
        .post(format!("{}/window", holder.url))
        .bearer_auth(&holder.token)
        .send()
        .await
        .map_err(|source| AskError::Unreachable {
            url: holder.url.clone(),
            source,
        })?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let body = answer
        .text()
        .await
        .unwrap_or_else(|e| format!("(unreadable: {e})"));
    Err(AskError::Refused { status, body })
}
