//! `callhome dashboard`: asks the running agent for a one-time sign-in link, prints it, and
//! opens it in the browser. The dashboard is served by the agent, so without one there is
//! nothing to open: the error says how to start it.

use callhome::api::client::Client;
use callhome::datadir::DataDir;

use super::{Result, fail, runtime};
use crate::{Cli, exit};

pub fn dashboard(cli: &Cli, no_open: bool) -> Result<u8> {
    let dir = DataDir::locate(cli.data_dir.clone());
    let Some(client) = Client::discover(&dir) else {
        let cfg = cli.config.as_ref().map(|c| format!(" --config {}", c.display())).unwrap_or_default();
        let why = if dir.agent_running().is_some() {
            "the agent runs but its API is off (api.enabled = false in the configuration); turn it on and restart the agent"
                .to_string()
        } else {
            format!(
                "no agent runs on {}; start it with `callhome run{cfg} --data-dir {}` (or its service), then run `callhome dashboard` again",
                dir.root().display(),
                dir.root().display()
            )
        };
        return Err(fail(exit::FAILURE, format!("the dashboard is served by the running agent: {why}")));
    };
    let link = runtime()?.block_on(client.dashboard_link())?;
    println!("{}", link.url);
    eprintln!("a one-time sign-in link: it works once, within {} seconds", link.expires_in_seconds);
    if !no_open && let Err(e) = callhome::api::dashboard::open_in_browser(&link.url) {
        eprintln!("could not open a browser ({e}); open the link above by hand");
    }
    Ok(0)
}
