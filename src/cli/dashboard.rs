//! `callhome dashboard`: asks the running agent for a one-time sign-in code and opens the
//! browser on a private sign-in page that POSTs it (the code is on no command line); with
//! `--no-open`, prints a one-time link for a browser started elsewhere. The dashboard is served
//! by the agent, so without one there is nothing to open: the error says how to start it.

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
    if no_open {
        println!("{}", link.url);
        eprintln!("a one-time sign-in link: it works once, within {} seconds", link.expires_in_seconds);
        return Ok(0);
    }
    match callhome::api::dashboard::open_signin_page(&link, "") {
        Ok(()) => eprintln!(
            "opened the dashboard in the browser (the sign-in works once, within {} seconds)",
            link.expires_in_seconds
        ),
        Err(e) => {
            println!("{}", link.url);
            eprintln!(
                "could not open a browser ({e}); open the link above by hand, within {} seconds",
                link.expires_in_seconds
            );
        }
    }
    Ok(0)
}
